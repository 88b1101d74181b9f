#!/bin/sh
# crashloop.sh -- kill -9 at random moments, plain, during hot reloads and
# with durable wake-ups: nothing lost, nothing done twice (crashloop.py).
# CRASH_ROUNDS rounds per mode (default 8 here; docs/architecture.md quotes
# a 30-round run).
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || { echo "python3 missing"; exit 77; }
command -v sqlite3 >/dev/null || { echo "sqlite3 CLI missing"; exit 77; }
r=${CRASH_ROUNDS:-8}
for m in plain reload timers; do
  python3 "$RT_SOURCE_DIR/tests/integration/crashloop.py" "$SHOPBOT" $m $r >"$TMP/$m.out" 2>&1
  rc=$?
  cat "$TMP/$m.out"
  check "kill -9 x$r, $m: nothing lost, nothing done twice" test $rc -eq 0
done
done_tests
