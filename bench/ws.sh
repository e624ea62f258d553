#!/usr/bin/env bash
# WebSocket rows, hotsock beside Node's `ws` server (npm ws, no compression), one server
# running at a time, each pinned to core 0 and the client (the same for both) to core 1. The
# client of the echo and broadcast rows is bench/ws_load.c (hs_ws_load, C, epoll), light
# enough that the server's core saturates first; WS_CLIENT=node uses bench/ws_client.js
# (Node + ws) instead, which runs out of its own core first on echo_16k and bcast_1000. The
# idle row always uses ws_client.js.
#   echo_64     64 B ping-pong over 50 WebSockets        messages/s, server CPU µs per message
#   echo_16k    16 KiB ping-pong over 50 WebSockets       the same
#   bcast_1000  one 64 B message to 1,000 WebSockets, the next once all have it: deliveries/s
#   idle        server RSS growth per idle WebSocket (1,000 of them, each having echoed once)
#   bash bench/ws.sh                          5 s per run
#   WS_BENCH_SECONDS=1 bash bench/ws.sh       a smoke run
# Needs node and npm (Debian nodejs, npm); `ws` is installed into build-bench/node the first
# time. HOTSOCK_BIN picks the binary (default build-bench/hotsock, built when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${WS_BENCH_SECONDS:-5}
bin=${HOTSOCK_BIN:-build-bench/hotsock}
load=build-bench/bench/hs_ws_load
if [ ! -x "$bin" ] || [ ! -x "$load" ]; then
  cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHOTSOCK_BUILD_TESTS=OFF >/dev/null
  cmake --build build-bench -j"$(nproc)" --target hotsock hs_ws_load >/dev/null
fi
client=(node bench/ws_client.js)
[ "${WS_CLIENT:-c}" = node ] || client=("$load")
command -v node >/dev/null || { echo "bench/ws.sh needs node and npm (apt-get install nodejs npm)" >&2; exit 1; }
nodedir=build-bench/node
if [ ! -d "$nodedir/node_modules/ws" ]; then
  mkdir -p "$nodedir"
  (cd "$nodedir" && npm install --no-audit --no-fund --silent ws@8 >/dev/null)
fi
export NODE_PATH=$PWD/$nodedir/node_modules
ulimit -n 8192 2>/dev/null || true
pin_s="" pin_c=""
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  pin_s="taskset -c 0" pin_c="taskset -c 1"
fi

free_port() {
  lua5.4 -e 'local s = require("socket").bind("127.0.0.1", 0); local _, p = s:getsockname(); print(p); s:close()'
}
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "server on port $1 did not start" >&2
  return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

pid=""
start() { # server port
  local port=$2
  if [ "$1" = hotsock ]; then
    $pin_s "$bin" serve bench/peers/ws_hotsock.lua --listen "tcp://127.0.0.1:$port" --workers 1 \
      --control none --log-level warn --max-per-peer 0 --max-connections 20000 >/dev/null 2>&1 &
  else
    $pin_s node bench/peers/ws_node_server.js "$port" >/dev/null 2>&1 &
  fi
  pid=$!
  wait_port "$port"
}
stop() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; pid=""; }
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null || true' EXIT

hz=$(getconf CLK_TCK)
printf '| row | server | rate | server CPU per message |\n| --- | --- | --- | --- |\n'
for row in echo_64 echo_16k bcast_1000 idle; do
  for server in hotsock node; do
    port=$(free_port)
    start "$server" "$port"
    url="ws://127.0.0.1:$port/ws"
    t0=$(cpu_ticks "$pid")
    case $row in
      echo_64) out=$($pin_c timeout 120 "${client[@]}" echo "$url" 50 64 "$secs") ;;
      echo_16k) out=$($pin_c timeout 120 "${client[@]}" echo "$url" 50 16384 "$secs") ;;
      bcast_1000) out=$($pin_c timeout 120 "${client[@]}" bcast "$url" 1000 "$secs") ;;
      idle)
        r0=$(rss_kib "$pid")
        $pin_c timeout 120 node bench/ws_client.js idle "$url" 1000 "$((secs + 2))" > /tmp/hs-ws-idle.$$ &
        cpid=$!
        for _ in $(seq 1 600); do grep -q ready /tmp/hs-ws-idle.$$ 2>/dev/null && break; sleep 0.05; done
        r1=$(rss_kib "$pid")
        wait "$cpid" || true
        rm -f /tmp/hs-ws-idle.$$
        printf '| idle | %s | %s bytes per idle WebSocket | |\n' "$server" "$(( (r1 - r0) * 1024 / 1000 ))"
        stop
        continue ;;
    esac
    t1=$(cpu_ticks "$pid")
    rate=$(echo "$out" | awk '{print $2}')
    # Messages over the run: the warm-up second is not in the rate but is in the CPU time.
    msgs=$(( rate * (secs + 1) ))
    cpu_us=$(awk -v t="$((t1 - t0))" -v hz="$hz" -v m="$msgs" 'BEGIN { if (m > 0) printf "%.2f", t / hz * 1e6 / m; else print "-" }')
    printf '| %s | %s | %s %s | %s µs |\n' "$row" "$server" "$rate" "$(echo "$out" | awk '{print $1}')" "$cpu_us"
    stop
  done
done
