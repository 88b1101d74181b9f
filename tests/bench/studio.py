#!/usr/bin/python3
"""studio.py -- figures of `shopbot studio` (printed, never pass/fail):

  studio.page_bytes: HTML + CSS + JS as served (goal under 50 KB), and gzipped
  studio.start_ms:   from exec to the URL printed, and to the first /api/state
                     answer (customers imported, flows loaded), median of N runs
  baseline:          `shopbot check` of the same shop in the same run (it also
                     loads the config and compiles the flows in a fresh store)
  studio.reply_ms:   a POST /api/say answered with the bot's reply, median

Usage: studio.py SHOPBOT [RUNS]"""
import gzip
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

SHOPBOT = sys.argv[1]
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 7
tmp = tempfile.mkdtemp(prefix="shopbot-bench-studio.")
try:
    shop = os.path.join(tmp, "shop")
    subprocess.run([SHOPBOT, "new", shop], check=True, capture_output=True, timeout=60)
    url_ms, state_ms, check_ms, reply_ms = [], [], [], []
    page = 0
    gz = 0
    for i in range(RUNS):
        t0 = time.monotonic()
        subprocess.run([SHOPBOT, "check", shop], check=True, capture_output=True, timeout=60)
        check_ms.append((time.monotonic() - t0) * 1000)
        t0 = time.monotonic()
        p = subprocess.Popen([SHOPBOT, "studio", shop, "--listen", "127.0.0.1:0"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        m = re.search(r"http://[0-9.]+:\d+/", p.stdout.readline())
        url_ms.append((time.monotonic() - t0) * 1000)
        base = m.group(0)
        with urllib.request.urlopen(base + "api/state", timeout=10) as r:
            r.read()
        state_ms.append((time.monotonic() - t0) * 1000)
        if i == 0:
            for f in ("", "studio.css", "studio.js"):
                with urllib.request.urlopen(base + f, timeout=10) as r:
                    body = r.read()
                page += len(body)
                gz += len(gzip.compress(body))
        for k in range(5):
            req = urllib.request.Request(base + "api/say", data=json.dumps(
                {"chat": "bench%d" % k, "text": "здравствуйте, нужны колодки, вин XW8ZZZ614BG012345"}).encode(),
                headers={"Content-Type": "application/json"})
            t1 = time.monotonic()
            with urllib.request.urlopen(req, timeout=10) as r:
                r.read()
            reply_ms.append((time.monotonic() - t1) * 1000)
        p.terminate()
        p.wait(timeout=10)
    print("studio.page_bytes: %d (HTML+CSS+JS; %d gzipped; goal < 50000)" % (page, gz))
    print("studio.start_ms: to the URL %.0f, to the first state %.0f (median of %d)" %
          (statistics.median(url_ms), statistics.median(state_ms), RUNS))
    print("studio.baseline_check_ms: %.0f (shopbot check of the same shop, same runs)" %
          statistics.median(check_ms))
    print("studio.reply_ms: %.1f p50, %.1f max (POST /api/say answered with the reply, %d)" %
          (statistics.median(reply_ms), max(reply_ms), len(reply_ms)))
finally:
    shutil.rmtree(tmp, ignore_errors=True)
