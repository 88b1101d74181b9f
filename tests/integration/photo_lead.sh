#!/bin/sh
# The Vitaly lead with photos over the web chat, ocr and llm configured
# (tests/integration/photo_lead.py): an СТС read on the machine spends no
# tokens, a part photo goes to the LLM (tests/fakes/fake_openai.py).
. "$(dirname "$0")/lib.sh"
command -v tesseract >/dev/null || { echo "tesseract missing: ./dev.sh build installs it"; exit 1; }
python3 "$RT_SOURCE_DIR/tests/ocr/make_images.py" "$TMP/img" --count 1 --seed 3 >/dev/null
cat > "$TMP/rules.json" <<'JSON'
[{"when": {"schema": "photo_triage", "image": true},
  "json": {"kind": "part", "vin": null, "part_name": "суппорт тормозной", "confidence": 0.8},
  "usage": {"prompt_tokens": 900, "completion_tokens": 20}},
 {"when": {"schema": "retention_reply", "user": "посоветовал"},
  "json": {"intent": "need", "when": null, "parts": ["зимние шины"]}},
 {"when": {"schema": "retention_reply", "user": "^хм$"},
  "json": {"intent": "maybe", "when": null, "parts": []}}]
JSON
fake_llm "$TMP/rules.json"
port=$(free_port 7)
d="$TMP/shop"
llm_shop "$d" "$port" "$LLM_PORT" 'ocr={"enabled": true}' \
  'llm.price_per_1k_prompt=0.5' 'llm.price_per_1k_completion=1.5'
$SHOPBOT run "$d" >"$TMP/out" 2>"$TMP/err" &
bot=$!
PIDS="$PIDS $bot"
check "the bot is up" wait_for "$TMP/err" "msg=http" 10
if python3 "$(dirname "$0")/photo_lead.py" "$port" "$TMP/llm.jsonl" "$TMP/img"; then ok "photo lead"; else
  bad "photo lead"; tail -20 "$TMP/err"; fi
check "health names the llm" sh -c "curl -s -m 3 http://127.0.0.1:$port/healthz | grep -q '\"llm\"'"
# /metrics: the plugins' own series after the engine's (plugin.h set_metrics)
curl -s -m 3 "http://127.0.0.1:$port/metrics" >"$TMP/metrics"
check "/metrics: the one LLM call (the part photo)" grep -q '^shopbot_llm_calls_total{result="ok"} 1$' "$TMP/metrics"
check "/metrics: LLM tokens counted" grep -Eq '^shopbot_llm_tokens_total\{kind="prompt"\} [1-9]' "$TMP/metrics"
check "/metrics: LLM latency histogram" grep -q '^shopbot_llm_call_seconds_count 1$' "$TMP/metrics"
check "/metrics: the breaker is closed" grep -q '^shopbot_llm_breaker_open 0$' "$TMP/metrics"
check "/metrics: the СТС read by OCR" grep -q '^shopbot_ocr_reads_total{found="car"} 1$' "$TMP/metrics"
check "/metrics: the engine's series are still there" grep -q '^shopbot_events_processed_total ' "$TMP/metrics"

# ---- retention: a reply no rule matches goes to the LLM, which is checked ----
stop_bot "$bot"; rc=$STOP_RC
check "SIGTERM: a clean exit after OCR and the LLM (with the sanitizers: nothing leaked or misused), rc $rc" \
  sh -c "[ $rc -eq 0 ] && ! grep -q Sanitizer '$TMP/err'"
port2=$(free_port 8)
d2="$TMP/shop2"
llm_shop "$d2" "$port2" "$LLM_PORT" 'ocr={"enabled": true}' \
  'llm.price_per_1k_prompt=0.5' 'llm.price_per_1k_completion=1.5' 'flows.start="retention"'
: >"$TMP/llm.jsonl"
$SHOPBOT run "$d2" >"$TMP/out2" 2>"$TMP/err2" &
bot=$!
PIDS="$PIDS $bot"
check "the retention bot is up" wait_for "$TMP/err2" "msg=http" 10
if python3 "$(dirname "$0")/photo_lead.py" "$port2" "$TMP/llm.jsonl" "$TMP/img" retention; then
  ok "retention reply read by the LLM"; else bad "retention reply read by the LLM"; tail -20 "$TMP/err2"; fi
stop_bot "$bot"; rc=$STOP_RC
check "SIGTERM: a clean exit (with the sanitizers: nothing leaked or misused), rc $rc" \
  sh -c "[ $rc -eq 0 ] && ! grep -q Sanitizer '$TMP/err2'"
done_tests
