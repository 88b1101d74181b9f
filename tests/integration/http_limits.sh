#!/bin/sh
# The HTTP server under a low open-files limit and more idle connections
# than it may hold: it stays quiet (no spinning, no log flood), /healthz
# and the chat keep answering. Then the listen address: IPv6 in brackets
# works, and `check` refuses exactly what `run` refuses, with its message.
. "$(dirname "$0")/lib.sh"
S=$SHOPBOT
port=$(free_port 7)
d=$(make_shop limits "$port" true)

# ---- many idle connections, ulimit -n 256 ----
mkfifo "$TMP/in"
( ulimit -n 256 && exec $S chat "$d" --user lim <"$TMP/in" >"$TMP/out" 2>"$TMP/err" ) &
PIDS="$!"
exec 3>"$TMP/in"
check "chat starts http" wait_for "$TMP/err" "msg=http listen=127.0.0.1:$port"
check "the cap is lowered to fit ulimit -n 256" \
  contains "$TMP/err" "msg=httpd.max_connections wanted=256 max_connections=[0-9]+ fd_limit=256"

# 400 connections that send half a request line and wait; while they are
# open: CPU of the bot over 3 s, /healthz, and a chat message.
timeout 60 python3 - "$port" "$PIDS" "$TMP" <<'PY'
import os, socket, subprocess, sys, time
port, pid, tmp = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
res = open(tmp + "/res", "w")
socks = []
for _ in range(400):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    socks.append(s)
time.sleep(0.5)
for s in socks:
    try:
        s.send(b"GET / HTTP/1.1\r\n")
    except OSError:
        pass
time.sleep(0.5)
cpu = lambda: sum(map(int, open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[11:13]))
c0, t0 = cpu(), time.time()
time.sleep(3)
pct = (cpu() - c0) / os.sysconf("SC_CLK_TCK") / (time.time() - t0) * 100
res.write("cpu=%d\n" % pct)
h = subprocess.run(["curl", "-s", "-m", "5", "http://127.0.0.1:%d/healthz" % port],
                   capture_output=True)
res.write("healthz_open=%s\n" % (b'"ok":true' in h.stdout.replace(b" ", b"")))
with open(tmp + "/in", "w") as f:
    f.write("привет\n")
for _ in range(100):
    if "Привет" in open(tmp + "/out").read():
        break
    time.sleep(0.1)
res.write("chat_open=%s\n" % ("Привет" in open(tmp + "/out").read()))
for s in socks:
    s.close()
time.sleep(0.5)
h = subprocess.run(["curl", "-s", "-m", "5", "http://127.0.0.1:%d/healthz" % port],
                   capture_output=True)
res.write("healthz_after=%s\n" % (b'"ok":true' in h.stdout.replace(b" ", b"")))
res.close()
PY
cat "$TMP/res"
check "bot CPU stays low with 400 idle connections" \
  sh -c "[ \$(sed -n 's/^cpu=//p' '$TMP/res') -lt 25 ]"
check "/healthz answers while they are open" contains "$TMP/res" "^healthz_open=True$"
check "chat replies while they are open" contains "$TMP/res" "^chat_open=True$"
check "/healthz answers once they are closed" contains "$TMP/res" "^healthz_after=True$"
check "the server says it is at the cap" contains "$TMP/err" "msg=httpd.full"
echo "второе" >&3
check "chat keeps flowing" wait_for "$TMP/out" "^эхо 1: второе$"
exec 3>&-
wait "$PIDS"
check "chat exits 0" [ $? -eq 0 ]
check "stderr stays small" [ "$(wc -c <"$TMP/err")" -lt 100000 ]
check "no accept errors" sh -c "! grep -q 'errno 24' '$TMP/err'"
PIDS=""

# ---- listen addresses: one parser for check and run ----
for bad in "999.1.1.1:8080" "[1.2.3.4]:8080" "example.com:8080"; do
  b=$(make_shop "bad$(echo "$bad" | tr -c 'a-z0-9' _)" 0 true)
  python3 -c "import json,sys;p=sys.argv[1]+'/shop.json';j=json.load(open(p));j['http']['listen']=sys.argv[2];json.dump(j,open(p,'w'))" "$b" "$bad"
  $S check "$b" >/dev/null 2>"$TMP/ce"
  crc=$?
  timeout 20 $S run "$b" >/dev/null 2>"$TMP/re"
  rrc=$?
  check "check refuses $bad" [ $crc -eq 1 ]
  check "run refuses $bad" [ $rrc -eq 1 ]
  msg=$(sed -n 's/^shop.json: \$\.http\.listen: //p' "$TMP/ce")
  check "same message for $bad: $msg" sh -c "[ -n \"\$1\" ] && grep -qF \"shopbot run: \$1\" '$TMP/re'" _ "$msg"
done

if python3 -c "import socket; s = socket.socket(socket.AF_INET6); s.bind(('::1', 0))" 2>/dev/null; then
  p6=$(free_port 8)
  v=$(make_shop v6 0 true)
  sed -i "s/127.0.0.1:0/[::1]:$p6/" "$v/shop.json"
  check "check accepts [::1]:$p6" sh -c "$S check '$v' >/dev/null 2>&1"
  $S run "$v" >/dev/null 2>"$TMP/err6" &
  PIDS="$!"
  check "run listens on [::1]" wait_for "$TMP/err6" "msg=http listen=\[::1\]:$p6 port=$p6"
  curl -s -g -m 5 "http://[::1]:$p6/healthz" >"$TMP/h6"
  check "/healthz over IPv6" contains "$TMP/h6" '"ok": ?true'
  kill -TERM "$PIDS"
  wait "$PIDS"
  check "run stops cleanly" [ $? -eq 0 ]
  PIDS=""
else
  echo "skip: no IPv6 loopback (::1) on this machine; the [::1] run is not checked"
fi
done_tests
