#!/usr/bin/env bash
# System calls per operation of servers under one of the suite's loads at full speed: each
# call counted by the kernel's syscall tracepoints (perf stat), not by strace, which stops the
# server at every call, halves its rate and so changes how many events one wake-up serves
# (how many messages an epoll_wait returns, a recvmmsg takes). Issue 19: where a server's
# system time goes when the calls of hotsock and its ceiling look alike.
#
#   bash bench/syscalls.sh WORKLOAD [SECONDS] SERVER...
#
# WORKLOAD: http_hello (GET /hello), http_1k, http_100k (static files of random bytes, as
#           bench/run.sh's: wrk, 1 thread, 50 keep-alive connections) | tcp64_1 | tcp64_50 |
#           tcp64_500 | tcp4k_pipe | udp64 (hs_loadgen with the suite's arguments)
# SECONDS: the counted run (default 3), after 1 s of warm-up on a fresh server.
# SERVER: hotsock (build-bench/hotsock), raw (build-bench/bench/hs_echo_raw, echo rows),
#         nginx (nginx + Lua, http_hello) or the path of a hotsock binary.
# Prints, per server, the operations and the rate, then one line per system call made at
# least once per 100 operations: calls per operation. Tracepoints cost the server a little
# at every call (its rate here is below bench/run.sh's); the counts are what to read.
# Server on core 0, load on core 1; loopback only; bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
. bench/common.sh
work=${1:?usage: bench/syscalls.sh WORKLOAD [SECONDS] SERVER...}
shift
secs=${1:-3}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- hotsock
kind=http path=()
case $work in
http_hello) path=(/hello) ;;
http_1k) path=(/1k.bin) ;;
http_100k) path=(/100k.bin) ;;
*) kind="echo" ;;
esac
if [ "$kind" = echo ] && ! echo_load "$work"; then
    echo "bench/syscalls.sh: unknown workload $work" >&2
    exit 2
fi
bench_bounded $(($# * (secs + 30) + 60))s "$0" "$work" "$secs" "$@"
bench_need perf linux-perf
if [ "$kind" = http ]; then bench_need wrk wrk; fi
bench_build build-bench hotsock hs_loadgen hs_echo_raw
TMP=$(mktemp -d /tmp/hssys.XXXXXX)
chmod 755 "$TMP"
mkdir -p "$TMP/www"
head -c 1024 /dev/urandom >"$TMP/www/1k.bin"
head -c 102400 /dev/urandom >"$TMP/www/100k.bin"

# start SERVER PORT: the server in the background on core 0, its pid in BG_PID.
start() {
    local bin=$1
    case $1 in
    raw)
        start_bg "$TMP/server.log" "${PIN_S[@]}" build-bench/bench/hs_echo_raw \
            --listen "127.0.0.1:$2" --udp "127.0.0.1:$2"
        return
        ;;
    nginx)
        sed -e "s|@DIR@|$TMP|g; s|@ROOT@|$TMP/www|g; s|@LISTEN@|127.0.0.1:$2|g" \
            -e "s|@BODY@|hello from nginx|g" -e "s|^worker_processes 1;|master_process off;|" \
            bench/peers/nginx.conf.in >"$TMP/nginx.conf"
        start_bg "$TMP/server.log" "${PIN_S[@]}" nginx -c "$TMP/nginx.conf" -p "$TMP" \
            -e "$TMP/error.log"
        return
        ;;
    hotsock) bin="build-bench/hotsock" ;;
    esac
    local root=()
    [ "$kind" = http ] && root=(--set "root=$TMP/www")
    start_hotsock "$TMP/server.log" "$bin" "$kind" "$2" "${root[@]}"
}

for server in "$@"; do
    port=$(free_port)
    start "$server" "$port"
    pid=$BG_PID
    wait_port "$port" "$pid"
    run_load 1 "$port" "${path[@]}" >/dev/null
    # Every syscall's entry tracepoint, on the server's threads only (it runs one process),
    # started disabled and enabled through perf's control fifo: its "ack" says the 300-odd
    # tracepoints are attached and counting before the load starts.
    rm -f "$TMP/ctl" "$TMP/ack"
    mkfifo "$TMP/ctl" "$TMP/ack"
    perf stat -x, -e 'syscalls:sys_enter_*' -p "$pid" -o "$TMP/perf.csv" -D -1 \
        --control "fifo:$TMP/ctl,$TMP/ack" 2>"$TMP/perf.err" &
    perf_pid=$!
    exec 7>"$TMP/ctl" 8<"$TMP/ack"
    echo enable >&7
    read -r -t 30 _ <&8
    ops=$(run_load "$secs" "$port" "${path[@]}")
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    exec 7>&- 8<&-
    stop_bg "$pid"
    echo "$server $work: ${ops:-0} operations in ${secs} s ($((${ops:-0} / secs))/s)"
    awk -F, -v n="${ops:-0}" '
        n > 0 && $1 ~ /^[0-9]+$/ && $3 ~ /sys_enter_/ {
            name = $3; sub(/.*sys_enter_/, "", name)
            if ($1 / n >= 0.01) printf "  %-16s %.3f\n", name, $1 / n
        }' "$TMP/perf.csv" | sort -k2 -rn
done
