#!/bin/sh
# stop_signal.sh -- SIGTERM stops the bot even while a step keeps the loop
# busy, and a flow file with a __gc finalizer is refused by check, start
# and hot reload instead of hanging the process.
. "$(dirname "$0")/lib.sh"
trap "" PIPE

busy_shop() { # $1 = name: a step that loops far longer than the test
  d=$(make_shop "$1")
  cat > "$d/flows/main.lua" <<'LUA'
return flow "main" { start = function(c, ev)
  -- Each round spends milliseconds in C for a few counted instructions,
  -- so the step outlasts the grace period on a fast machine too (a plain
  -- empty loop used up step_instructions in under 5 s).
  if ev.text == "spin" then while true do local _ = string.rep("x", 4000000) end end
  c:say("echo " .. ev.text) end }
LUA
  python3 - "$d/shop.json" <<'PY'
import json, sys
p = sys.argv[1]; j = json.load(open(p))
j["limits"] = {"step_timeout_ms": 600000, "step_instructions": 2000000000}
json.dump(j, open(p, "w"))
PY
  echo "$d"
}

# alive PID: running, not a zombie waiting for this shell to reap it
alive() { [ -r "/proc/$1/stat" ] && ! grep -q ') Z ' "/proc/$1/stat" 2>/dev/null; }

# stop_after PID SIGNALS...: sends the signals 0.3 s apart, prints how
# many tenths of a second the process took to end (give up after 15 s).
stop_after() {
  pid=$1; shift
  for s in "$@"; do kill -"$s" "$pid" 2>/dev/null; sleep 0.3; done
  n=0
  while alive "$pid" && [ $n -lt 150 ]; do sleep 0.1; n=$((n + 1)); done
  echo $n
}

d=$(busy_shop busy1)
mkfifo "$TMP/in1"
"$SHOPBOT" chat "$d" --user u <"$TMP/in1" >"$TMP/out1" 2>"$TMP/err1" &
pid=$!
PIDS="$PIDS $pid"
exec 3>"$TMP/in1"
echo hello >&3
wait_for "$TMP/out1" "echo hello" 10
echo spin >&3
sleep 1
t=$(stop_after $pid TERM)
check "one SIGTERM ends a bot whose loop is stuck in a step (within the 5 s grace), took ${t}00 ms" \
  test "$t" -lt 100
check "the forced stop says why" contains "$TMP/err1" "shutdown-forced.*did not stop within"
exec 3>&-

d=$(busy_shop busy2)
mkfifo "$TMP/in2"
"$SHOPBOT" chat "$d" --user u <"$TMP/in2" >"$TMP/out2" 2>"$TMP/err2" &
pid=$!
PIDS="$PIDS $pid"
exec 3>"$TMP/in2"
echo spin >&3
sleep 1
t=$(stop_after $pid TERM TERM)
check "a second SIGTERM ends it at once, took ${t}00 ms after it" test "$t" -lt 20
check "and says so" contains "$TMP/err2" "shutdown-forced.*second stop signal"
exec 3>&-
# An event whose chat was idle runs in the transaction that stores it (one
# commit for the receive and the step): stopped inside its step, it was
# never stored and never acknowledged, so a channel gives it again. The
# run after an unclean stop stores every event before its step runs: the
# same event, given again and stuck again, is then kept for the restart
# (and, if it keeps taking the process down, isolated and quarantined).
check "the interrupted event was never acknowledged" \
  test "$(sqlite3 "$d/data/shop.db" "select count(*) from inbox where payload like '%spin%'")" -eq 0
mkfifo "$TMP/in3"
"$SHOPBOT" chat "$d" --user u <"$TMP/in3" >"$TMP/out3" 2>"$TMP/err3" &
pid=$!
PIDS="$PIDS $pid"
exec 3>"$TMP/in3"
echo spin >&3
sleep 1
stop_after $pid TERM TERM >/dev/null
exec 3>&-
check "after the unclean stop the event given again is stored before its step" \
  test "$(sqlite3 "$d/data/shop.db" "select count(*) from inbox where status='new' and payload like '%spin%'")" -ge 1

# A finalizer at file level: check refuses quickly, naming the rule.
d=$(make_shop gc)
cat > "$d/flows/main.lua" <<'LUA'
setmetatable({}, {__gc = function() while true do end end})
return flow "main" { start = function(c, ev) c:say("ok") end }
LUA
timeout -s KILL 20 "$SHOPBOT" check "$d" >"$TMP/gc.out" 2>&1
rc=$?
check "check refuses a __gc finalizer (rc=$rc, not a hang)" test "$rc" -ne 0 -a "$rc" -ne 137
check "and names it" contains "$TMP/gc.out" "__gc is not allowed"

# ... and hot reload keeps the old flows serving instead of hanging.
d=$(make_shop gcreload)
mkfifo "$TMP/in3"
"$SHOPBOT" chat "$d" --user u <"$TMP/in3" >"$TMP/out3" 2>"$TMP/err3" &
pid=$!
PIDS="$PIDS $pid"
exec 3>"$TMP/in3"
echo first >&3
sleep 1
cp "$d/flows/main.lua" "$TMP/main.lua.bak"
printf 'setmetatable({}, {__gc = function() while true do end end})\n' > "$TMP/gc.lua"
cat "$TMP/main.lua.bak" >> "$TMP/gc.lua"
mv "$TMP/gc.lua" "$d/flows/main.lua"
sleep 1
echo second >&3
exec 3>&-
n=0
while alive "$pid" && [ $n -lt 150 ]; do sleep 0.1; n=$((n + 1)); done
check "the bot is not hung by the reload" test $n -lt 150
check "the reload was refused with the reason" contains "$TMP/err3" "__gc is not allowed"
check "the old flows answered after it" test "$(grep -c . "$TMP/out3")" -ge 2
done_tests
