#!/usr/bin/env python3
"""bench/tls.sh's idle HTTPS client: PORT CA PIDS [N].

Opens N (1,000) TLS connections, each making one keep-alive GET /hello and then sitting
idle, and prints "KIB KiB/conn": the growth of the summed RSS of PIDS (comma-separated: every
process of the server that holds connections) per connection."""
import resource
import socket
import ssl
import sys
import time


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def get_hello(s):
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
    data = b""
    while True:
        b = s.recv(4096)
        if not b:
            raise RuntimeError("closed before the response")
        data += b
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            lengths = [h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")]
            if len(body) >= int(lengths[0].split(b":")[1]):
                return


def main():
    port, ca = int(sys.argv[1]), sys.argv[2]
    pids = [int(p) for p in sys.argv[3].split(",")]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    ctx = ssl.create_default_context(cafile=ca)
    time.sleep(0.2)
    before = rss_kib(pids)
    held = []
    for _ in range(n):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")
        get_hello(s)
        held.append(s)
    time.sleep(0.5)
    print("%.2f KiB/conn" % ((rss_kib(pids) - before) / n))
    for s in held:
        s.close()


if __name__ == "__main__":
    main()
