#!/usr/bin/env python3
"""ws_client.py -- a small websocket client over raw sockets for
test_httpd_routes (no third-party module). Usage:

  ws_client.py PORT PATH [ORIGIN] STEP...

It connects to 127.0.0.1:PORT, sends the upgrade for PATH (with Origin:
ORIGIN unless ORIGIN is "-") and prints "status NNN". Then each STEP:
  text:WORDS    send a masked text message, print what comes back
  bin:N         send N bytes 0..255 repeating as one binary message
  frag:A,B      send text A then continuation B (FIN on the last)
  big:N         send a text message of N bytes
  unmasked      send an unmasked text frame (a protocol error)
  badop         send a frame with reserved opcode 3
  huge          send a header announcing 2^63-1 bytes and a few bytes
  badutf8       send a text frame that is not UTF-8
  noread:N      ask the server for N echo messages ("flood N") and read none
  close         send a close frame 1000
Each reply is printed as "text <payload>", "bin <len> <ok|bad>",
"close <code>" or "eof". Every socket wait is bounded (5 s)."""
import os
import socket
import struct
import sys
import time


def frame(opcode, payload, fin=True, mask=True):
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return hdr + payload
    key = os.urandom(4)
    return hdr + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


class Conn:
    def __init__(self, sock):
        self.s = sock
        self.buf = b""

    def need(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise EOFError
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_msg(self):
        """One whole message: (opcode, payload); pings are answered."""
        data, op0 = b"", None
        while True:
            b0, b1 = self.need(2)
            op, n = b0 & 15, b1 & 127
            if n == 126:
                n = struct.unpack("!H", self.need(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self.need(8))[0]
            payload = self.need(n)
            if op == 9:
                self.s.sendall(frame(10, payload))
                continue
            if op0 is None:
                op0 = op
            data += payload
            if b0 & 0x80 or op >= 8:
                return op0 if op < 8 else op, data


def report(c):
    try:
        op, data = c.read_msg()
    except (EOFError, ConnectionResetError):
        print("eof")
        return False
    except socket.timeout:
        print("timeout")
        return False
    if op == 1:
        print("text " + data.decode("utf-8", "replace"))
    elif op == 2:
        ok = all(b == i % 256 for i, b in enumerate(data))
        print("bin %d %s" % (len(data), "ok" if ok else "bad"))
    elif op == 8:
        code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
        print("close %d" % code)
        return False
    return True


def main():
    port, path, origin = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n" % (path, port))
    if origin != "-":
        req += "Origin: %s\r\n" % origin
    s.sendall((req + "\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(4096)
        if not d:
            break
        head += d
    line = head.split(b"\r\n", 1)[0].decode()
    print("status " + (line.split()[1] if len(line.split()) > 1 else "none"))
    sys.stdout.flush()
    if " 101 " not in line + " ":
        return
    c = Conn(s)
    c.buf = head.split(b"\r\n\r\n", 1)[1]
    for step in sys.argv[4:]:
        kind, _, arg = step.partition(":")
        if kind == "text":
            s.sendall(frame(1, arg.encode()))
        elif kind == "bin":
            s.sendall(frame(2, bytes(i % 256 for i in range(int(arg)))))
        elif kind == "frag":
            a, b = arg.split(",")
            s.sendall(frame(1, a.encode(), fin=False) + frame(0, b.encode()))
        elif kind == "big":
            s.sendall(frame(1, b"x" * int(arg)))
        elif kind == "unmasked":
            s.sendall(frame(1, b"plain", mask=False))
        elif kind == "badop":
            s.sendall(frame(3, b"what"))
        elif kind == "huge":
            key = os.urandom(4)
            s.sendall(struct.pack("!BBQ", 0x81, 0x80 | 127, (1 << 63) - 1) + key +
                      bytes(c ^ key[i] for i, c in enumerate(b"abcd")))
        elif kind == "badutf8":
            s.sendall(frame(1, b"\xff\xfe\xc0"))
        elif kind == "noread":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(frame(1, ("flood " + arg).encode()))
            # read nothing; the server must give up on us
            try:
                for _ in range(20):
                    time.sleep(0.25)
                    s.sendall(frame(9, b""))
                print("still-open")
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                print("dropped")
            return
        elif kind == "close":
            s.sendall(frame(8, struct.pack("!H", 1000)))
        sys.stdout.flush()
        if not report(c):
            break
    sys.stdout.flush()


if __name__ == "__main__":
    main()
