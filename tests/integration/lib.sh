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

# A port the kernel says is free now. Where the bot can listen on port 0
# and say which port it got (listen_port), prefer that: a port chosen here
# can still be taken before the bot binds it. (This used to be 20000 + the
# shell's pid + an offset: two tests started close together, or another
# user's test on the same machine, picked the same port.)
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# listen_port LOG [seconds]: the port a bot started with http.listen
# 127.0.0.1:0 got, from its log line "msg=http listen=... port=N"; waits
# for the line (default 30 s); empty when it never came.
listen_port() {
  wait_for "$1" "msg=http listen=.* port=[0-9]+" "${2:-30}" || return 1
  sed -n 's/.*msg=http listen=[^ ]* port=\([0-9][0-9]*\).*/\1/p' "$1" | tail -n 1
}

# stop_bot PID: SIGTERM to a bot this shell started, then its exit status
# in STOP_RC once it is gone (124 when it still runs after 30 s: then
# killed). In a sanitizer build a leak or a misuse found at exit makes the
# status non-zero and is in its log ("Sanitizer"). Not in $(...): only
# this shell can wait for its child (a subshell would see it as a zombie).
stop_bot() {
  kill -TERM "$1" 2>/dev/null
  n=0
  while [ $n -lt 300 ] && [ -e "/proc/$1" ] && ! grep -q '^[^ ]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; do
    sleep 0.1; n=$((n + 1))
  done
  if [ $n -ge 300 ]; then kill -9 "$1" 2>/dev/null; wait "$1" 2>/dev/null; STOP_RC=124; return; fi
  wait "$1"
  STOP_RC=$?
}

# fake_llm RULES: tests/fakes/fake_openai.py on a port of its own, answering
# from the rules file RULES and logging each request to $TMP/llm.jsonl;
# returns once it listens, with its port in LLM_PORT.
fake_llm() {
  python3 "$RT_SOURCE_DIR/tests/fakes/fake_openai.py" --script "$1" \
    --port-file "$TMP/llm.port" --log "$TMP/llm.jsonl" --max-seconds 170 >/dev/null &
  PIDS="$PIDS $!"
  wait_for "$TMP/llm.port" . 10
  LLM_PORT=$(cat "$TMP/llm.port")
}

# llm_shop DIR PORT LLM_PORT [PATH=JSON...]: DIR becomes a copy of
# examples/autoparts with the persona's flows (scripts/vitaly), no data and
# no tests, the web chat on 127.0.0.1:PORT (console off, a rate no test
# meets) and the llm provider on the fake at LLM_PORT
# (tests/fakes/fake_openai.py); each PATH=JSON then sets one more key of
# shop.json ('flows.start="retention"', 'ocr={"enabled": true}').
llm_shop() {
  _ls_dir=$1 _ls_port=$2 _ls_llm=$3
  shift 3
  cp -r "$RT_SOURCE_DIR/examples/autoparts" "$_ls_dir"
  rm -rf "$_ls_dir/data" "$_ls_dir/tests"
  python3 - "$_ls_dir/shop.json" "$_ls_port" "$_ls_llm" "$RT_SOURCE_DIR" "$@" <<'PY'
import json, sys
p, port, llm, src = sys.argv[1:5]
j = json.load(open(p, encoding="utf-8"))
j["flows"]["dir"] = src + "/scripts/vitaly"
j["http"] = {"listen": "127.0.0.1:" + port}
j.setdefault("channels", {})["webchat"] = {"enabled": True, "rate_per_minute": 600, "burst": 50}
j["channels"].setdefault("console", {})["enabled"] = False
j["llm"] = {"base_url": "http://127.0.0.1:" + llm + "/v1", "api_key": "sk-it", "model": "gpt-4o-mini"}
j.pop("tests", None)
for kv in sys.argv[5:]:
    path, _, value = kv.partition("=")
    *parents, last = path.split(".")
    node = j
    for k in parents:
        node = node.setdefault(k, {})
    node[last] = json.loads(value)
json.dump(j, open(p, "w", encoding="utf-8"), ensure_ascii=False)
PY
}
