#!/usr/bin/env bash
# The PROXY listener's cost per connection (connect, one 64 B echo, close) against a plain
# listener, in instructions under callgrind: deterministic on a loaded machine, unlike time.
# Each listener serves N1 and then N2 connections in two runs; (I(N2) - I(N1)) / (N2 - N1) is
# the cost of one connection with start and stop cancelled out.
#   bench/proxy_cost.sh [BUILD_DIR]   (default build-rel, a RelWithDebInfo build)
# WALL=SECONDS instead measures wall-clock connections/s for SECONDS per listener (one Python
# client pinned to core 1, the server to core 0, after a 1 s warm-up) and the server's CPU per
# connection from /proc/PID/stat, each as a ratio to the plain listener's in the same run (the
# issue's goal: within 5%). The client, not the server, bounds the rate: read the CPU column.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build-rel}/hotsock
N1=${N1:-200}
N2=${N2:-1200}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/client.py" <<'PY'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
msg = b"x" * 63 + b"\n"
v1 = b"PROXY TCP4 192.0.2.1 192.0.2.2 40000 80\r\n"
# v2, TCP over IPv4, the same addresses: what HAProxy's send-proxy-v2 sends.
v2 = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + bytes([192, 0, 2, 1, 192, 0, 2, 2])
      + (40000).to_bytes(2, "big") + (80).to_bytes(2, "big"))
hdr = {"0": b"", "1": v1, "2": v2}[sys.argv[3]]
def one():
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(hdr + msg)
    got = b""
    while len(got) < len(msg):
        data = s.recv(4096)
        if not data:
            sys.exit("proxy_cost: the server closed a connection early")
        got += data
    if got != msg:
        sys.exit("proxy_cost: echo mismatch")
    s.close()
if n > 0:
    for _ in range(n):
        one()
else:  # -n: for n seconds; prints the connections done
    end, done = time.monotonic() - n, 0
    while time.monotonic() < end:
        one()
        done += 1
    print(done)
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

if [ -n "${WALL:-}" ]; then
  pin_s="" pin_c=""
  if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    pin_s="taskset -c 0" pin_c="taskset -c 1"
  fi
  hz=$(getconf CLK_TCK)
  # wall V: "conns/s µs/conn" of a fresh server, header V (0: plain listener).
  wall() {
    local opts port pid n t0 t1
    opts=$([ "$1" = 0 ] || echo "?proxy")
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    $pin_s "$BIN" serve scripts/echo.lua --listen "tcp://127.0.0.1:$port$opts" --workers 1 \
      --control none --log-level warn --max-per-peer 0 >/dev/null 2>"$tmp/wall.log" &
    pid=$!
    for _ in $(seq 200); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      sleep 0.05
    done
    $pin_c timeout 60 python3 "$tmp/client.py" "$port" -1 "$1" >/dev/null
    t0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    n=$($pin_c timeout 120 python3 "$tmp/client.py" "$port" "-$WALL" "$1")
    t1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    kill -TERM "$pid"
    wait "$pid" || true
    awk -v n="$n" -v s="$WALL" -v t="$((t1 - t0))" -v hz="$hz" \
      'BEGIN { printf "%.1f %.2f", n / s, t / hz * 1e6 / n }'
  }
  read -r r0 c0 <<<"$(wall 0)"
  echo "| listener | connections/s | server CPU µs/connection | conns/s vs plain | CPU vs plain |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  for v in 0 1 2; do
    if [ $v = 0 ]; then r=$r0 c=$c0; else read -r r c <<<"$(wall $v)"; fi
    awk -v w="$([ $v = 0 ] && echo "plain" || echo "?proxy, v$v header")" -v r="$r" -v c="$c" \
      -v r0="$r0" -v c0="$c0" 'BEGIN { printf "| %s | %s | %s | %.3f | %.3f |\n", w, r, c, r / r0, c / c0 }'
  done
  exit 0
fi

# The readiness probe is one more connection in both runs: it cancels out too.
for v in 0 1 2; do
  opts=$([ $v = 0 ] || echo "?proxy")
  a=$(run "$opts" "$N1" $v)
  b=$(run "$opts" "$N2" $v)
  what=$([ $v = 0 ] && echo "plain listener      " || echo "?proxy, v$v header   ")
  echo "$what instructions/connection: $(((b - a) / (N2 - N1)))"
done
