#!/usr/bin/env python3
"""TLS clients for tests/integration/tls_spec.lua (Lua has no TLS of its own here).

Each command prints "ok ..." lines and exits 0, or prints what went wrong and exits 1.

  echo PORT CA NAME VERSION SIZE...    byte-exact echo of one message of each size
  frames PORT CA SPEC                  framed messages (cut at every record boundary we
                                       can force) answered as "LEN:PAYLOAD\\n" each
  line PORT CA NAME                    the first line the server sends
  http PORT CA NAME PATH               GET PATH, prints the status line and the body
  pipelined PORT CA PATH...            GETs of every PATH in one write on one connection (the
                                       last with Connection: close); prints per response
                                       "STATUS LENGTH SHA256" in the order they came
  shrink PORT CA PATH FILE             GET PATH (FILE, at least 4 MiB), truncates FILE in place
                                       after the first MiB of body, reads to the end; prints
                                       "ok status STATUS, body B of LENGTH"
  timeout PORT                         half a ClientHello, then waits for the server to close
  garbage PORT CA                      a finished handshake, then bytes that are no TLS record
  truncate PORT CA                     a finished handshake, data, then a FIN without
                                       close_notify
  alert PORT WRONG_CA                  a client that rejects the certificate (sends an alert)
  halfdone PORT N CA                   N connections that send a ClientHello and stop; while
                                       they hang, one full client is served; then all close
  starttls CERT KEY                    a plaintext server (prints "PORT N" first) for one
                                       client: answers "STARTTLS" with "OK", takes a TLS
                                       handshake and echoes one line over it
  serve CERT KEY N                     a TLS server (prints "PORT N" first) for N connections
                                       at once: each is taken through its handshake and held
                                       until the client closes; exits when all are over
  cycles PORT CA N VERSION             N sequential new connections, each a handshake (resumed
                                       from the previous session's ticket after the first),
                                       GET /hello with Connection: close, and the server's
                                       close; prints the slowest cycle and how many resumed
"""
import os
import resource
import socket
import ssl
import sys
import time

HOST = "127.0.0.1"


def context(ca, version=None):
    ctx = ssl.create_default_context(cafile=ca)
    if version == "1.2":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    elif version == "1.3":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def connect(port, ca, name="localhost", version=None):
    raw = socket.create_connection((HOST, port), timeout=10)
    return context(ca, version).wrap_socket(raw, server_hostname=name)


def recv_exact(s, n):
    parts, got = [], 0
    while got < n:
        b = s.recv(min(1 << 20, n - got))
        if not b:
            raise RuntimeError("closed after %d of %d bytes" % (got, n))
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def pattern(n):
    block = bytes((i * 7 + 3) % 251 for i in range(251))
    return (block * (n // 251 + 1))[:n]


def cmd_echo(port, ca, name, version, *sizes):
    s = connect(int(port), ca, name, version)
    for size in map(int, sizes):
        data = pattern(size)
        s.sendall(data)
        back = recv_exact(s, size)
        if back != data:
            print("mismatch at size %d" % size)
            return 1
        print("ok %s %d" % (s.version(), size))
    s.close()
    return 0


def frame(spec, payload):
    if spec == "line":
        return payload + b"\n"
    if spec == "length:u16be":
        return len(payload).to_bytes(2, "big") + payload
    if spec == "length:i32le":
        return len(payload).to_bytes(4, "little") + payload
    if spec.startswith("fixed:"):
        return payload
    raise ValueError(spec)


def cmd_frames(port, ca, spec):
    s = connect(int(port), ca)
    if spec.startswith("fixed:"):
        n = int(spec.split(":")[1])
        payloads = [pattern(n), b"x" * n, bytes(range(n))]
    else:
        big = pattern(5000)
        payloads = [b"a", b"hello", big.replace(b"\n", b".") if spec == "line" else big, b"end"]
    wire = b"".join(frame(spec, p) for p in payloads)
    # Every write is one TLS record: frames arrive cut at odd places (one byte, then 3, 7...).
    i, step = 0, 1
    while i < len(wire):
        s.sendall(wire[i:i + step])
        i += step
        step = step * 2 + 1
    want = b"".join(b"%d:%s\n" % (len(p), p) for p in payloads)
    back = recv_exact(s, len(want))
    if back != want:
        print("mismatch: %r" % back[:80])
        return 1
    print("ok %s %d frames" % (spec, len(payloads)))
    s.close()
    return 0


def cmd_line(port, ca, name):
    s = connect(int(port), ca, name)
    line = b""
    while not line.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            break
        line += b
    print(line.decode().rstrip("\n"))
    return 0


def cmd_http(port, ca, name, path):
    s = connect(int(port), ca, name)
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, name))
              .encode())
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    head, _, body = data.partition(b"\r\n\r\n")
    print(head.split(b"\r\n")[0].decode())
    print(body.decode(errors="replace"))
    return 0


def status_and_length(head):
    """The status line and the Content-Length of a response head (bytes)."""
    status = head.split(b"\r\n")[0].decode()
    return status, int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])


def cmd_pipelined(port, ca, *paths):
    import hashlib
    s = connect(int(port), ca)
    reqs = ["GET %s HTTP/1.1\r\nHost: localhost\r\n%s\r\n"
            % (p, "Connection: close\r\n" if i == len(paths) - 1 else "")
            for i, p in enumerate(paths)]
    s.sendall("".join(reqs).encode())
    data = b""
    while True:
        b = s.recv(1 << 16)
        if not b:
            break
        data += b
    for _ in paths:
        head, _, data = data.partition(b"\r\n\r\n")
        status, length = status_and_length(head)
        body, data = data[:length], data[length:]
        print(status, len(body), hashlib.sha256(body).hexdigest())
    if data:
        raise RuntimeError("%d bytes after the last response" % len(data))
    return 0


def cmd_shrink(port, ca, path, file):
    s = connect(int(port), ca)
    s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(65536)
        if not b:
            raise RuntimeError("closed before the head: %r" % data)
        data += b
    head, _, body = data.partition(b"\r\n\r\n")
    status, length = status_and_length(head)
    got, cut = len(body), False
    while True:
        if not cut and got >= 1 << 20:
            os.truncate(file, 0)
            cut = True
        try:
            b = s.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not b:
            break
        got += len(b)
    print("ok status %s, body %s of %d" % (status, "all" if got == length else "part", length))
    return 0


def client_hello():
    """The bytes of a real ClientHello, made by Python's own TLS client in memory."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def wait_closed(s, limit):
    s.settimeout(limit)
    t0 = time.monotonic()
    try:
        while s.recv(65536):
            pass
    except (ConnectionResetError, socket.timeout) as e:
        if isinstance(e, socket.timeout):
            return None
    return time.monotonic() - t0


def cmd_timeout(port):
    s = socket.create_connection((HOST, int(port)), timeout=10)
    hello = client_hello()
    s.sendall(hello[:len(hello) // 2])
    took = wait_closed(s, 20)
    if took is None:
        print("not closed within 20 s")
        return 1
    print("ok closed after %.2f s" % took)
    return 0


def cmd_garbage(port, ca):
    s = connect(int(port), ca)
    s.sendall(b"ping")
    recv_exact(s, 4)
    raw = socket.socket(fileno=os.dup(s.fileno()))  # under the session: no TLS record
    raw.sendall(b"\x17\x03\x03\x00\x10" + b"\xde\xad\xbe\xef" * 4)
    took = wait_closed(raw, 10)
    if took is None:
        print("not closed")
        return 1
    print("ok closed on a bad record")
    return 0


def cmd_truncate(port, ca):
    s = connect(int(port), ca)
    s.sendall(b"last words")
    recv_exact(s, 10)
    raw = socket.socket(fileno=os.dup(s.fileno()))
    raw.shutdown(socket.SHUT_WR)  # a FIN, no close_notify
    took = wait_closed(raw, 10)
    if took is None:
        print("not closed")
        return 1
    print("ok closed after a truncated stream")
    return 0


def cmd_alert(port, wrong_ca):
    try:
        connect(int(port), wrong_ca)
    except ssl.SSLCertVerificationError as e:
        print("ok client refused: %s" % e.verify_message)
        return 0
    print("handshake succeeded against the wrong CA")
    return 1


def cmd_halfdone(port, n, ca):
    n = int(n)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 256), hard))
    hello = client_hello()
    held = []
    for _ in range(n):
        s = socket.create_connection((HOST, int(port)), timeout=10)
        s.sendall(hello)
        held.append(s)
    # Each got the server's flight: they are mid-handshake on the server now.
    for s in held:
        if not s.recv(5):
            print("a half-done handshake was closed early")
            return 1
    print("ok holding %d half-done handshakes" % n)
    sys.stdout.flush()
    t0 = time.monotonic()
    c = connect(int(port), ca)
    c.sendall(b"still served")
    if recv_exact(c, 12) != b"still served":
        return 1
    c.close()
    print("ok a full client served meanwhile in %.3f s" % (time.monotonic() - t0))
    for s in held:
        s.close()
    return 0


def cmd_cycles(port, ca, n, version):
    ctx = context(ca, version)
    session, resumed, slowest, t0 = None, 0, 0.0, time.monotonic()
    for _ in range(int(n)):
        t = time.monotonic()
        raw = socket.create_connection((HOST, int(port)), timeout=10)
        # As browsers and wrk do: else a TLS 1.2 resumed handshake (where the client speaks
        # last) meets Nagle and the server's delayed ACK, 40 ms a cycle with any server.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)  # until the server's close_notify (or FIN)
            if not b:
                break
            data += b
        if not data.startswith(b"HTTP/1.1 200 ") or not data.endswith(b"hello from hotsock\n"):
            print("bad response: %r" % data)
            return 1
        resumed += s.session_reused
        session = s.session  # its ticket came after the handshake, read with the response
        s.close()
        slowest = max(slowest, time.monotonic() - t)
    print("ok %s cycles in %.3f s, slowest %.1f ms, %d resumed (TLSv%s)"
          % (n, time.monotonic() - t0, slowest * 1000, resumed, version))
    return 0


def cmd_starttls(cert, key):
    ls = socket.socket()
    ls.bind((HOST, 0))
    ls.listen(1)
    ls.settimeout(30)
    print("PORT %d" % ls.getsockname()[1], flush=True)
    c, _ = ls.accept()
    c.settimeout(10)
    if c.recv(64) != b"STARTTLS\r\n":
        return 1
    c.sendall(b"OK\r\n")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    s = ctx.wrap_socket(c, server_side=True)
    line = b""
    while not line.endswith(b"\n"):
        b = s.recv(64)
        if not b:
            return 0  # the client left without a line (a conn it upgraded, then closed)
        line += b
    s.sendall(b"echo " + line)
    s.close()
    print("ok", flush=True)
    return 0


def cmd_serve(cert, key, n):
    import threading
    ls = socket.socket()
    ls.bind((HOST, 0))
    ls.listen(int(n))
    ls.settimeout(30)
    print("PORT %d" % ls.getsockname()[1], flush=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    def hold(c):
        try:
            s = ctx.wrap_socket(c, server_side=True)
            while s.recv(4096):
                pass
        except (OSError, ssl.SSLError):
            pass  # a client that rejects the certificate, or leaves
        c.close()

    threads = []
    for _ in range(int(n)):
        c, _ = ls.accept()
        c.settimeout(30)
        threads.append(threading.Thread(target=hold, args=(c,)))
        threads[-1].start()
    for t in threads:
        t.join()
    return 0


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    return globals()["cmd_" + cmd](*args)


if __name__ == "__main__":
    sys.exit(main())
