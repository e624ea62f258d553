#!/usr/bin/env python3
"""bench/tls.sh's echo client: SCHEME (tls|tcp) PORT CA SECONDS SERVER_PID.

Prints "tls_echo_4k RATE MiB/s" (4 KiB messages, 16 in flight on each of 10 connections,
for SECONDS) and "tls_idle_mem KIB KiB/conn" (the server's RSS growth per connection while
1,000 connections that finished their handshake sit idle)."""
import selectors
import socket
import ssl
import sys
import time


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def connect(scheme, port, ca):
    s = socket.create_connection(("127.0.0.1", port))
    if scheme == "tls":
        ctx = ssl.create_default_context(cafile=ca)
        s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
        s.sendall(b"x")  # the handshake is done on the server's side too once it echoes
        s.recv(1)
    return s


def echo(scheme, port, ca, secs):
    msg, depth, conns = b"m" * 4096, 16, 10
    sel = selectors.DefaultSelector()
    socks = [connect(scheme, port, ca) for _ in range(conns)]
    owed = {}
    for s in socks:
        s.sendall(msg * depth)
        owed[s] = 4096 * depth
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    got, end = 0, time.monotonic() + secs
    while time.monotonic() < end:
        for key, _ in sel.select(1):
            s = key.fileobj
            try:
                n = len(s.recv(1 << 20))
            except (ssl.SSLWantReadError, BlockingIOError):
                continue
            got += n
            owed[s] -= n
            while owed[s] <= 4096 * (depth - 1):
                s.setblocking(True)
                s.sendall(msg)
                s.setblocking(False)
                owed[s] += 4096
    print("tls_echo_4k %.1f MiB/s" % (got / secs / (1 << 20)))
    for s in socks:
        s.close()


def idle(scheme, port, ca, pid):
    import resource
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    time.sleep(0.2)
    before = rss_kib(pid)
    held = [connect(scheme, port, ca) for _ in range(1000)]
    time.sleep(0.5)
    after = rss_kib(pid)
    print("tls_idle_mem %.2f KiB/conn" % ((after - before) / 1000))
    for s in held:
        s.close()


def main():
    scheme, port, ca, secs, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
    echo(scheme, port, ca, secs)
    idle(scheme, port, ca, pid)


if __name__ == "__main__":
    main()
