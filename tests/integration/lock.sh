#!/bin/sh
# One bot per shop; /healthz and /metrics on http.listen.
. "$(dirname "$0")/lib.sh"
S=$SHOPBOT
port=$(free_port 1)
d=$(make_shop lock "$port" true)
$S run "$d" >"$TMP/out" 2>"$TMP/err" &
PIDS="$!"
check "run starts http" wait_for "$TMP/err" "msg=http listen=127.0.0.1:$port"
$S run "$d" >/dev/null 2>"$TMP/e2"
check "second process refuses" [ $? -eq 1 ]
check "refusal names the pid" contains "$TMP/e2" "already served by another shopbot \(pid $PIDS\)"
printf 'x\n' | $S chat "$d" >/dev/null 2>"$TMP/e3"
check "chat on a running shop refuses too" contains "$TMP/e3" "one bot per shop"
curl -s "http://127.0.0.1:$port/healthz" >"$TMP/h"
check "healthz ok" contains "$TMP/h" '"ok": ?true'
check "healthz flows version" contains "$TMP/h" '"flows_version": ?"[0-9a-f]{16}"'
check "healthz no reload error" contains "$TMP/h" '"last_reload_error": ?null'
printf 'return {' > "$d/flows/broken.lua"
check "broken edit noticed" wait_for "$TMP/err" "msg=reload-failed"
curl -s "http://127.0.0.1:$port/healthz" >"$TMP/h"
check "healthz shows the reload error" contains "$TMP/h" '"last_reload_error": ?".*broken.lua'
curl -s "http://127.0.0.1:$port/metrics" >"$TMP/m"
for m in shopbot_events_processed_total shopbot_steps_failed_total 'shopbot_reloads_total\{result="ok"\}' \
         'shopbot_reloads_total\{result="failed"\} 1' shopbot_conversations shopbot_outbox_depth shopbot_timers_pending \
         shopbot_lua_long_steps_total 'shopbot_http_body_timeouts_total 0' \
         'shopbot_http_body_evictions_total 0' 'shopbot_http_websockets 0' shopbot_http_websockets_max; do
  check "metrics has $m" contains "$TMP/m" "^$m"
done
curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/nope" >"$TMP/c"
check "unknown path 404" contains "$TMP/c" "^404$"
kill -TERM $PIDS
wait $PIDS
check "SIGTERM stops cleanly (exit 0)" [ $? -eq 0 ]
check "shutdown logged" contains "$TMP/err" "msg=shutdown"
PIDS=""
$S run "$d" >/dev/null 2>"$TMP/err3"
check "a broken flow file refuses the start" contains "$TMP/err3" "broken.lua:1:"
rm "$d/flows/broken.lua"
$S run "$d" >/dev/null 2>"$TMP/err2" &
PIDS="$!"
check "after a clean stop the shop starts again" wait_for "$TMP/err2" "msg=http listen"
done_tests
