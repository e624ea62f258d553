#!/usr/bin/env bash
# GET /hello through scripts/http.lua's Lua route, as bench/run.sh's http_hello row makes it
# (wrk, 1 thread, 50 keep-alive connections), for two or more builds in turn: requests/s and
# the server's CPU time per request, to compare builds on the HTTP path (bench/results/
# instructions.md). The suite's row compares with nginx; this compares builds.
#
#   bash bench/http_ab.sh [SECONDS] [ROUNDS] BIN...
#
# SECONDS each measured run (default 3), ROUNDS how many times the list of builds is run
# (default 5), in the order given, so a slow stretch of the machine falls on every build.
# The server runs on core 0 and wrk on core 1, a fresh server per run, 1 s of warm-up. Prints
# one line per run (req/s, the server's user and system µs per request from /proc/PID/stat,
# the hypervisor's steal from core 0 during the run) and, per build, the median req/s and CPU
# per request. Run it alone. Loopback only; every step is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
. bench/common.sh
secs=${1:-3}
rounds=${2:-5}
if [ $# -ge 2 ]; then shift 2; else set --; fi
[ $# -gt 0 ] || set -- build-bench/hotsock
bench_bounded $((rounds * $# * (secs + 15) + 60))s "$0" "$secs" "$rounds" "$@"
TMP=$(mktemp -d /tmp/hshttpab.XXXXXX)

# utime and stime (ticks) of a pid.
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }

for round in $(seq "$rounds"); do
    for bin in "$@"; do
        port=$(free_port)
        url="http://127.0.0.1:$port/hello"
        start_bg "$TMP/server.log" taskset -c 0 "$bin" serve scripts/http.lua \
            --listen "tcp://127.0.0.1:$port" --workers 1 --control none --log-level warn
        pid=$BG_PID
        wait_port "$port" "$pid"
        timeout 10 taskset -c 1 wrk -t1 -c50 -d1s "$url" >/dev/null
        read -r u0 s0 < <(ticks "$pid")
        t0=$(steal0)
        out=$(timeout $((secs + 10)) taskset -c 1 wrk -t1 -c50 -d"${secs}s" "$url")
        read -r u1 s1 < <(ticks "$pid")
        t1=$(steal0)
        stop_bg "$pid"
        reqs=$(awk '/requests in/ {print $1}' <<<"$out")
        awk -v b="$bin" -v n="$round" -v r="$reqs" -v t="$secs" -v hz="$HZ" -v u="$((u1 - u0))" \
            -v y="$((s1 - s0))" -v st="$((t1 - t0))" 'BEGIN {
            printf "round %d %s: %.0f req/s, user %.2f + sys %.2f us/req, steal %.0f%%\n",
                n, b, r / t, u * 1e6 / hz / r, y * 1e6 / hz / r, st * 100 / hz / t }' |
            tee -a "$TMP/runs"
    done
done
# Per build: the median of its runs' req/s and CPU µs per request; and against the first
# build, the median of the per-round ratios (each round's runs were made a few seconds apart).
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
col() { awk -v b="$1" -v f="$2" '$3 == b":" { print (f == "rate" ? $4 : $7 + $10) }' "$TMP/runs"; }
for bin in "$@"; do
    printf '%s: median %s req/s, %s us CPU/req' "$bin" "$(col "$bin" rate | median)" \
        "$(col "$bin" cpu | median)"
    if [ "$bin" != "$1" ]; then
        rr=$(paste <(col "$bin" rate) <(col "$1" rate) | awk '{ print $1 / $2 }' | median)
        rc=$(paste <(col "$bin" cpu) <(col "$1" cpu) | awk '{ print $1 / $2 }' | median)
        printf '; per round against %s: req/s x%.3f, CPU/req x%.3f' "$1" "$rr" "$rc"
    fi
    echo
done
