#!/usr/bin/env python3
"""webchat_ws.py PORT DATA_DIR -- the web chat plugin's protocol end to end
against test_webchat's server (whose fake host answers every new message
with "echo: TEXT" and buttons Да/Нет, max_message_bytes 200, burst 5).
Prints "ok ..." / "FAIL ..." per check and "N passed, N failed"; exits 1 on
a failure."""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webchat_client import Visitor, http, new_cookie, page_token  # noqa: E402

port = int(sys.argv[1])
from checks import check, finish  # noqa: E402


def is_msg(text):
    return lambda m: isinstance(m, dict) and m.get("t") == "msg" and m.get("text") == text


def is_ack(mid):
    return lambda m: isinstance(m, dict) and m.get("t") == "ack" and m.get("id") == mid


# the page and its files
st, h, body = http(port, "GET", "/")
check("page 200", st == 200, st)
check("page sets a visitor cookie", "set-cookie" in h and "HttpOnly" in h["set-cookie"][0], h)
check("page loads chat.js", b'src="/chat.js"' in body)
check("page has a CSP", "content-security-policy" in h)
cookie = h["set-cookie"][0].split(";")[0]
st, h2, _ = http(port, "GET", "/", headers={"Cookie": cookie})
check("a valid cookie is kept", "set-cookie" not in h2, h2)
check("over plain http the cookie is SameSite=Lax", "SameSite=Lax" in h["set-cookie"][0], h)
for proxy in ({"X-Forwarded-Proto": "https"}, {"Forwarded": "for=1.2.3.4;proto=https"}):
    st, h3, _ = http(port, "GET", "/", headers=proxy)
    sc = (h3.get("set-cookie") or [""])[0]
    check("behind an https proxy (%s) the cookie can be framed: SameSite=None; Secure; "
          "Partitioned" % list(proxy)[0], "SameSite=None; Secure; Partitioned" in sc, sc)
st, _, js = http(port, "GET", "/chat.js")
check("chat.js served", st == 200 and b"WebSocket" in js)
st, _, _ = http(port, "GET", "/chat.css")
check("chat.css served", st == 200)

# who may open the socket
# no cookie (a page framed on another site, its cookies blocked): the hello
# with the token the page handed out opens the same visitor; a forged one
# gets an error and a new visitor; no hello at all: nothing but the hello
tok, _ = page_token(port, headers={"Cookie": cookie})
check("the page carries the cookie's visitor as a token", tok == cookie.split("=", 1)[1], tok)
v = Visitor(port, None, token=tok)
check("no cookie, the token: open as that visitor",
      v.status == 101 and v.refusal is None and isinstance(v.hello, dict)
      and v.hello.get("vid") == tok.split(".")[0] and v.hello.get("token") == tok, (v.refusal, v.hello))
v.close()
bad = "f" * 32 + tok[32:]
v = Visitor(port, None, token=bad)
check("a forged token: refused, said why",
      isinstance(v.refusal, dict) and v.refusal.get("code") == "bad_token"
      and "not issued by this shop" in v.refusal.get("error", ""), v.refusal)
check("... and a new visitor with its own token",
      isinstance(v.hello, dict) and v.hello.get("vid") not in (tok[:32], "f" * 32)
      and v.hello.get("token", "").startswith(v.hello.get("vid", "?")), v.hello)
v.close()
v = Visitor(port, None, token=None)
check("no token: a new visitor, no error", v.refusal is None and isinstance(v.hello, dict)
      and v.hello.get("vid") != tok[:32], (v.refusal, v.hello))
v.close()
v = Visitor(port, None, hello=False)
v.send({"t": "msg", "id": "x-1", "text": "кто я?"})
m = v.recv()
check("no cookie, a message before the hello: refused, said why",
      isinstance(m, dict) and m.get("code") == "hello_first", m)
check("... and closed", v.recv() in (("close", 1008), "eof"))
v.close()
# the token also opens the visitor's uploads and photos (no cookie)
st, _, _ = http(port, "POST", "/upload", b"\xff\xd8\xff\xe0jpeg", headers={"X-Shopbot-Visitor": bad})
check("upload with a forged token: 401", st == 401, st)
forged = "shopbot_vid=" + "f" * 32 + cookie[len("shopbot_vid=") + 32:]
v = Visitor(port, forged)
check("forged visitor id: refused", v.status == 401, v.status)
v = Visitor(port, cookie, origin="http://evil.example")
check("foreign Origin: refused", v.status == 403, v.status)
a = Visitor(port, cookie)
check("own Origin: open", a.status == 101, a.status)
vid = cookie.split("=")[1].split(".")[0]
check("hello names the visitor", isinstance(a.hello, dict) and a.hello.get("vid") == vid, a.hello)

# a message, its ack, the bot's reply with buttons, our ack
a.send({"t": "msg", "id": "p-1", "text": "привет"})
m, _ = a.until(is_ack("p-1"))
check("message acked after commit", m is not None)
m, _ = a.until(is_msg("echo: привет"))
check("bot reply arrives", m is not None)
check("bot reply has buttons", m and m.get("buttons") == ["Да", "Нет"], m)
a.send({"t": "ack", "id": m["id"]})

# the same id again (a resend after a drop): acked, not taken twice
a.send({"t": "msg", "id": "p-1", "text": "привет"})
m, seen = a.until(is_ack("p-1"))
check("resend acked", m is not None)
extra = [x for x in seen + a.drain(0.6) if isinstance(x, dict) and x.get("t") == "msg"]
check("resend not answered twice", not extra, extra)

# a drop right after sending: reconnect, resend, one reply in all
a.send({"t": "msg", "id": "p-2", "text": "второе"})
a.close()
a = Visitor(port, cookie)
a.send({"t": "msg", "id": "p-2", "text": "второе"})
got = a.collect(lambda got: any(is_ack("p-2")(x) for x in got) and
                any(is_msg("echo: второе")(x) for x in got))
got += a.drain(0.3)   # a second copy would come right behind
replies = [x for x in got if isinstance(x, dict) and x.get("t") == "msg" and x["text"] == "echo: второе"]
acks = [x for x in got if is_ack("p-2")(x)]
check("after the drop the message is acked", len(acks) >= 1, got)
check("after the drop the reply comes (replayed)", len(replies) >= 1, got)
for r in replies:
    a.send({"t": "ack", "id": r["id"]})
check("replays carry the same id", len({r["id"] for r in replies}) == 1, replies)

# a second tab of the same visitor: the conversation so far comes first,
# from the host's store, both sides in order
b = Visitor(port, cookie)
m, _ = b.until(lambda x: isinstance(x, dict) and x.get("t") == "history")
items = m["items"] if m else []
check("a new socket gets the history", m is not None)
said = [(i["k"], i.get("text")) for i in items]
check("history: both sides, in order",
      said[:4] == [("me", "привет"), ("bot", "echo: привет"), ("me", "второе"), ("bot", "echo: второе")],
      said)
check("history: the customer's messages carry the page's ids",
      [i.get("id") for i in items if i["k"] == "me"][:2] == ["p-1", "p-2"], items)
check("history: bot messages carry their ids and buttons (strings or {text})",
      items[1].get("id") == 1 and items[1].get("buttons") == ["Да", "Нет"], items[:2])
forged = [i for i in items if i.get("text") == "чужое фото"]
check("history: a photo that is not the visitor's is not passed on",
      forged and "file" not in forged[0] and "id" not in forged[0], forged)
a.send({"t": "msg", "id": "p-3", "text": "третье"})
m, _ = b.until(is_msg("echo: третье"))
check("second tab gets the reply too", m is not None)
if m:
    b.send({"t": "ack", "id": m["id"]})
a.drain(0.3)
b.close()

# another visitor sees nothing of this one's conversation
cookie2 = new_cookie(port)
o = Visitor(port, cookie2)
m, _ = o.until(lambda x: isinstance(x, dict) and x.get("t") == "history")
check("another visitor's history has none of it",
      m is not None and [i.get("text") for i in m["items"]] == ["чужое фото"], m)
a.send({"t": "msg", "id": "p-4", "text": "секрет"})
m, _ = a.until(is_msg("echo: секрет"))
if m:
    a.send({"t": "ack", "id": m["id"]})
leak = [x for x in o.drain(0.8) if isinstance(x, dict) and x.get("t") == "msg"]
check("another visitor sees none of it", not leak, leak)

# bad input: each a clear error, the socket stays
a.raw(1, b"not json")
m, _ = a.until(lambda x: isinstance(x, dict) and x.get("t") == "err")
check("malformed JSON: error", m and m["code"] == "malformed", m)
a.raw(2, b"\x00\x01")
m, _ = a.until(lambda x: isinstance(x, dict) and x.get("t") == "err")
check("binary frame: error", m and m["code"] == "malformed", m)
a.send({"t": "msg", "id": "bad id!", "text": "x"})
m, _ = a.until(lambda x: isinstance(x, dict) and x.get("t") == "err")
check("bad id: error", m and m["code"] == "malformed", m)
a.send({"t": "msg", "id": "p-5", "text": "я" * 150})  # 300 bytes > 200
m, _ = a.until(lambda x: isinstance(x, dict) and x.get("t") == "err")
check("too long: error names the limit", m and m["code"] == "too_long" and "200" in m["error"], m)
a.send({"t": "msg", "id": "p-6", "text": ""})
m, _ = a.until(lambda x: isinstance(x, dict) and x.get("t") == "err")
check("empty: error", m and m["code"] == "empty", m)
a.send({"t": "photo", "id": "p-7", "file": "../../etc/passwd"})
m, _ = a.until(lambda x: isinstance(x, dict) and x.get("t") == "err")
check("photo outside the visitor's files: error", m and m["code"] == "bad_photo", m)
a.send({"t": "msg", "id": "p-8", "text": "после ошибок"})
m, _ = a.until(is_ack("p-8"))
check("socket still works after bad input", m is not None)
m, _ = a.until(is_msg("echo: после ошибок"))
if m:
    a.send({"t": "ack", "id": m["id"]})

# photos: only images, only the visitor's own
st, _, body = http(port, "POST", "/upload", b"%PDF-1.4 not a photo",
                   {"Cookie": cookie, "Origin": "http://127.0.0.1:%d" % port})
check("a non-image upload is refused (415)", st == 415 and b"JPEG" in body, (st, body))
st, _, _ = http(port, "POST", "/upload", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, {})
check("upload without cookie refused", st == 401, st)
st, _, _ = http(port, "POST", "/upload", b"\x89PNG\r\n\x1a\n" + b"\0" * 64,
                {"Cookie": cookie, "Origin": "http://evil.example"})
check("upload from a foreign site refused", st == 403, st)
png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
st, _, body = http(port, "POST", "/upload", png, {"Cookie": cookie})
check("photo uploaded", st == 200 and b'"file"' in body, (st, body))
import json  # noqa: E402
fname = json.loads(body)["file"] if st == 200 else "x"
check("photo kept in the data folder",
      os.path.exists(os.path.join(sys.argv[2], fname)))
a.send({"t": "photo", "id": "p-9", "file": fname, "text": "вот деталь"})
m, _ = a.until(is_ack("p-9"))
check("photo message acked", m is not None)
m, _ = a.until(is_msg("echo: photo вот деталь"))
check("photo reached the host as a photo", m is not None)
if m:
    a.send({"t": "ack", "id": m["id"]})
st, h, body = http(port, "GET", "/media/" + fname, headers={"Cookie": cookie})
check("own photo shown", st == 200 and body == png and h.get("content-type") == ["image/png"], st)
st, _, _ = http(port, "GET", "/media/" + fname, headers={"Cookie": cookie2})
check("another visitor cannot see it", st == 404, st)
# framed with no cookie: the token opens uploads (header) and photos (?v=)
tok = cookie.split("=", 1)[1]
st, _, body = http(port, "POST", "/upload", png, {"X-Shopbot-Visitor": tok})
check("no cookie: upload with the visitor's token", st == 200 and b'"file"' in body, (st, body))
f2 = json.loads(body)["file"] if st == 200 else "x"
check("... kept as the token's visitor's", f2.startswith(vid + "-"), f2)
st, _, body = http(port, "GET", "/media/%s?v=%s" % (f2, tok))
check("no cookie: own photo shown with ?v=token", st == 200 and body == png, st)
other_tok = cookie2.split("=", 1)[1]
st, _, _ = http(port, "GET", "/media/%s?v=%s" % (f2, other_tok))
check("another visitor's token cannot see it", st == 404, st)
st, _, _ = http(port, "GET", "/media/%s?v=%s" % (f2, "0" * 32 + tok[32:]))
check("a forged token cannot see it", st == 404, st)

# a flood: rate-limited with a clear error, then the socket is closed;
# the other visitor is unaffected
errs, acks = 0, 0
for i in range(40):
    a.send({"t": "msg", "id": "f-%d" % i, "text": "флуд %d" % i})
got = a.collect(lambda got: got and (got[-1] == "eof" or isinstance(got[-1], tuple)))
errs = [x for x in got if isinstance(x, dict) and x.get("code") == "rate"]
check("flood rate-limited", len(errs) >= 20, len(errs))
check("rate error says how long to wait", errs and errs[0].get("retry_ms", 0) > 0, errs[:1])
check("flood closed with 1008", ("close", 1008) in got or "eof" in got, got[-3:])
o.send({"t": "msg", "id": "o-1", "text": "я другой"})
m, _ = o.until(is_msg("echo: я другой"))
check("the other visitor is unaffected", m is not None)
if m:
    o.send({"t": "ack", "id": m["id"]})

# oversized frame (over the endpoint's cap) and bad UTF-8: closed by the server
c = Visitor(port, cookie2)
c.raw(1, b"x" * 70000)
m = c.collect(lambda got: got and (got[-1] == "eof" or isinstance(got[-1], tuple)))
check("oversized frame closes 1009", ("close", 1009) in m, m[-2:])
c = Visitor(port, cookie2)
c.raw(1, b'{"t":"msg","id":"u-1","text":"\xff\xfe"}')
m = c.collect(lambda got: got and (got[-1] == "eof" or isinstance(got[-1], tuple)))
check("bad UTF-8 closes 1007", ("close", 1007) in m, m[-2:])
o.close()
a.close()
finish()
