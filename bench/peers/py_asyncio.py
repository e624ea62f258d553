"""Python asyncio peer for the benchmark: what a user might write instead of hotsock.

    python3 py_asyncio.py echo   TCP_PORT UDP_PORT     (either may be 0 to skip it)
    python3 py_asyncio.py http   PORT ROOT             GET /hello and static files under ROOT
    python3 py_asyncio.py upload PORT DIR              the framed upload protocol

Standard library only, one event loop, protocols (callbacks) rather than streams: the
fastest way asyncio offers. Echo keeps the same flow control as the other servers (stop
reading while the transport's write buffer is above its high-water mark). HTTP is a minimal
keep-alive HTTP/1.1 responder; static files are read from disk on every request. Upload
streams the content frame into a temporary file with a running SHA-256, then fsync, rename,
directory fsync and the same ack as scripts/upload.lua.
"""
import asyncio
import hashlib
import json
import os
import socket
import struct
import sys
import tempfile


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(high=1 << 20, low=256 << 10)

    def data_received(self, data):
        self.t.write(data)

    def pause_writing(self):
        self.t.pause_reading()

    def resume_writing(self):
        self.t.resume_reading()


class UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.t = transport

    def datagram_received(self, data, addr):
        self.t.sendto(data, addr)


MIME = {"html": "text/html; charset=utf-8", "txt": "text/plain; charset=utf-8",
        "bin": "application/octet-stream"}


class Http(asyncio.Protocol):
    root = "."

    def connection_made(self, transport):
        self.t = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buf = self.buf[:end], self.buf[end + 4:]
            line = head.split(b"\r\n", 1)[0].split(b" ")
            if len(line) != 3 or line[0] != b"GET":
                self.t.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                self.t.close()
                return
            self.respond(line[1].split(b"?", 1)[0].decode("latin-1"))

    def respond(self, path):
        if path == "/hello":
            body, ctype, status = b"hello from asyncio\n", "text/plain; charset=utf-8", "200 OK"
        else:
            full = os.path.normpath(os.path.join(self.root, path.lstrip("/")))
            try:
                if not full.startswith(self.root):
                    raise OSError
                with open(full, "rb") as f:
                    body = f.read()
                ext = full.rsplit(".", 1)[-1]
                ctype, status = MIME.get(ext, "application/octet-stream"), "200 OK"
            except OSError:
                body, ctype, status = b"not found\n", "text/plain", "404 Not Found"
        self.t.write(("HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
                      % (status, ctype, len(body))).encode("latin-1") + body)


class Upload(asyncio.Protocol):
    dir = "."

    def connection_made(self, transport):
        self.t = transport
        self.buf = bytearray()
        self.file = None  # (fd, tmp path, name, sha, bytes left, total) while storing

    def reply(self, obj):
        body = json.dumps(obj).encode()
        self.t.write(struct.pack("<i", len(body)) + body)

    def data_received(self, data):
        if self.file:
            data = self.store(data)
            if data is None:
                return
        self.buf += data
        while not self.file:
            if len(self.buf) < 4:
                return
            (n,) = struct.unpack_from("<i", self.buf)
            if n < 0:
                self.t.close()
                return
            if self.pending_content is not None:
                self.start_file(n)
                rest = bytes(self.buf[4:])
                self.buf = bytearray()
                rest = self.store(rest)
                if rest is None:
                    return
                self.buf += rest
                continue
            if len(self.buf) < 4 + n:
                return
            frame = bytes(self.buf[4:4 + n])
            del self.buf[:4 + n]
            if frame == b"close":
                self.t.close()
                return
            hdr = json.loads(frame)
            if hdr.get("msg_type") != "file":
                self.t.close()
                return
            self.pending_content = (hdr["file_name"], hdr.get("ack") is True)

    pending_content = None

    def start_file(self, size):
        name, ack = self.pending_content
        self.pending_content = None
        fd, tmp = tempfile.mkstemp(prefix=".hs-upload-", dir=self.dir)
        self.file = [fd, tmp, name, hashlib.sha256(), size, size, ack]

    def store(self, data):
        """Writes the part of data that belongs to the file; returns the rest, or None."""
        f = self.file
        take = data[:f[4]]
        os.write(f[0], take)  # a regular file: write() takes everything
        f[3].update(take)
        f[4] -= len(take)
        if f[4] > 0:
            return None
        fd, tmp, name, sha, _, size, ack = f
        self.file = None
        os.fsync(fd)
        os.close(fd)
        os.rename(tmp, os.path.join(self.dir, name))
        dfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(dfd)
        os.close(dfd)
        if ack:
            self.reply({"ok": True, "file_name": name, "bytes": size, "sha256": sha.hexdigest()})
        return data[len(take):]


async def main(argv):
    loop = asyncio.get_running_loop()
    mode = argv[1]
    if mode == "echo":
        tcp, udp = int(argv[2]), int(argv[3])
        if tcp:
            await loop.create_server(Echo, "127.0.0.1", tcp, backlog=4096)
        if udp:
            await loop.create_datagram_endpoint(UdpEcho, local_addr=("127.0.0.1", udp))
    elif mode == "http":
        Http.root = os.path.realpath(argv[3])
        await loop.create_server(Http, "127.0.0.1", int(argv[2]), backlog=4096)
    elif mode == "upload":
        Upload.dir = argv[3]
        os.makedirs(Upload.dir, exist_ok=True)
        await loop.create_server(Upload, "127.0.0.1", int(argv[2]), backlog=64)
    else:
        sys.exit("bad mode " + mode)
    print("listening", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv))
    except KeyboardInterrupt:
        pass
