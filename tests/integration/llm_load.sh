#!/bin/sh
# 500 conversations wait on the model at once in the real binary (shopbot
# run, the web chat, tests/fakes/fake_openai.py answering after a delay),
# and other conversations, whose replies the rules read, answer meanwhile as
# they did before the load; then all 500 get the model's answer
# (tests/integration/llm_load.py, which also prints the figures for
# tests/bench/run: calls in flight, the bot's RSS, the rule-only replies'
# latency with and without the load).
#   LLM_LOAD_SLOW (500), LLM_LOAD_FAST (50), LLM_LOAD_DELAY_S (8)
. "$(dirname "$0")/lib.sh"
SLOW=${LLM_LOAD_SLOW:-500}
FAST=${LLM_LOAD_FAST:-50}
DELAY=${LLM_LOAD_DELAY_S:-8}
cat > "$TMP/rules.json" <<JSON
[{"when": {"schema": "retention_reply", "user": "посоветовал"}, "delay_ms": ${DELAY}000,
  "json": {"intent": "need", "when": null, "parts": []}}]
JSON
python3 "$RT_SOURCE_DIR/tests/fakes/fake_openai.py" --script "$TMP/rules.json" \
  --port-file "$TMP/llm.port" --log "$TMP/llm.jsonl" --max-seconds 170 >/dev/null &
PIDS="$PIDS $!"
wait_for "$TMP/llm.port" . 10
d="$TMP/shop"
cp -r "$RT_SOURCE_DIR/examples/autoparts" "$d"
rm -rf "$d/data" "$d/tests"
python3 - "$d/shop.json" "$(cat "$TMP/llm.port")" "$RT_SOURCE_DIR" "$SLOW" "$FAST" "$DELAY" <<'PY'
import json, sys
p, llm, src, slow, fast, delay = sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:])
j = json.load(open(p, encoding="utf-8"))
j["flows"]["dir"] = src + "/scripts/vitaly"
j["flows"]["start"] = "retention"
# every chat a socket, and room for the bot's own requests to the model
j["http"] = {"listen": "127.0.0.1:0", "max_connections": slow + 2 * fast + 200}
j.setdefault("channels", {})["webchat"] = {"enabled": True, "rate_per_minute": 600, "burst": 50}
j["channels"].setdefault("console", {})["enabled"] = False
# one attempt each, well inside its time: the figures are of waiting calls
j["llm"] = {"base_url": "http://127.0.0.1:" + llm + "/v1", "api_key": "sk-it", "model": "gpt-4o-mini",
            "timeout_ms": (delay + 30) * 1000, "deadline_ms": (delay + 60) * 1000, "retries": 0,
            "max_in_flight": slow + 100}
j.pop("tests", None)
json.dump(j, open(p, "w", encoding="utf-8"), ensure_ascii=False)
PY
$SHOPBOT run "$d" >"$TMP/out" 2>"$TMP/err" &
bot=$!
PIDS="$PIDS $bot"
port=$(listen_port "$TMP/err")
check "the bot is up" [ -n "$port" ]
if [ -n "$port" ] && python3 "$(dirname "$0")/llm_load.py" "$port" "$bot" "$TMP/llm.jsonl" "$SLOW" "$FAST" "$DELAY"; then
  ok "$SLOW model calls in flight, rule-only chats answering meanwhile"
else
  bad "$SLOW model calls in flight, rule-only chats answering meanwhile"; tail -20 "$TMP/err"
fi
check "the bot is still running" kill -0 "$bot"
check "no step error, no httpd.full" sh -c "! grep -Eq 'step-failed|level=error|httpd.full' '$TMP/err'"
stop_bot "$bot"; rc=$STOP_RC
check "SIGTERM: a clean exit (with the sanitizers: nothing leaked or misused), rc $rc" \
  sh -c "[ $rc -eq 0 ] && ! grep -q Sanitizer '$TMP/err'"
done_tests
