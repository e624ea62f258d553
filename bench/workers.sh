#!/usr/bin/env bash
# One worker against two, on the same machine in the same run: TCP echo (64-byte ping-pong,
# 50 connections, hs_loadgen) and HTTP GET /hello from a Lua route (50 keep-alive
# connections, wrk). Rounds alternate 1 2 1 2 ...; each figure is the median of the rounds,
# with the CPU time all hotsock processes (master and workers) spent per message or request,
# from /proc/PID/stat.
#
#   bash bench/workers.sh [ROUNDS [SECONDS]]      (default 3 rounds of 5 s)
#
# Nothing is pinned: with two workers both cores are the server's, so the load generator
# competes with it, which is what a 2-core machine running both looks like.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
secs=${2:-5}
build=${BUILD_DIR:-build-workers}
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null; }
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target hotsock hs_loadgen >/dev/null
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

# CPU ticks (utime + stime) of a process and its children, which are the workers.
cpu_ticks() {
  local t=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    [ -r "/proc/$p/stat" ] || continue
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}

# start SCRIPT WORKERS: starts hotsock, sets $pid and $port.
start() {
  local log="$tmp/log"
  "$build/hotsock" serve "$1" --listen tcp://127.0.0.1:0 --workers "$2" --max-per-peer 0 \
    --control none 2>"$log" &
  pid=$!
  for _ in $(seq 100); do
    grep -q "ready (pid" "$log" && break
    sleep 0.05
  done
  port=$(grep -o "listening tcp://127.0.0.1:[0-9]*" "$log" | head -1 | grep -o "[0-9]*$")
}

stop() {
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

hz=$(getconf CLK_TCK)
echo "workload workers round per_s cpu_us_per_unit" >"$tmp/runs"
for round in $(seq "$rounds"); do
  for w in 1 2; do
    start scripts/echo.lua "$w"
    timeout 60 "$build/bench/hs_loadgen" --target "tcp://127.0.0.1:$port" --mode pingpong \
      --conns 50 --size 64 --duration 1 >/dev/null
    c0=$(cpu_ticks "$pid")
    out=$(timeout 60 "$build/bench/hs_loadgen" --target "tcp://127.0.0.1:$port" \
      --mode pingpong --conns 50 --size 64 --duration "$secs")
    c1=$(cpu_ticks "$pid")
    stop
    echo "$out" | grep -q "errors=0 mismatches=0" || { echo "echo run failed: $out" >&2; exit 1; }
    n=$(echo "$out" | grep -o "messages=[0-9]*" | cut -d= -f2)
    rate=$(echo "$out" | grep -o "msg_per_s=[0-9.]*" | cut -d= -f2)
    echo "echo $w $round $rate $(awk -v c=$((c1 - c0)) -v n="$n" -v hz="$hz" \
      'BEGIN{printf "%.2f", c * 1e6 / hz / n}')" >>"$tmp/runs"

    start scripts/http.lua "$w"
    timeout 60 wrk -t1 -c50 -d1s "http://127.0.0.1:$port/hello" >/dev/null
    c0=$(cpu_ticks "$pid")
    out=$(timeout 60 wrk -t1 -c50 -d"${secs}s" "http://127.0.0.1:$port/hello")
    c1=$(cpu_ticks "$pid")
    stop
    if echo "$out" | grep -q "Non-2xx\|Socket errors"; then
      echo "http run had errors: $out" >&2
      exit 1
    fi
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    rate=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    echo "http $w $round $rate $(awk -v c=$((c1 - c0)) -v n="$n" -v hz="$hz" \
      'BEGIN{printf "%.2f", c * 1e6 / hz / n}')" >>"$tmp/runs"
  done
done

echo "$(date -u +%F) $(nproc) cores, $(uname -r); $rounds rounds of ${secs}s, medians"
echo
echo "| workload | 1 worker /s | 2 workers /s | 2 ÷ 1 | CPU µs/unit, 1 | CPU µs/unit, 2 |"
echo "|---|---|---|---|---|---|"
for wl in echo http; do
  med() { # workload workers column
    awk -v wl="$1" -v w="$2" -v col="$3" '$1 == wl && $2 == w {print $col}' "$tmp/runs" |
      sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
  }
  r1=$(med "$wl" 1 4) r2=$(med "$wl" 2 4) u1=$(med "$wl" 1 5) u2=$(med "$wl" 2 5)
  label=$([ "$wl" = echo ] && echo "TCP echo 64 B, 50 conns" || echo "HTTP GET /hello, 50 conns")
  echo "| $label | $r1 | $r2 | $(awk -v a="$r1" -v b="$r2" 'BEGIN{printf "%.2f", b / a}') | $u1 | $u2 |"
done
