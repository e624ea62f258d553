#!/usr/bin/env bash
# Memory per idle connection without the full bench: bench/run.sh's idle row (scripts/echo.lua,
# N connections that each echoed 64 B once, RSS growth per connection) for a few counts, one
# line each. RSS is not time: on a loaded machine it repeats to a few bytes per connection,
# so a change can be judged by it where wall-clock rows are noise. Optionally massif's view of
# the same (which allocation sites grow with N).
#
#   bash bench/idle_mem.sh [BUILD_DIR] [N ...]        # default build-rel, 2000 4000 10000
#   MASSIF=out.massif bash bench/idle_mem.sh build-rel 2000   # heap profile (ms_print out)
#
# The server runs as bench/run.sh starts it (one worker, limits on); the warm-up echo comes
# before the first RSS reading, as there. Ports come from below the ephemeral range.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
. bench/common.sh
bench_bounded 600 "$0" "$@"
B=${1:-build-rel}
shift || true
[ $# -gt 0 ] || set -- 2000 4000 10000
bench_build "$B" hotsock hs_loadgen
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
ulimit -n 20000

rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

for n in "$@"; do
    port=$((20000 + RANDOM % 10000))
    pre=()
    [ -n "${MASSIF:-}" ] && pre=(valgrind --tool=massif --massif-out-file="$MASSIF"
        --detailed-freq=1 --max-snapshots=200 --depth=12)
    "${pre[@]}" "$B/hotsock" serve scripts/echo.lua --listen "tcp://127.0.0.1:$port" \
        --workers 1 --control none --log-level warn --max-connections 12000 --max-per-peer 0 \
        --grace 1 >"$TMP/server.out" 2>&1 &
    srv=$!
    for _ in $(seq 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    "$B/bench/hs_loadgen" --target "tcp://127.0.0.1:$port" --conns 1 --messages 10 \
        --duration 2 >/dev/null 2>&1
    sleep 0.3
    r0=$(rss "$srv")
    "$B/bench/hs_loadgen" --target "tcp://127.0.0.1:$port" --mode idle --conns "$n" --size 64 \
        --duration 200 >"$TMP/lg.out" 2>&1 &
    lg=$!
    for _ in $(seq 1200); do
        grep -q "connected $n" "$TMP/lg.out" && break
        sleep 0.1
    done
    sleep 1 # deferred frees and the last callbacks, as bench/run.lua
    r1=$(rss "$srv")
    grep -q "connected $n" "$TMP/lg.out" || echo "idle_mem: $n connections not ready" >&2
    kill -INT "$srv"
    wait "$srv" 2>/dev/null || true
    kill "$lg" 2>/dev/null || true
    wait "$lg" 2>/dev/null || true
    echo "conns $n: RSS $r0 -> $r1 KiB, $(((r1 - r0) * 1024 / n)) bytes per connection"
done
