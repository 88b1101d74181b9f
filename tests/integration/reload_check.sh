#!/bin/sh
# tests.on_reload with a transcript that takes seconds: the check runs in a
# child process, so /healthz and chats keep answering on the old flows; the
# new flows come in only when the check passes; a failing check, or one
# over tests.reload_timeout_s, keeps the old flows and reports like any
# failed reload; stopping the bot during a check kills the child.
. "$(dirname "$0")/lib.sh"
S=$SHOPBOT
# A transcript line that keeps a CPU busy for seconds (SQLite counting).
SLOW='expect sql: WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 20000000) SELECT count(*) FROM c = 20000000'

# shop NAME PORT TIMEOUT_S: a shop whose transcripts take seconds.
shop() {
  d=$(make_shop "$1" "$2" true)
  sed -i "s/\"log\": {\"level\": \"info\"}/\"log\": {\"level\": \"info\"}, \"tests\": {\"on_reload\": true, \"reload_timeout_s\": $3}/" "$d/shop.json"
  mkdir -p "$d/tests"
  printf 'user: привет\nbot: Привет, Тест!\nuser: раз\nbot: * 1: раз\n' >"$d/tests/echo.chat"
  printf 'user: привет\nbot: *\n%s\n' "$SLOW" >"$d/tests/slow.chat"
  echo "$d"
}
# wait_count FILE PATTERN N [seconds]: until PATTERN is on N lines.
wait_count() {
  n=0
  while [ $n -lt $(( ${4:-10} * 10 )) ]; do
    [ "$(grep -Ec -- "$2" "$1" 2>/dev/null)" -ge "$3" ] && return 0
    sleep 0.1
    n=$((n + 1))
  done
  return 1
}
# gone PID [seconds]: until PID is no process at all (reaped, not a zombie).
# A cancelled check's child is killed at once, but reaped only when the
# bot's loop comes back from loading the newer flows: on a loaded machine
# (or under ASan) that took more than the half second this used to sleep.
gone() {
  n=0
  while kill -0 "$1" 2>/dev/null; do
    [ $n -ge $(( ${2:-10} * 10 )) ] && return 1
    sleep 0.1
    n=$((n + 1))
  done
}
health() { curl -s -m 3 -o "$TMP/h" -w '%{http_code}' "http://127.0.0.1:$1/healthz" >"$TMP/hc" && contains "$TMP/hc" '^200$'; }

# ---- a check that passes, then one that fails ----
port=$(free_port 3)
d=$(shop ok "$port" 120)
$S test "$d" >"$TMP/t"; check "the shop's transcripts pass" [ $? -eq 0 ]
mkfifo "$TMP/in"
$S chat "$d" --user t <"$TMP/in" >"$TMP/out" 2>"$TMP/err" &
PIDS=$!
exec 3>"$TMP/in"
check "http is up" wait_for "$TMP/err" "msg=http listen=127.0.0.1:$port"
echo "привет" >&3
check "greeting" wait_for "$TMP/out" "Привет, Тест!"
sed -i 's/"эхо "/"повтор "/' "$d/flows/main.lua"
check "the reload check starts" wait_for "$TMP/err" "msg=reload-check version="
t0=$(date +%s%N)
check "/healthz answers during the check" health "$port"
check "... with the old flows' version" contains "$TMP/h" '"flows_version": ?"[0-9a-f]{16}"'
echo "раз" >&3
check "a chat is answered during the check, by the old flows" wait_for "$TMP/out" "^эхо 1: раз$" 10
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "     (healthz and a reply took $ms ms while the check ran)"
check "the new flows are not in yet" sh -c "! grep -q 'msg=reload version=' '$TMP/err'"
check "the check is a child process" [ -n "$(pgrep -P "$PIDS")" ]
check "the new flows come in when the check passes" wait_for "$TMP/err" "msg=reload version=" 120
echo "два" >&3
check "the new flows serve" wait_for "$TMP/out" "^повтор 2: два$"
health "$port"
check "healthz: no reload error" contains "$TMP/h" '"last_reload_error": ?null'

sed -i 's/"повтор "/"ПОЛОМКА"/' "$d/flows/main.lua"
check "a breaking edit is checked" wait_count "$TMP/err" "msg=reload-check version=" 2
echo "три" >&3
check "old flows answer during the failing check" wait_for "$TMP/out" "^повтор 3: три$" 10
check "the failing check is reported as before" wait_for "$TMP/err" "msg=reload-failed err=.*1 of 2 transcript tests fail on the new flows: FAIL .*echo.chat:4" 120
health "$port"
check "healthz shows the reload error" contains "$TMP/h" '"last_reload_error": ?"1 of 2 transcript tests fail.*echo.chat:4'
echo "четыре" >&3
check "the old flows keep serving" wait_for "$TMP/out" "^повтор 4: четыре$"
exec 3>&-
wait $PIDS
check "chat ends cleanly" [ $? -eq 0 ]
PIDS=""

# ---- a newer save supersedes a check that runs ----
port=$(free_port 4)
d=$(shop newer "$port" 120)
$S run "$d" >"$TMP/out2" 2>"$TMP/err2" &
PIDS=$!
check "run is up" wait_for "$TMP/err2" "msg=http listen=127.0.0.1:$port"
sed -i 's/"эхо "/"повтор "/' "$d/flows/main.lua"
check "first check starts" wait_for "$TMP/err2" "msg=reload-check version="
first=$(pgrep -P "$PIDS")
sed -i 's/"повтор "/"ещё "/' "$d/flows/main.lua"
check "a newer save cancels it" wait_for "$TMP/err2" "msg=reload-check-cancelled .*reason=newer-reload"
check "the first child is gone" gone "$first"
check "the newest flows come in" wait_for "$TMP/err2" "msg=reload version=" 120
check "only one reload was swapped in" [ "$(grep -c 'msg=reload version=' "$TMP/err2")" -eq 1 ]

# ---- stopping the bot while a check runs ----
sed -i 's/"ещё "/"эхо "/' "$d/flows/main.lua"
check "another check starts" wait_count "$TMP/err2" "msg=reload-check version=" 3
sleep 0.3
child=$(pgrep -P "$PIDS")
check "its child runs" [ -n "$child" ]
t0=$(date +%s)
kill -TERM $PIDS
wait $PIDS
rc=$?
check "SIGTERM during a check stops cleanly (exit 0)" [ $rc -eq 0 ]
check "... within 5 s" [ $(( $(date +%s) - t0 )) -le 5 ]
check "the check's child is killed with it" sh -c "! kill -0 $child 2>/dev/null"
check "the check was cancelled for the shutdown" contains "$TMP/err2" "msg=reload-check-cancelled .*reason=shutdown"
PIDS=""

# ---- a check over tests.reload_timeout_s ----
port=$(free_port 5)
d=$(shop slow "$port" 1)
mkfifo "$TMP/in3"
$S chat "$d" --user t <"$TMP/in3" >"$TMP/out3" 2>"$TMP/err3" &
PIDS=$!
exec 3>"$TMP/in3"
echo "привет" >&3
check "greeting (slow shop)" wait_for "$TMP/out3" "Привет, Тест!"
sed -i 's/"эхо "/"повтор "/' "$d/flows/main.lua"
check "the check starts" wait_for "$TMP/err3" "msg=reload-check version=.*timeout_s=1"
check "over the limit it fails" wait_for "$TMP/err3" "msg=reload-failed err=.*did not finish within 1 s \(tests.reload_timeout_s\)" 30
check "no child is left" [ -z "$(pgrep -P "$PIDS")" ]
echo "раз" >&3
check "the old flows keep serving" wait_for "$TMP/out3" "^эхо 1: раз$"
exec 3>&-
wait $PIDS
PIDS=""
done_tests
