"""webchat_client.py -- a web chat visitor over raw sockets (no third-party
module), for the web chat tests and benchmark: the page's HTTP requests
(cookie, upload, media) and its websocket protocol (plugins/webchat/README.md).
Every socket wait is bounded."""
import json
import os
import re
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ws_client import Conn, frame  # noqa: E402


def http(port, method, path, body=b"", headers=None, timeout=5):
    """One request on its own connection: (status, {name: value}, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    h = {"Host": "127.0.0.1:%d" % port, "Connection": "close"}
    h.update(headers or {})
    if method in ("POST", "PUT"):
        h["Content-Length"] = str(len(body))
    req = "%s %s HTTP/1.1\r\n" % (method, path) + "".join(
        "%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
    s.sendall(req.encode() + body)
    data = b""
    while True:
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        if not d:
            break
        data += d
        # done once the body announced by Content-Length is in
        head, sep, rest = data.partition(b"\r\n\r\n")
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head) if sep else None
        if m and len(rest) >= int(m.group(1)):
            break
    s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs.setdefault(k.strip().lower(), []).append(v.strip())
    return status, hdrs, rest


def new_cookie(port, base="/"):
    st, h, body = http(port, "GET", base)
    assert st == 200, st
    c = h["set-cookie"][0].split(";")[0]
    return c


def page_token(port, base="/", headers=None):
    """(the token the page hands out in data-token, the Set-Cookie line or
    None): what a framed page with its cookie blocked keeps."""
    st, h, body = http(port, "GET", base, headers=headers)
    assert st == 200, st
    m = re.search(rb'data-token="([0-9a-f.]+)"', body)
    return (m.group(1).decode() if m else None), (h.get("set-cookie") or [None])[0]


class Visitor:
    """One websocket of one visitor. With no cookie it says the page's
    hello with token (None: no token) and reads what answers it: the
    refusal of a bad token (self.refusal) and the server's hello."""

    def __init__(self, port, cookie=None, origin="default", base="/", timeout=5, token=False,
                 hello=True):
        self.port, self.cookie, self.base = port, cookie, base
        self.held = []
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        req = ("GET %sws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n" % (base, port))
        if origin == "default":
            origin = "http://127.0.0.1:%d" % port
        if origin:
            req += "Origin: %s\r\n" % origin
        if cookie:
            req += "Cookie: %s\r\n" % cookie
        self.s.sendall((req + "\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            d = self.s.recv(4096)
            if not d:
                break
            head += d
        line = head.split(b"\r\n", 1)[0].decode()
        parts = line.split()
        self.status = int(parts[1]) if len(parts) > 1 else 0
        self.c = Conn(self.s)
        self.c.buf = head.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in head else b""
        self.hello = self.refusal = None
        if self.status == 101 and not cookie and hello:
            self.send({"t": "hello", "token": token or None})
            m = self.recv()
            if isinstance(m, dict) and m.get("t") == "err":
                self.refusal, m = m, self.recv()
            self.hello = m
        elif self.status == 101:
            self.hello = self.recv()

    def send(self, obj):
        self.s.sendall(frame(1, json.dumps(obj, ensure_ascii=False).encode()))

    def raw(self, opcode, payload):
        self.s.sendall(frame(opcode, payload))

    def recv(self, timeout=5):
        """The next message as a dict, ("close", code), "eof" or None (timeout)."""
        self.s.settimeout(timeout)
        try:
            op, data = self.c.read_msg()
        except socket.timeout:
            return None
        except (EOFError, ConnectionResetError, OSError):
            return "eof"
        if op == 8:
            return ("close", struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005)
        if op == 1:
            return json.loads(data.decode())
        return ("bin", data)

    def until(self, pred, timeout=5):
        """Messages until pred(m) holds: (the matching one, those before).
        Messages read earlier and not matched are looked at first."""
        for i, m in enumerate(self.held):
            if pred(m):
                del self.held[i]
                return m, []
        end, seen = time.time() + timeout, []
        while time.time() < end:
            m = self.recv(max(0.05, end - time.time()))
            if m is None:
                break
            if pred(m):
                return m, seen
            seen.append(m)
            self.held.append(m)
            if m == "eof" or isinstance(m, tuple):
                break
        return None, seen

    def collect(self, done, timeout=30):
        """Everything held and arriving until done(the list so far) holds,
        the socket ends, or timeout: a wait on what is expected, not on a
        fixed time that a loaded machine may overrun."""
        out, end = self.held, time.time() + timeout
        self.held = []
        while not done(out) and time.time() < end:
            m = self.recv(max(0.01, end - time.time()))
            if m is None:
                break
            out.append(m)
            if m == "eof" or isinstance(m, tuple):
                break
        return out

    def drain(self, secs):
        """Everything held and arriving within secs."""
        out, end = self.held, time.time() + secs
        self.held = []
        while time.time() < end:
            m = self.recv(max(0.01, end - time.time()))
            if m is None:
                break
            out.append(m)
            if m == "eof" or isinstance(m, tuple):
                break
        return out

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass
