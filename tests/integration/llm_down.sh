#!/bin/sh
# The LLM goes down in the middle of conversations, with the real binary
# (shopbot run, the web chat, tests/fakes/fake_openai.py): a timeout, 500s
# and a 429 storm each end in the flow's fallback (the rules' answer, never
# silence), the breaker opens and /healthz says so ("llm": {"ok": false,
# "error": ...}); once the server answers again the probe closes it and the
# model's answers come back (tests/integration/llm_down.py).
. "$(dirname "$0")/lib.sh"
cat > "$TMP/rules.json" <<'JSON'
[{"when": {"user": "таймаут"}, "delay_ms": 3000, "json": {"intent": "need", "when": null, "parts": []}},
 {"when": {"user": "пятьсот"}, "status": 500,
  "error": {"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": null, "code": null}}},
 {"when": {"user": "лимит"}, "status": 429, "headers": {"Retry-After": "0"},
  "error": {"error": {"message": "Rate limit reached for gpt-4o-mini", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}},
 {"when": {"schema": "retention_reply", "user": "посоветовал"},
  "json": {"intent": "need", "when": null, "parts": []}}]
JSON
fake_llm "$TMP/rules.json"
port=$(free_port 9)
d="$TMP/shop"
llm_shop "$d" "$port" "$LLM_PORT" 'flows.start="retention"' \
  'llm.timeout_ms=500' 'llm.deadline_ms=1500' 'llm.retries=1' 'llm.backoff_ms=50' \
  'llm.breaker_failures=4' 'llm.breaker_open_ms=1500'
$SHOPBOT run "$d" >"$TMP/out" 2>"$TMP/err" &
bot=$!
PIDS="$PIDS $bot"
check "the bot is up" wait_for "$TMP/err" "msg=http" 10
if python3 "$(dirname "$0")/llm_down.py" "$port" "$TMP/llm.jsonl"; then ok "LLM down and back"; else
  bad "LLM down and back"; tail -20 "$TMP/err"; fi
check "the breaker was logged opening and closing" sh -c "grep -q llm-breaker-open '$TMP/err' && grep -q llm-breaker-closed '$TMP/err'"
check "no crash, no step error" sh -c "! grep -Eq 'step-failed|level=error' '$TMP/err'"
stop_bot "$bot"; rc=$STOP_RC
check "SIGTERM: a clean exit (with the sanitizers: nothing leaked or misused), rc $rc" \
  sh -c "[ $rc -eq 0 ] && ! grep -q Sanitizer '$TMP/err'"
done_tests
