#!/bin/sh
# The web chat of a real bot: `shopbot new`, then `shopbot run` with no
# messenger token; a raw-socket client (webchat_run.py) talks to Vitaly,
# resends, drops and comes back, forges a visitor id, floods; after a
# restart the same cookie continues the same conversation.
. "$(dirname "$0")/lib.sh"
S=$SHOPBOT
# The bot listens on a port the kernel picks (port 0) and says which in its
# log: no port is chosen here that another test could take first.
$S new "$TMP/shop" >/dev/null 2>&1
sed "s/127.0.0.1:8080/127.0.0.1:0/" "$TMP/shop/shop.json" >"$TMP/s" && mv "$TMP/s" "$TMP/shop/shop.json"
$S run "$TMP/shop" >"$TMP/out" 2>"$TMP/err" &
PIDS="$!"
check "web chat starts" wait_for "$TMP/err" "plugin-started plugin=webchat" 60
port=$(listen_port "$TMP/err")
check "the bot says its port" [ -n "$port" ]
(cd "$TMP" && python3 "$RT_SOURCE_DIR/tests/integration/webchat_run.py" "$port" one) >"$TMP/one" 2>&1
r=$?
sed 's/^/  | /' "$TMP/one"
check "phase one" [ $r -eq 0 ]
check "the bot is up" kill -0 $PIDS
kill -TERM $PIDS; wait $PIDS 2>/dev/null
$S run "$TMP/shop" >"$TMP/out2" 2>"$TMP/err2" &
PIDS="$!"
check "restarted" wait_for "$TMP/err2" "plugin-started plugin=webchat" 60
port=$(listen_port "$TMP/err2")
(cd "$TMP" && python3 "$RT_SOURCE_DIR/tests/integration/webchat_run.py" "$port" two) >"$TMP/two" 2>&1
r=$?
sed 's/^/  | /' "$TMP/two"
check "phase two" [ $r -eq 0 ]
kill -TERM $PIDS; wait $PIDS 2>/dev/null

# A messenger token configured: the web chat is off unless enabled says so.
python3 - "$TMP/shop/shop.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p, encoding="utf-8"))
c["channels"]["telegram"] = {"token": "123456:test", "api_base": "http://127.0.0.1:9"}
json.dump(c, open(p, "w", encoding="utf-8"), ensure_ascii=False)
PY
$S run "$TMP/shop" >"$TMP/out3" 2>"$TMP/err3" &
PIDS="$!"
check "with a token the bot starts" wait_for "$TMP/err3" "plugin-started plugin=telegram|plugin=telegram" 60
port=$(listen_port "$TMP/err3")
# Every plugin is started before the loop serves a request: once / answers,
# a web chat that ran would have said so.
check "with a token / is not the chat" [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" = 404 ]
check "with a token the web chat is off" sh -c "! grep -q 'plugin-started plugin=webchat' '$TMP/err3'"
kill -TERM $PIDS; wait $PIDS 2>/dev/null
sed 's/"webchat": {/"webchat": {"enabled": true, /' "$TMP/shop/shop.json" >"$TMP/s" && mv "$TMP/s" "$TMP/shop/shop.json"
$S run "$TMP/shop" >"$TMP/out4" 2>"$TMP/err4" &
PIDS="$!"
check "enabled: true runs it beside the messenger" wait_for "$TMP/err4" "plugin-started plugin=webchat" 60
kill -TERM $PIDS; wait $PIDS 2>/dev/null
done_tests
