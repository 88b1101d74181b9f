#!/usr/bin/env python3
"""llm_down.py PORT LLM_LOG -- retention replies no rule reads, while the
fake LLM times out, fails with 500 and with a 429 storm (llm_down.sh): each
gets the rules' answer within the call's deadline, /healthz shows the open
breaker, and after breaker_open_ms the model answers again."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.environ["RT_SOURCE_DIR"], "tests", "unit"))
from webchat_client import Visitor, http, new_cookie  # noqa: E402
from checks import check, finish  # noqa: E402

port = int(sys.argv[1])
seq = [0]
UNCLEAR = "нужны ли сейчас запчасти"   # ret_unclear: the rules' answer


def ask(text, needle, timeout=10):
    """A new chat (the flow starts at retention's answer) says text; the
    bot's reply that contains needle, and how long it took."""
    cookie = new_cookie(port)
    v = Visitor(port, cookie, timeout=10)
    seq[0] += 1
    t0 = time.time()
    v.send({"t": "msg", "id": "m%d" % seq[0], "text": text})
    m, seen = v.until(lambda m: isinstance(m, dict) and m.get("t") == "msg", timeout)
    took = time.time() - t0
    v.close()
    ok = m is not None and needle in m.get("text", "")
    if not ok:
        print("    got: %s" % (m and m.get("text")))
    return ok, took


def llm_health():
    st, _, body = http(port, "GET", "/healthz")
    try:
        return json.loads(body).get("plugins", {}).get("llm", {})
    except ValueError:
        return {}


ok, took = ask("сосед посоветовал вас", "Отлично")
check("the model answers before anything fails", ok)
check("healthz: llm ok", llm_health().get("ok") is True)

# a timeout: two attempts of 500 ms inside the 1.5 s deadline, then the rules
ok, took = ask("таймаут у меня", UNCLEAR)
check("timeout: the rules' answer, not silence", ok)
check("timeout: within the call's deadline (%.1f s)" % took, took < 4)

# 500s: the second failing call opens the breaker (4 failed attempts)
ok, _ = ask("пятьсот раз", UNCLEAR)
check("500: the rules' answer", ok)
h = llm_health()
check("healthz: llm ok:false with the error once the breaker opened",
      h.get("ok") is False and "HTTP 500" in h.get("error", ""), h)

# a 429 storm while the breaker is open: no request goes out, answers come at once
before = sum(1 for _ in open(sys.argv[2], encoding="utf-8"))
ok, took = ask("лимит лимит", UNCLEAR)
check("429 storm: the rules' answer at once (%.2f s)" % took, ok and took < 2)
after = sum(1 for _ in open(sys.argv[2], encoding="utf-8"))
check("the open breaker sends nothing to the server", after == before, (before, after))
st, _, body = http(port, "GET", "/metrics")
check("/metrics: breaker open", b"\nshopbot_llm_breaker_open 1\n" in body)

# recovery: after breaker_open_ms the next call probes, succeeds, closes it
time.sleep(1.7)
ok, _ = ask("лимит снова", UNCLEAR)   # the probe gets 429: open again
time.sleep(1.7)
ok, _ = ask("сосед посоветовал вас", "Отлично")
check("recovered: the model's answer again", ok)
h = llm_health()
check("healthz: llm ok again, no error", h.get("ok") is True and "error" not in h, h)
st, _, body = http(port, "GET", "/metrics")
check("/metrics: breaker closed, errors counted",
      b"\nshopbot_llm_breaker_open 0\n" in body and b'shopbot_llm_errors_total{error="timeout"} 1' in body)
finish()
