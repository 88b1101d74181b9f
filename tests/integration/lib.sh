# lib.sh -- shared helpers of the integration tests (sourced).
# Each test runs the real shopbot binary ($SHOPBOT) on a temporary copy of
# a shop, only on 127.0.0.1, and stops by itself.
set -u
: "${SHOPBOT:?set SHOPBOT to the shopbot binary}"
: "${RT_SOURCE_DIR:?set RT_SOURCE_DIR to the source tree}"
TMP=$(mktemp -d /tmp/shopbot-it.XXXXXX)
PIDS=""
PASSED=0
FAILED=0
cleanup() {
  for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
  for m in $(grep " $TMP" /proc/mounts 2>/dev/null | cut -d' ' -f2); do umount -l "$m" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT

ok() { PASSED=$((PASSED + 1)); echo "ok   $*"; }
bad() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }
check() { # check "what" command...
  what=$1; shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}
contains() { # contains FILE PATTERN (extended regex)
  grep -Eq -- "$2" "$1"
}
done_tests() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
}

# A copy of the core test shop with its own store; $1 = name.
make_shop() {
  d="$TMP/$1"
  mkdir -p "$d"
  cp -r "$RT_SOURCE_DIR/tests/flows/shop/flows" "$d/flows"
  cat > "$d/shop.json" <<JSON
{ "name": "it", "persona": {"name": "Тест"}, "flows": {"start": "main", "reload_debounce_ms": 50},
  "http": {"listen": "127.0.0.1:${2:-0}", "enabled": ${3:-false}},
  "limits": {"step_timeout_ms": 20000},
  "log": {"level": "info"} }
JSON
  echo "$d"
}

# wait_for FILE PATTERN [seconds]
wait_for() {
  n=0
  max=$(( ${3:-10} * 10 ))
  while [ $n -lt $max ]; do
    grep -Eq -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
    n=$((n + 1))
  done
  return 1
}

free_port() {
  # the kernel's next ephemeral port is very likely free
  p=$(( 20000 + ($$ % 20000) + ${1:-0} ))
  echo $p
}
