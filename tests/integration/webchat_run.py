#!/usr/bin/env python3
"""webchat_run.py PORT PHASE -- the web chat of a real `shopbot run` (the
new shop's Vitaly flows) over raw sockets, driven by webchat.sh.

PHASE one: a lead through the socket; a resend of the same id is taken
once; a bot message produced while no socket is open is delivered when one
opens; a forged visitor id and a foreign Origin are refused; a flood is
rate-limited and closed while another visitor goes on. A socket opened
again gets the conversation's history from the store (both sides, in
order); a new visitor's is empty. Writes the cookie to cookie.txt. PHASE
two (after a restart of the bot): the same cookie still opens the same
conversation, its history first."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "unit"))
from webchat_client import Visitor, new_cookie, page_token  # noqa: E402

port, phase = int(sys.argv[1]), sys.argv[2]
from checks import check, finish  # noqa: E402


def reply(v, pred, timeout=20):
    """The bot message whose text matches; every bot message seen on the
    way is acked, as the page does (the queue keeps per-chat order)."""
    def match(x):
        if isinstance(x, dict) and x.get("t") == "msg":
            v.send({"t": "ack", "id": x["id"]})
            return pred(x["text"])
        return False
    for x in list(v.held):
        if isinstance(x, dict) and x.get("t") == "msg" and match(x):
            v.held.remove(x)
            return x
    m, _ = v.until(match, timeout)
    return m


def history(v):
    """The history frame a socket gets after hello: [(k, text)]."""
    m, _ = v.until(lambda x: isinstance(x, dict) and x.get("t") == "history", 10)
    return None if m is None else [(i["k"], i.get("text", "")) for i in m["items"]]


def starts_like(got, want):
    """got begins with want: [(k, predicate on the text)]."""
    return got is not None and len(got) >= len(want) and all(
        g[0] == k and p(g[1]) for g, (k, p) in zip(got, want))


LEAD = [("me", lambda t: t == "/start"), ("bot", lambda t: "VIN" in t),
        ("me", lambda t: t == "XW8ZZZ614BG012345"), ("bot", lambda t: t.startswith("Записал: VIN"))]


if phase == "one":
    cookie = new_cookie(port)
    open("cookie.txt", "w").write(cookie)
    v = Visitor(port, cookie)
    check("socket opens", v.status == 101, v.status)
    v.send({"t": "msg", "id": "r-1", "text": "/start"})
    check("greeting", reply(v, lambda t: "VIN" in t) is not None)
    v.send({"t": "msg", "id": "r-2", "text": "XW8ZZZ614BG012345"})
    check("VIN taken", reply(v, lambda t: t.startswith("Записал: VIN")) is not None)
    v.send({"t": "msg", "id": "r-2", "text": "XW8ZZZ614BG012345"})
    m, _ = v.until(lambda x: isinstance(x, dict) and x.get("t") == "ack" and x["id"] == "r-2", 20)
    check("resend acked", m is not None)
    again = [x for x in v.drain(1.0) if isinstance(x, dict) and x.get("t") == "msg"]
    check("resend not taken twice", not again, again)
    # the reply comes while the page is away: delivered once it is back
    v.send({"t": "msg", "id": "r-3", "text": "колодки передние"})
    v.close()
    time.sleep(0.5)
    v = Visitor(port, cookie)
    h = history(v)
    check("reconnect: the history from the store, both sides in order", starts_like(h, LEAD), h)
    check("reconnect: the resend is in it once",
          h is not None and sum(1 for x in h if x == ("me", "XW8ZZZ614BG012345")) == 1, h)
    check("the reply made while away arrives on reconnect",
          reply(v, lambda t: "колодки передние" in t, 30) is not None)
    forged = "shopbot_vid=" + "0" * 32 + cookie[len("shopbot_vid=") + 32:]
    check("forged visitor id refused", Visitor(port, forged).status == 401)
    check("foreign Origin refused", Visitor(port, cookie, origin="http://evil.example").status == 403)
    other = Visitor(port, new_cookie(port))
    check("a new visitor's history is empty", history(other) == [])
    for i in range(40):
        v.send({"t": "msg", "id": "f-%d" % i, "text": "флуд %d" % i})
    got = v.collect(lambda got: got and (got[-1] == "eof" or isinstance(got[-1], tuple)))
    rate = [x for x in got if isinstance(x, dict) and x.get("code") == "rate"]
    check("flood rate-limited", len(rate) >= 20, len(rate))
    check("flood closed", ("close", 1008) in got or "eof" in got, got[-2:])
    other.send({"t": "msg", "id": "o-1", "text": "/start"})
    check("another visitor unaffected", reply(other, lambda t: "VIN" in t) is not None)

    # No cookie (framed on another site, third-party cookies blocked): the
    # token the page handed out, said in the hello, is the same visitor on
    # every socket; a forged one is refused and gets a new visitor.
    tok, _ = page_token(port)
    check("the page hands out a token", tok and len(tok) == 65, tok)
    open("token.txt", "w").write(tok)
    t1 = Visitor(port, None, token=tok)
    check("token: the socket opens as its visitor",
          t1.status == 101 and t1.refusal is None and (t1.hello or {}).get("vid") == tok[:32],
          (t1.status, t1.refusal, t1.hello))
    t1.send({"t": "msg", "id": "t-1", "text": "/start"})
    check("token: greeting", reply(t1, lambda t: "VIN" in t) is not None)
    t1.close()
    t2 = Visitor(port, None, token=tok)
    h = history(t2)
    check("token, a new socket: the same conversation's history", starts_like(h, LEAD[:2]), h)
    t2.send({"t": "msg", "id": "t-2", "text": "XW8ZZZ614BG012345"})
    check("token, a new socket: the conversation goes on",
          reply(t2, lambda t: t.startswith("Записал: VIN")) is not None)
    t2.close()
    forged_tok = "0" * 32 + tok[32:]
    f = Visitor(port, None, token=forged_tok)
    check("a forged token: refused with a clear error",
          (f.refusal or {}).get("code") == "bad_token" and "not issued" in f.refusal.get("error", ""),
          f.refusal)
    check("... and a new visitor, not the one it names",
          (f.hello or {}).get("vid") not in (None, tok[:32], "0" * 32), f.hello)
    check("... who sees no one's conversation", history(f) == [])
    f.close()
else:
    cookie = open("cookie.txt").read()
    v = Visitor(port, cookie)
    check("after a restart the same cookie opens", v.status == 101, v.status)
    check("... as the same visitor", v.hello and v.hello["vid"] in cookie, v.hello)
    h = history(v)
    check("... with the conversation's history first", starts_like(h, LEAD + [
        ("me", lambda t: t == "колодки передние"), ("bot", lambda t: "колодки передние" in t)]), h)
    check("... bounded", h is not None and len(h) <= 50, len(h or []))
    v.send({"t": "msg", "id": "r-9", "text": "всё"})
    m = reply(v, lambda t: t.startswith("Заявка готова: VIN XW8ZZZ614BG012345"), 30)
    check("... and the same conversation goes on", m is not None, v.held)
    tok = open("token.txt").read()
    t = Visitor(port, None, token=tok)
    h = history(t)
    check("after a restart the token opens the same conversation",
          (t.hello or {}).get("vid") == tok[:32] and starts_like(h, LEAD), h)
finish()
