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
fake_llm "$TMP/rules.json"
d="$TMP/shop"
# every chat a socket (websockets may take all but 100 of the connections),
# and room for the bot's own requests to the model; one attempt each, well
# inside its time: the figures are of waiting calls
llm_shop "$d" 0 "$LLM_PORT" 'flows.start="retention"' \
  "http.max_connections=$((SLOW + 2 * FAST + 200))" "http.ws_max_connections=$((SLOW + 2 * FAST + 100))" "llm.max_in_flight=$((SLOW + 100))" \
  "llm.timeout_ms=$(((DELAY + 30) * 1000))" "llm.deadline_ms=$(((DELAY + 60) * 1000))" 'llm.retries=0'
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
