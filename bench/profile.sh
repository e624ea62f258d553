#!/bin/bash
# Where a server's CPU goes under one benchmark workload: the profiles that explain the goals
# the table misses (see bench/RESULTS.md).
#
#   bash bench/profile.sh WORKLOAD [SERVER]
#
# WORKLOAD: tcp64_1 | tcp64_50 | tcp64_500 | tcp4k_pipe | udp64 | http_hello | http_1k | http_100k
# SERVER:   hotsock (default) | raw (hs_echo_raw; echo workloads only) | nginx (HTTP only)
#
# Uses the binaries of build-bench/ (run bench/run.sh once first). The server runs on core 0
# and the load on core 1, as in the suite; `perf record -e cpu-clock -g` samples the server for
# 4 s in the middle of an 8 s load, then the report prints the split by library and the
# hottest symbols (self time), and the hottest call chains (children), into
# bench/results/profiles/WORKLOAD-SERVER.txt and on stdout. Bounded: every step has a
# timeout; loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:?usage: bench/profile.sh WORKLOAD [SERVER]}
server=${2:-hotsock}
B=build-bench
tmp=$(mktemp -d /tmp/hsprofile.XXXXXX)
chmod 755 "$tmp"
pid=
cleanup() {
    if [[ -n $pid ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        sleep 0.5
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

port=$(lua5.4 -e 'local s = require("socket").bind("127.0.0.1", 0); local _, p = s:getsockname(); print(p)')
mkdir -p "$tmp/www"
head -c 1024 /dev/urandom >"$tmp/www/1k.bin"
head -c 102400 /dev/urandom >"$tmp/www/100k.bin"

case $work in
tcp64_1) load=(hs_loadgen --mode pingpong --size 64 --conns 1) ;;
tcp64_50) load=(hs_loadgen --mode pingpong --size 64 --conns 50) ;;
tcp64_500) load=(hs_loadgen --mode pingpong --size 64 --conns 500) ;;
tcp4k_pipe) load=(hs_loadgen --mode pipeline --size 4096 --depth 16 --conns 50) ;;
udp64) load=(hs_loadgen --size 64 --conns 50) ;;
http_hello) load=(wrk /hello) ;;
http_1k) load=(wrk /1k.bin) ;;
http_100k) load=(wrk /100k.bin) ;;
*)
    echo "bench/profile.sh: unknown workload $work" >&2
    exit 2
    ;;
esac

hs_flags=(--workers 1 --control none --log-level warn --max-per-peer 0
    --max-connections 12000 --grace 1)
case $server:${load[0]} in
hotsock:hs_loadgen)
    cmd=("$B/hotsock" serve scripts/echo.lua --listen "tcp://127.0.0.1:$port"
        --listen "udp://127.0.0.1:$port" "${hs_flags[@]}")
    ;;
raw:hs_loadgen)
    cmd=("$B/bench/hs_echo_raw" --listen "127.0.0.1:$port" --udp "127.0.0.1:$port")
    ;;
hotsock:wrk)
    cmd=("$B/hotsock" serve scripts/http.lua --listen "tcp://127.0.0.1:$port"
        --set "root=$tmp/www" "${hs_flags[@]}")
    ;;
nginx:wrk)
    sed -e "s|@DIR@|$tmp|g; s|@ROOT@|$tmp/www|g; s|@LISTEN@|127.0.0.1:$port|g" \
        -e "s|@BODY@|hello from nginx|g" bench/peers/nginx.conf.in >"$tmp/nginx.conf"
    cmd=(nginx -c "$tmp/nginx.conf" -p "$tmp" -e "$tmp/error.log")
    ;;
*)
    echo "bench/profile.sh: server $server does not run $work" >&2
    exit 2
    ;;
esac

taskset -c 0 "${cmd[@]}" >"$tmp/server.log" 2>&1 &
pid=$!
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
# nginx forks its worker: profile the process that serves.
target=$pid
if [[ $server == nginx ]]; then
    sleep 0.3
    target=$(pgrep -P "$pid" | head -1)
fi

if [[ ${load[0]} == wrk ]]; then
    timeout 30 taskset -c 1 wrk -t1 -c50 -d8s "http://127.0.0.1:$port${load[1]}" >"$tmp/load.out" &
else
    scheme=tcp
    [[ $work == udp64 ]] && scheme=udp
    timeout 30 taskset -c 1 "$B/bench/hs_loadgen" --target "$scheme://127.0.0.1:$port" \
        "${load[@]:1}" --duration 8 >"$tmp/load.out" &
fi
loadpid=$!
sleep 2
timeout 20 perf record -q -e cpu-clock -F 4000 -g -p "$target" -o "$tmp/perf.data" -- sleep 4 \
    2>/dev/null || true
wait "$loadpid" || true

mkdir -p bench/results/profiles
# head(1) closes the pipes early on purpose.
set +o pipefail
out=bench/results/profiles/$work-$server.txt
{
    echo "# bench/profile.sh $work $server ($(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r))"
    echo "# load: $(grep -E '^mode=|Requests/sec' "$tmp/load.out" | head -2 | tr '\n' ' ')"
    echo "## by library (self)"
    perf report -i "$tmp/perf.data" --no-children --stdio -g none --sort dso 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -8
    echo "## hottest symbols (self)"
    perf report -i "$tmp/perf.data" --no-children --stdio -g none --sort dso,sym 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -30
    echo "## hottest call chains (children, >= 3%)"
    perf report -i "$tmp/perf.data" --children --stdio -g none --sort sym --percent-limit 3 \
        2>/dev/null | grep -v '^#' | grep -v '^$' | head -60
} | tee "$out"
