#!/usr/bin/env python3
"""webchat.py SHOPBOT [VISITORS] [SECONDS] -- web chat figures on loopback:

  page weight: bytes of the page, its CSS and JS as served;
  load: VISITORS open websockets (1000), each sending one message a second
    to a real bot (a `shopbot new` shop, Vitaly's lead flow) for SECONDS
    (20): messages and replies per second, reply latency p50/p99 under that
    load, the bot's CPU (% of one core) and RSS;
  typed: in headless Chromium (if installed), 100 lines typed into the page
    one after another, time from submitting a line to the bot's reply
    shown, p50/p99.

Prints figures only (never pass/fail). Bounded: every wait has a limit."""
import json
import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "unit"))
from webchat_client import frame, http  # noqa: E402

SHOPBOT = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
SECS = int(sys.argv[3]) if len(sys.argv) > 3 else 20


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


def proc_cpu(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss(pid):
    for ln in open("/proc/%d/status" % pid):
        if ln.startswith("VmRSS"):
            return int(ln.split()[1])
    return 0


tmp = tempfile.mkdtemp(prefix="shopbot-bench-webchat.")
bot = None
try:
    shop = os.path.join(tmp, "shop")
    subprocess.run([SHOPBOT, "new", shop], check=True, capture_output=True, timeout=30)
    port = free_port()
    p = os.path.join(shop, "shop.json")
    conf = open(p, encoding="utf-8").read()
    conf = conf.replace('"listen": "127.0.0.1:8080"',
                        '"listen": "127.0.0.1:%d", "max_connections": %d, '
                        '"ws_max_connections": %d' % (port, N + 200, N + 100))
    conf = conf.replace('"webchat": { "title"', '"webchat": { "rate_per_minute": 6000, "burst": 100, "title"')
    conf = conf.replace('"level": "info"', '"level": "warn"')
    open(p, "w", encoding="utf-8").write(conf)
    bot = subprocess.Popen([SHOPBOT, "run", shop], stdout=subprocess.DEVNULL,
                           stderr=open(os.path.join(tmp, "err"), "w"))
    for _ in range(100):
        try:
            if http(port, "GET", "/healthz", timeout=1)[0] == 200:
                break
        except OSError:
            time.sleep(0.1)

    st, h, page = http(port, "GET", "/")
    css = http(port, "GET", "/chat.css")[2]
    js = http(port, "GET", "/chat.js")[2]
    print("webchat.page_bytes: %d (html %d + css %d + js %d; goal under 50 KB, "
          "no external requests)" % (len(page) + len(css) + len(js), len(page), len(css), len(js)))
    cookie = h["set-cookie"][0].split(";")[0]

    rss0 = proc_rss(bot.pid)
    # N visitors: each its own cookie, its own socket
    sel = selectors.DefaultSelector()
    conns = []
    t_open = time.time()
    for i in range(N):
        c = http(port, "GET", "/")[1]["set-cookie"][0].split(";")[0]
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:%d\r\nCookie: %s\r\n\r\n"
                   % (port, port, c)).encode())
        conns.append({"s": s, "buf": b"", "up": False, "seq": 0, "sent": {}, "lat": []})
    for c in conns:
        c["s"].setblocking(False)
        sel.register(c["s"], selectors.EVENT_READ, c)
    opened = 0

    def pump(until):
        global opened
        while True:
            left = until - time.time()
            if left <= 0:
                return
            for key, _ in sel.select(min(left, 0.05)):
                c = key.data
                try:
                    d = c["s"].recv(65536)
                except BlockingIOError:
                    continue
                if not d:
                    sel.unregister(c["s"])
                    continue
                c["buf"] += d
                if not c["up"]:
                    if b"\r\n\r\n" not in c["buf"]:
                        continue
                    head, c["buf"] = c["buf"].split(b"\r\n\r\n", 1)
                    c["up"] = b" 101 " in head.split(b"\r\n")[0] + b" "
                    opened += c["up"]
                while len(c["buf"]) >= 2:
                    n = c["buf"][1] & 127
                    off = 2
                    if n == 126:
                        if len(c["buf"]) < 4:
                            break
                        n, off = int.from_bytes(c["buf"][2:4], "big"), 4
                    elif n == 127:
                        if len(c["buf"]) < 10:
                            break
                        n, off = int.from_bytes(c["buf"][2:10], "big"), 10
                    if len(c["buf"]) < off + n:
                        break
                    op, payload = c["buf"][0] & 15, c["buf"][off:off + n]
                    c["buf"] = c["buf"][off + n:]
                    if op == 9:
                        c["s"].sendall(frame(10, payload))
                        continue
                    if op != 1:
                        continue
                    m = json.loads(payload)
                    if m.get("t") == "msg":
                        c["s"].sendall(frame(1, json.dumps({"t": "ack", "id": m["id"]}).encode()))
                        mm = re.search(r"деталь (\d+)", m.get("text", ""))
                        if mm and int(mm.group(1)) in c["sent"]:
                            c["lat"].append(time.time() - c["sent"].pop(int(mm.group(1))))

    pump(time.time() + 5)
    print("webchat.open: %d of %d websockets open in %.1f s" % (opened, N, time.time() - t_open))
    # each visitor starts a lead (greeting, VIN) before the measured window
    for c in conns:
        if c["up"]:
            c["s"].sendall(frame(1, json.dumps({"t": "msg", "id": "s", "text": "/start"}).encode()))
    pump(time.time() + 3)
    for c in conns:
        if c["up"]:
            c["s"].sendall(frame(1, json.dumps({"t": "msg", "id": "v",
                                                "text": "XW8ZZZ614BG012345"}).encode()))
    pump(time.time() + 3)
    cpu0, t0, me0 = proc_cpu(bot.pid), time.time(), sum(os.times()[:2])
    sent = 0
    for sec in range(SECS):
        tick = t0 + sec
        step = 1.0 / max(1, opened)
        for i, c in enumerate(conns):
            if not c["up"]:
                continue
            c["seq"] += 1
            k = c["seq"]
            c["sent"][k] = time.time()
            c["s"].sendall(frame(1, json.dumps({"t": "msg", "id": "m%d" % k,
                                                "text": "деталь %d" % k}).encode()))
            sent += 1
            if i % 50 == 49:
                pump(min(tick + (i + 1) * step, tick + 1))
        pump(tick + 1)
    pump(time.time() + 3)
    dt = time.time() - t0
    cpu = (proc_cpu(bot.pid) - cpu0) / dt * 100
    lat = [x for c in conns for x in c["lat"]]
    print("webchat.load: %d visitors x 1 msg/s for %d s: %d sent, %d replies (%.0f/s), "
          "reply p50 %.1f ms p99 %.1f ms" % (opened, SECS, sent, len(lat), len(lat) / dt,
                                              pct(lat, .5) * 1000, pct(lat, .99) * 1000))
    print("webchat.load_cpu: %.0f%% of one core (bot process, over the window); the client "
          "used %.0f%%" % (cpu, (sum(os.times()[:2]) - me0) / dt * 100))
    print("webchat.load_rss: %d kB at start, %d kB with %d visitors" % (rss0, proc_rss(bot.pid), opened))
    for c in conns:
        c["s"].close()

    # typed in a real browser
    sys.path.insert(0, "/usr/lib/python3/dist-packages")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "browser"))
    import browser  # noqa: E402 (the browser tests' start-up)
    if browser.MISSING:
        print("webchat.typed: skipped (%s)" % browser.MISSING)
    else:
        d = browser.start(800, 900, skip=False)
        d.set_script_timeout(120)
        try:
            d.get("http://127.0.0.1:%d/" % port)
            ms = d.execute_async_script("""
              var done = arguments[0], log = document.getElementById('log');
              var input = document.getElementById('text'), form = document.getElementById('send');
              var out = [], i = 0, t0 = 0, want = null;
              function bots() { return log.querySelectorAll('li.bot').length; }
              var seen = 0;
              new MutationObserver(function () {
                var n = bots();
                if (n > seen && want) {
                  var last = log.querySelectorAll('li.bot')[n - 1].textContent;
                  if (last.indexOf(want) >= 0) { seen = n; var w = want; want = null;
                                                 if (i > 2) out.push(performance.now() - t0); next(); }
                }
              }).observe(log, {childList: true, subtree: true});
              var lines = ['/start', 'XW8ZZZ614BG012345'];
              function next() {
                if (i >= 102) { done(out); return; }
                var line = i < 2 ? lines[i] : 'деталь ' + i;
                want = i == 0 ? 'VIN' : i == 1 ? 'Записал' : 'деталь ' + i;
                i++;
                setTimeout(function () { t0 = performance.now(); input.value = line; form.requestSubmit(); }, 20);
              }
              var wait = setInterval(function () {
                if (document.getElementById('status').className === 'on') { clearInterval(wait); next(); }
              }, 20);
            """)
            print("webchat.typed: %d lines typed in headless Chromium, submit to reply shown "
                  "p50 %.1f ms p99 %.1f ms" % (len(ms), pct(ms, .5), pct(ms, .99)))
        finally:
            d.quit()
finally:
    if bot:
        bot.terminate()
        try:
            bot.wait(10)
        except subprocess.TimeoutExpired:
            bot.kill()
    shutil.rmtree(tmp, ignore_errors=True)
