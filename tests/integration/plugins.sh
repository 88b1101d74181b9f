#!/bin/sh
# Plugins and the process around them: a plugin's section of shop.json is
# checked by its own schema.json (with paths and defaults), sections of
# plugins not built stay free, `shopbot schema` prints the merged schema;
# editing a shared module (scripts/lib) or the shop's flows.lib reloads the
# flows; the HTTP server's limits from shop.json are enforced and range
# checked.
. "$(dirname "$0")/lib.sh"
S=$SHOPBOT
d=$(make_shop plug)

# ---- a plugin's section ----
printf '{ "name": "x", "persona": {}, "flows": {"start": "main"}, "channels": {"console": {"enabled": "yes"}} }' > "$d/shop.json"
$S check "$d" 2>"$TMP/e"; check "bad type in a plugin's section -> 1" [ $? -eq 1 ]
check "the plugin's key is named with its path" contains "$TMP/e" '^shop\.json: \$\.channels\.console\.enabled: expected boolean, got string$'
printf '{ "name": "x", "persona": {}, "flows": {"start": "main"}, "channels": {"console": {"enable": true}} }' > "$d/shop.json"
$S check "$d" 2>"$TMP/e"; check "unknown key in a plugin's section -> 1" [ $? -eq 1 ]
check "the unknown key is named" contains "$TMP/e" '\$\.channels\.console\.enable: unknown key "enable"'
printf '{ "name": "x", "persona": {}, "flows": {"start": "main"}, "llm": {"base_url": "http://127.0.0.1:9/v1", "guard": {"price": "(руб"}} }' > "$d/shop.json"
$S check "$d" 2>"$TMP/e"; check "a guard pattern that does not compile -> 1" [ $? -eq 1 ]
check "the pattern's key and the reason are named" contains "$TMP/e" '\$\.llm\.guard\.price: not a valid regular expression: .* at character [0-9]+$'
printf '{ "name": "x", "persona": {}, "flows": {"start": "main"}, "channels": {"whatsapp": {"phone_id": 1, "anything": [true]}} }' > "$d/shop.json"
$S check "$d" --print-config >"$TMP/o" 2>&1; check "a section of a plugin not built stays valid" [ $? -eq 0 ]
check "the console's default is filled" sh -c "tr -d ' \n' < '$TMP/o' | grep -q '\"console\":{\"enabled\":true,\"texts\":{'"
$S schema >"$TMP/schema.json"; check "shopbot schema exits 0" [ $? -eq 0 ]
check "the merged schema has the console's keys" python3 -c "
import json, sys
s = json.load(open('$TMP/schema.json'))
c = s['properties']['channels']['properties']['console']
assert c['properties']['enabled']['type'] == 'boolean'
assert s['properties']['http']['properties']['max_body_bytes']['default'] == 1048576
"

# ---- module folders are watched ----
home="$TMP/home"
mkdir -p "$home/scripts"
cp -r "$RT_SOURCE_DIR/schema" "$home/schema"
cp -r "$RT_SOURCE_DIR/scripts/lib" "$home/scripts/lib"
mkdir -p "$d/mylib"
printf 'return {hi = "hi"}\n' > "$d/mylib/extra.lua"
printf '{ "name": "x", "persona": {"name": "Тест"}, "flows": {"start": "main", "lib": "mylib", "reload_debounce_ms": 50}, "http": {"enabled": false}, "log": {"level": "info"} }' > "$d/shop.json"
mkfifo "$TMP/in"
SHOPBOT_HOME=$home $S chat "$d" --user w <"$TMP/in" >"$TMP/out" 2>"$TMP/err" &
PIDS="$!"
exec 3>"$TMP/in"
echo "привет" >&3
check "chat answers" wait_for "$TMP/out" "Привет, Тест!"
echo 'local M = {}  -- broken on purpose (' >> "$home/scripts/lib/ru.lua"
check "an edit of scripts/lib reloads the flows" wait_for "$TMP/err" "msg=reload-failed err=.*ru.lua"
check "the watcher says why" contains "$TMP/err" "msg=flows-changed ok=0"
cp "$RT_SOURCE_DIR/scripts/lib/ru.lua" "$home/scripts/lib/ru.lua"
check "fixing it reloads again" wait_for "$TMP/err" "msg=reload version="
sleep 0.3
n=$(grep -c 'msg=reload version=' "$TMP/err")
printf 'return {hi = "hello"}\n' > "$d/mylib/extra.lua"
check "an edit of flows.lib reloads too" \
  sh -c "for i in \$(seq 50); do [ \$(grep -c 'msg=reload version=' '$TMP/err') -gt $n ] && exit 0; sleep 0.1; done; exit 1"
echo "раз" >&3
check "the bot goes on" wait_for "$TMP/out" "^эхо 1: раз$"
exec 3>&-
wait $!
check "chat exits 0 at end of input" [ $? -eq 0 ]

# ---- chat in a terminal tells each reload a file change made, with its
# result: with tests.on_reload, only once the shop's transcripts have run ----
t=$(make_shop tty)
sed -i 's/"log": {"level": "info"}/"log": {"level": "info"}, "tests": {"dir": "tests", "on_reload": true}/' "$t/shop.json"
mkdir -p "$t/tests"
printf 'user: привет\nbot: Привет, Тест!\nuser: раз\nbot: эхо 1: раз\n' > "$t/tests/echo.chat"
cat >"$TMP/reload_pty.py" <<'PY'
import os, pty, select, subprocess, sys, time
shopbot, shop, refused, ok = sys.argv[1:5]
m, s = pty.openpty()
p = subprocess.Popen([shopbot, "chat", shop, "--user", "tty"], stdin=s, stdout=s, stderr=s)
os.close(s)
seen = b""
def wait(pat, secs):
    global seen
    end = time.time() + secs
    while time.time() < end:
        if pat.encode() in seen: return True
        r, _, _ = select.select([m], [], [], 0.1)
        if r:
            try: seen += os.read(m, 65536)
            except OSError: break
    return pat.encode() in seen
os.write(m, "привет\n".encode())
print("greeting=%s" % wait("Привет, Тест!", 10))
main = shop + "/flows/main.lua"
src = open(main).read()
open(main, "w").write(src.replace('"эхо "', '"повтор "'))
print("refused=%s" % wait(refused, 30))
print("no_early_ok=%s" % (ok.encode() not in seen))
open(main, "w").write(src)
print("swapped=%s" % wait(ok, 30))
os.write(m, b"\x04")
p.wait(timeout=10)
print("exit=%d" % p.returncode)
PY
timeout 60 python3 "$TMP/reload_pty.py" "$S" "$t" "-- сценарии НЕ обновлены" "-- сценарии обновлены (версия" \
  >"$TMP/tty.out" 2>&1
check "tty chat: a refused reload is told" contains "$TMP/tty.out" "^refused=True"
check "tty chat: nothing said to be updated before the transcripts ran" contains "$TMP/tty.out" "^no_early_ok=True"
check "tty chat: a good reload is told after its check" contains "$TMP/tty.out" "^swapped=True"
# the same lines in the shop's words (channels.console.texts)
sed -i 's/"tests": {"dir"/"channels": {"console": {"texts": {"reloaded": "flows now {version}", "reload_failed": "kept the old flows ({error})"}}}, "tests": {"dir"/' "$t/shop.json"
timeout 60 python3 "$TMP/reload_pty.py" "$S" "$t" "-- kept the old flows (" "-- flows now " >"$TMP/tty2.out" 2>&1
check "tty chat: a refused reload in the shop's words" contains "$TMP/tty2.out" "^refused=True"
check "tty chat: a good reload in the shop's words" contains "$TMP/tty2.out" "^swapped=True"

# ---- HTTP limits from shop.json ----
printf '{ "name": "x", "persona": {}, "flows": {"start": "main"}, "http": {"max_header_bytes": 100} }' > "$d/shop.json"
$S check "$d" 2>"$TMP/e"; check "a limit out of range -> 1" [ $? -eq 1 ]
check "the limit's path and range are named" contains "$TMP/e" '\$\.http\.max_header_bytes: .*1024'
port=$(free_port 11)
printf '{ "name": "x", "persona": {}, "flows": {"start": "main"}, "log": {"level": "info"},
  "http": {"listen": "127.0.0.1:%s", "max_header_bytes": 1024, "header_timeout_s": 1, "idle_timeout_s": 1} }' "$port" > "$d/shop.json"
$S run "$d" </dev/null >/dev/null 2>"$TMP/run.err" &
PIDS="$PIDS $!"
runpid=$!
check "run starts http" wait_for "$TMP/run.err" "msg=http listen=127.0.0.1:$port"
timeout 30 python3 - "$port" >"$TMP/res" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
def req(extra):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n")
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            c = s.recv(65536)
            if not c: break
            data += c
    except socket.timeout:
        pass
    return s, data
s, d = req(b"")
print("small=%s" % d.split(b"\r\n")[0].decode())
# idle: the keep-alive connection is closed after about 1 s of quiet
t0 = time.time()
try:
    while s.recv(65536): pass
except socket.timeout:
    pass
print("idle_closed_s=%.1f" % (time.time() - t0))
s.close()
s, d = req(b"X-Big: " + b"a" * 2000 + b"\r\n")
print("big=%s" % (d.split(b"\r\n")[0].decode() or "closed"))
s.close()
# headers never sent: closed after header_timeout_s
s = socket.create_connection(("127.0.0.1", port), timeout=8)
t0 = time.time()
try:
    while s.recv(65536): pass
except socket.timeout:
    pass
print("silent_closed_s=%.1f" % (time.time() - t0))
PY
check "a request within the limits is answered" contains "$TMP/res" "^small=HTTP/1.1 200"
check "headers over http.max_header_bytes are refused" sh -c "! grep -q '^big=HTTP/1.1 200' '$TMP/res'"
check "http.idle_timeout_s closes a quiet keep-alive connection" \
  sh -c "awk -F= '/^idle_closed_s/ { exit !(\$2 < 4) }' '$TMP/res'"
check "http.header_timeout_s closes a silent connection" \
  sh -c "awk -F= '/^silent_closed_s/ { exit !(\$2 < 5) }' '$TMP/res'"
kill -TERM "$runpid"
wait "$runpid"
check "run stops cleanly" [ $? -eq 0 ]
cat "$TMP/res"
done_tests
