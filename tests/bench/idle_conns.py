#!/usr/bin/env python3
"""idle_conns.py — memory a server spends per idle HTTP/2 connection.

    idle_conns.py --port=P --pid=PID [--conns=N] [--host=H] [--settle=S]
                  [--timeout=S]

Reads the server's VmRSS (/proc/PID/status), opens N plaintext HTTP/2
connections to it — each sends the client preface and an empty SETTINGS
frame, then ACKs the server's SETTINGS — waits until every connection has
had its SETTINGS ACKed by the server (or --timeout seconds pass), lets the
server settle, reads VmRSS again, and prints one line:

    conns=<n> rss_before_kb=<n> rss_after_kb=<n> bytes_per_conn=<n>

Before measuring, a warm-up batch of 10 connections is opened and closed so
that memory the server allocates once, on its first connections, is not
charged to the N.  The connections stay idle: no stream is ever opened; a
server PING is answered.  Raises its own fd limit to the hard limit; the
server needs N + a few fds too.  Exit status 1 when not all N connections
came up.
"""
import argparse
import resource
import selectors
import socket
import struct
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS, PING = 0x4, 0x6
ACK = 0x1


def frame(ftype, flags, stream, payload=b""):
    n = len(payload)
    return struct.pack(">BHBBI", n >> 16, n & 0xFFFF, ftype, flags, stream) + payload


def vmrss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Conn:
    """One client connection: the bytes it still has to parse and its state."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.out = PREFACE + frame(SETTINGS, 0, 0)
        self.acked = False  # the server ACKed our SETTINGS
        self.dead = False


def pump(sel, conns, until, done):
    """Runs the connections until done() or the deadline."""
    while not done() and time.monotonic() < until:
        for key, ev in sel.select(timeout=0.05):
            c = key.data
            if ev & selectors.EVENT_WRITE and c.out:
                try:
                    n = c.sock.send(c.out)
                    c.out = c.out[n:]
                except BlockingIOError:
                    pass
                except OSError:
                    kill(sel, c)
                    continue
            if ev & selectors.EVENT_READ:
                try:
                    data = c.sock.recv(65536)
                except BlockingIOError:
                    data = None
                except OSError:
                    data = b""
                if data == b"":
                    kill(sel, c)
                    continue
                if data:
                    c.buf += data
                    parse(c)
            if not c.dead:
                want = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0)
                if key.events != want:
                    sel.modify(c.sock, want, c)


def kill(sel, c):
    if not c.dead:
        c.dead = True
        sel.unregister(c.sock)
        c.sock.close()


def parse(c):
    while len(c.buf) >= 9:
        hi, lo, ftype, flags, stream = struct.unpack(">BHBBI", c.buf[:9])
        n = (hi << 16) | lo
        if len(c.buf) < 9 + n:
            return
        payload = c.buf[9 : 9 + n]
        c.buf = c.buf[9 + n :]
        if ftype == SETTINGS:
            if flags & ACK:
                c.acked = True
            else:
                c.out += frame(SETTINGS, ACK, 0)
        elif ftype == PING and not flags & ACK:
            c.out += frame(PING, ACK, 0, payload)


def open_conns(sel, host, port, n):
    conns = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        s.connect_ex((host, port))
        c = Conn(s)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
        conns.append(c)
    return conns


def close_conns(sel, conns):
    for c in conns:
        kill(sel, c)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=20.0)
    a = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = a.conns + 64
    if soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))

    sel = selectors.DefaultSelector()
    deadline = time.monotonic() + a.timeout

    warm = open_conns(sel, a.host, a.port, 10)
    pump(sel, warm, deadline, lambda: all(c.acked or c.dead for c in warm))
    close_conns(sel, warm)
    time.sleep(a.settle)

    before = vmrss_kb(a.pid)
    conns = open_conns(sel, a.host, a.port, a.conns)
    pump(sel, conns, deadline, lambda: all(c.acked or c.dead for c in conns))
    # Keep answering (PINGs, late frames) while the server settles.
    pump(sel, conns, time.monotonic() + a.settle, lambda: False)
    up = sum(1 for c in conns if c.acked and not c.dead)
    after = vmrss_kb(a.pid)
    close_conns(sel, conns)

    per = (after - before) * 1024 // max(up, 1)
    print(f"conns={up} rss_before_kb={before} rss_after_kb={after} bytes_per_conn={per}")
    if up != a.conns:
        print(f"idle_conns.py: only {up} of {a.conns} connections came up", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
