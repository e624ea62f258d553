#!/usr/bin/env bash
# The PROXY listener's cost per connection (connect, one 64 B echo, close) against a plain
# listener, in instructions under callgrind: deterministic on a loaded machine, unlike time.
# Each listener serves N1 and then N2 connections in two runs; (I(N2) - I(N1)) / (N2 - N1) is
# the cost of one connection with start and stop cancelled out.
#   bench/proxy_cost.sh [BUILD_DIR]   (default build-rel, a RelWithDebInfo build)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build-rel}/hotsock
N1=${N1:-200}
N2=${N2:-1200}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/client.py" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
msg = b"x" * 63 + b"\n"
v1 = b"PROXY TCP4 192.0.2.1 192.0.2.2 40000 80\r\n"
# v2, TCP over IPv4, the same addresses: what HAProxy's send-proxy-v2 sends.
v2 = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + bytes([192, 0, 2, 1, 192, 0, 2, 2])
      + (40000).to_bytes(2, "big") + (80).to_bytes(2, "big"))
hdr = {"0": b"", "1": v1, "2": v2}[sys.argv[3]]
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(hdr + msg)
    got = b""
    while len(got) < len(msg):
        got += s.recv(4096)
    s.close()
PY

# Instructions for n connections on a listener url (opts: "" or "?proxy"); header 0 (none),
# 1 or 2.
run() {
  local opts=$1 n=$2 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" "$BIN" serve scripts/echo.lua \
    --listen "tcp://127.0.0.1:$port$opts" --workers 1 --control none --log-level warn \
    >/dev/null 2>"$tmp/vg.log" &
  local pid=$!
  for _ in $(seq 200); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1',$port)).close()" \
      2>/dev/null && break
    sleep 0.1
  done
  python3 "$tmp/client.py" "$port" "$n" "$3"
  kill -TERM $pid
  wait $pid || true
  [ -n "${KEEP:-}" ] && cp "$tmp/cg.out" "$KEEP.v$3.$n"
  grep -o "Collected : [0-9]*" "$tmp/vg.log" | grep -o "[0-9]*$" || { cat "$tmp/vg.log" >&2; exit 1; }
}

# The readiness probe is one more connection in both runs: it cancels out too.
for v in 0 1 2; do
  opts=$([ $v = 0 ] || echo "?proxy")
  a=$(run "$opts" "$N1" $v)
  b=$(run "$opts" "$N2" $v)
  what=$([ $v = 0 ] && echo "plain listener      " || echo "?proxy, v$v header   ")
  echo "$what instructions/connection: $(((b - a) / (N2 - N1)))"
done
