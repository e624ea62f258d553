#!/usr/bin/env bash
# Two or more hotsock builds under one of the suite's loads, alternated round by round: the
# rate and the server's CPU time per operation, to compare builds (issue 19: "each change
# measured alone, A/B against the commit before it, same run"). bench/run.sh compares
# hotsock with raw and the peers; this compares builds of hotsock with each other.
#
#   bash bench/ab.sh WORKLOAD [SECONDS] [ROUNDS] BIN...
#
# WORKLOAD: http_hello (GET /hello through scripts/http.lua, wrk, 1 thread, 50 keep-alive
#           connections) | tcp64_1 | tcp64_50 | tcp64_500 | tcp4k_pipe | udp64 (scripts/echo.lua,
#           hs_loadgen with the suite's arguments: bench/run.lua's WORKLOADS)
# SECONDS each measured run (default 3), ROUNDS how many times the list of builds is run
# (default 5), in the order given, so a slow stretch of the machine falls on every build.
# The server runs on core 0 and the load on core 1, a fresh server per run, 1 s of warm-up.
# Prints one line per run (ops/s, the server's user and system µs per operation from
# /proc/PID/stat, the hypervisor's steal from core 0 during the run) and, per build, the
# median rate and CPU per operation and, against the first build, the median of the
# per-round ratios. hs_loadgen comes from build-bench/ (LOADGEN= overrides). Run it alone.
# Loopback only; every step is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
. bench/common.sh
work=${1:?usage: bench/ab.sh WORKLOAD [SECONDS] [ROUNDS] BIN...}
shift
secs=${1:-3}
rounds=${2:-5}
if [ $# -ge 2 ]; then shift 2; else set --; fi
[ $# -gt 0 ] || set -- build-bench/hotsock
kind=echo path=()
if [ "$work" = http_hello ]; then
    kind=http path=(/hello)
elif ! echo_load "$work"; then
    echo "bench/ab.sh: unknown workload $work" >&2
    exit 2
fi
bench_bounded $((rounds * $# * (secs + 15) + 60))s "$0" "$work" "$secs" "$rounds" "$@"
TMP=$(mktemp -d /tmp/hsab.XXXXXX)

# utime and stime (ticks) of a pid.
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }

for round in $(seq "$rounds"); do
    for bin in "$@"; do
        port=$(free_port)
        start_hotsock "$TMP/server.log" "$bin" "$kind" "$port"
        pid=$BG_PID
        wait_port "$port" "$pid"
        run_load 1 "$port" "${path[@]}" >/dev/null
        read -r u0 s0 < <(ticks "$pid")
        t0=$(steal0)
        ops=$(run_load "$secs" "$port" "${path[@]}")
        read -r u1 s1 < <(ticks "$pid")
        t1=$(steal0)
        stop_bg "$pid"
        awk -v b="$bin" -v n="$round" -v r="${ops:-0}" -v t="$secs" -v hz="$HZ" \
            -v u="$((u1 - u0))" -v y="$((s1 - s0))" -v st="$((t1 - t0))" 'BEGIN {
            if (r == 0) { printf "round %d %s: no operations completed\n", n, b; exit }
            printf "round %d %s: %.0f ops/s, user %.2f + sys %.2f us/op, steal %.0f%%\n",
                n, b, r / t, u * 1e6 / hz / r, y * 1e6 / hz / r, st * 100 / hz / t }' |
            tee -a "$TMP/runs"
    done
done
# Per build: the median of its runs' rate and CPU µs per operation; and against the first
# build, the median of the per-round ratios (each round's runs were made a few seconds apart).
# A failed run stays in its round as NA, so the rounds of two builds still pair up.
median() { awk '$1 != "NA"' | sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
col() {
    awk -v b="$1" -v f="$2" '$3 == b":" { print ($5 != "ops/s," ? "NA" : f == "rate" ? $4 : $7 + $10) }' \
        "$TMP/runs"
}
for bin in "$@"; do
    printf '%s: median %s ops/s, %s us CPU/op' "$bin" "$(col "$bin" rate | median)" \
        "$(col "$bin" cpu | median)"
    if [ "$bin" != "$1" ]; then
        rr=$(paste <(col "$bin" rate) <(col "$1" rate) | awk '$1 != "NA" && $2 != "NA" { print $1 / $2 }' | median)
        rc=$(paste <(col "$bin" cpu) <(col "$1" cpu) | awk '$1 != "NA" && $2 != "NA" { print $1 / $2 }' | median)
        printf '; per round against %s: rate x%.3f, CPU/op x%.3f' "$1" "$rr" "$rc"
    fi
    echo
done
