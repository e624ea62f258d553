#!/usr/bin/env bash
# hotsock against the C raw echo server in short alternating slices: both servers run the
# whole time (pinned to core 0, the idle one costs nothing), and the load (hs_loadgen, core 1)
# switches between them every SECONDS, in the order A B B A A B ..., so that whatever the host
# does to this virtual machine falls on both within seconds. bench/run.sh compares 5 s runs
# made a minute apart per round, which on a host whose speed moves by 2x within minutes
# decides nothing within ±10% (bench/RESULTS.md); this is the finer grain for the echo rows.
#
#   bash bench/slices.sh WORKLOAD [SLICES] [SECONDS] [BUILD_DIR]
#
# WORKLOAD: tcp64_1 | tcp64_50 | tcp64_500 | tcp4k_pipe | udp64 (the loads of bench/run.sh).
# SLICES pairs of slices (default 20), SECONDS each (default 1; each slice connects afresh and
# counts from its start, connection set-up included, for both servers alike). Prints each pair
# (msg/s and the server's CPU µs a message, from /proc/PID/stat at 10 ms ticks; the
# hypervisor's steal on core 0) and the medians of the per-pair ratios
# hotsock/raw: msg/s and CPU per message, with how many pairs met issue 19's lines (>= 0.9x
# the rate, <= 1.15x the CPU). Run it alone; loopback only; bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
. bench/common.sh
work=${1:?usage: bench/slices.sh WORKLOAD [SLICES] [SECONDS] [BUILD_DIR]}
slices=${2:-20}
secs=${3:-1}
build=${4:-build-bench}
bench_bounded $((slices * 2 * (${secs%.*} + 4) + 120))s "$0" "$work" "$slices" "$secs" "$build"
TMP=$(mktemp -d /tmp/hsslices.XXXXXX)

if ! echo_load "$work"; then
    echo "bench/slices.sh: unknown workload $work" >&2
    exit 2
fi
if ! [ -x "$build/hotsock" ] || ! [ -x "$build/bench/hs_loadgen" ] || ! [ -x "$build/bench/hs_echo_raw" ]; then
    echo "bench/slices.sh: build $build first (bash bench/run.sh does)" >&2
    exit 1
fi

hp=$(free_port)
rp=$(free_port)
start_hotsock "$TMP/hotsock.log" "$build/hotsock" echo "$hp"
hpid=$BG_PID
start_bg "$TMP/raw.log" taskset -c 0 "$build/bench/hs_echo_raw" --listen "127.0.0.1:$rp" \
    --udp "127.0.0.1:$rp"
rpid=$BG_PID
wait_port "$hp" "$hpid"
wait_port "$rp" "$rpid"

# One slice against port $2 served by pid $3: "msg/s cpu_us steal%".
slice() {
    local name=$1 port=$2 pid=$3 c0 c1 s0 s1 out
    c0=$(cpu_ticks "$pid")
    s0=$(steal0)
    out=$(timeout $((${secs%.*} + 20)) taskset -c 1 "$build/bench/hs_loadgen" \
        --target "$scheme://127.0.0.1:$port" "${load[@]}" --warmup 0 --duration "$secs")
    c1=$(cpu_ticks "$pid")
    s1=$(steal0)
    awk -v o="$out" -v c="$((c1 - c0))" -v s="$((s1 - s0))" -v hz="$HZ" -v t="$secs" -v n="$name" '
        BEGIN {
            if (match(o, /msg_per_s=[0-9.]+/) == 0) { print n " failed: " o > "/dev/stderr"; exit 1 }
            r = substr(o, RSTART + 10, RLENGTH - 10)
            match(o, /messages=[0-9]+/); m = substr(o, RSTART + 9, RLENGTH - 9)
            printf "%.0f %.3f %.0f\n", r, (m > 0 ? c / hz * 1e6 / m : 0), s * 100 / hz / t }'
}

for i in $(seq "$slices"); do
    if ((i % 2)); then
        read -r hr hc hs < <(slice hotsock "$hp" "$hpid")
        read -r rr rc rs < <(slice raw "$rp" "$rpid")
    else
        read -r rr rc rs < <(slice raw "$rp" "$rpid")
        read -r hr hc hs < <(slice hotsock "$hp" "$hpid")
    fi
    printf 'pair %2d: hotsock %7s msg/s %6s us (steal %s%%)  raw %7s msg/s %6s us (steal %s%%)\n' \
        "$i" "$hr" "$hc" "$hs" "$rr" "$rc" "$rs"
    echo "$hr $hc $rr $rc" >>"$TMP/pairs"
done

awk -v w="$work" -v t="$secs" '
    { rate[NR] = $1 / $3; cpu[NR] = $2 / $4; if (rate[NR] >= 0.9) mr++; if (cpu[NR] <= 1.15) mc++ }
    function med(a, n,   i, j, x) {
        for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j > 0 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    END {
        mrate = med(rate, NR); lo = rate[1]; hi = rate[NR]; mcpu = med(cpu, NR)
        printf "%s, %d pairs of %g s: hotsock/raw per pair, median msg/s x%.3f (%d of %d >= 0.9; range x%.3f-x%.3f), CPU/msg x%.3f (%d of %d <= 1.15)\n",
            w, NR, t, mrate, mr, NR, lo, hi, mcpu, mc, NR
    }' "$TMP/pairs"
