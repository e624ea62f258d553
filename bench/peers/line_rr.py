#!/usr/bin/env python3
"""bench/redis_rr.sh's client for examples/counter.lua: PORT CONNS SECONDS [KEY].

Each of CONNS connections sends "INCR KEY\\n", waits for its one-line answer (which must be a
number: anything else, or a close, fails the run) and sends the next, for SECONDS. Prints
"requests=N per_s=R" (answers counted within the time)."""
import selectors
import socket
import sys
import time


def main():
    port, conns, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    key = sys.argv[4] if len(sys.argv) > 4 else "bench"
    req = ("INCR %s\n" % key).encode()
    sel = selectors.DefaultSelector()
    pending = {}
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        pending[s] = b""
    start = time.monotonic()
    end = start + secs
    for s in pending:
        s.send(req)
    done = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        for key_, _ in sel.select(end - now):
            s = key_.fileobj
            data = s.recv(4096)
            if not data:
                sys.exit("line_rr: the server closed a connection")
            buf = pending[s] + data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if not line.isdigit():
                    sys.exit("line_rr: unexpected answer %r" % line[:80])
                done += 1
                s.send(req)
            pending[s] = buf
    elapsed = time.monotonic() - start
    print("requests=%d per_s=%.1f" % (done, done / elapsed))


main()
