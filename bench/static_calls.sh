#!/usr/bin/env bash
# bench/static_calls.sh: user-space instructions per static-file request, deterministic.
#
# Runs scripts/http.lua (one worker, access log off as in bench/run.sh) under
# valgrind --tool=callgrind, counting only inside the event loop (startup excluded), and sends
# exactly N1, then (in a second run) N2 keep-alive GETs of one file over one connection with
# bench/static_calls.lua. (I(N2) - I(N1)) / (N2 - N1) is the cost of one request with the
# connection's setup and teardown cancelled out. Also counts system calls per request with
# strace -c the same way. Wall-clock noise does not enter either figure.
#
#   bash bench/static_calls.sh [BUILD_DIR] [SIZES...]     (defaults: build-rel, 1k 100k)
#
# Sizes are 1k (1,024 bytes) and 100k (102,400 bytes) like bench/run.sh's files, or any
# other NAME=BYTES. Prints one Markdown table row per size.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build-rel}
shift || true
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1k 100k)
N1=${N1:-200}
N2=${N2:-1200}
BIN=${BIN:-$BUILD/hotsock}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/www"

free_port() {
    lua5.4 -e 'local s = require "socket"; local t = assert(s.bind("127.0.0.1", 0));
      local _, p = t:getsockname(); print(p); t:close()'
}

wait_port() {
    for _ in $(seq 1 600); do
        kill -0 "$2" 2>/dev/null || { echo "server exited" >&2; return 1; }
        if lua5.4 -e "assert(require('socket').connect('127.0.0.1', $1)):close()" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "server on port $1 did not start" >&2
    return 1
}

# run TOOL N FILE LEN: one server under TOOL, N requests of FILE; prints the tool's figure.
run() {
    local tool=$1 n=$2 file=$3 len=$4 port pid out
    port=$(free_port)
    out=$TMP/out.$tool.$n
    local cmd=("$BIN" serve "$ROOT/scripts/http.lua" --listen "tcp://127.0.0.1:$port"
        --set "root=$TMP/www" --workers 1 --control none --log-level warn --grace 1)
    if [ "$tool" = callgrind ]; then
        valgrind --tool=callgrind --callgrind-out-file="$out" --collect-atstart=no \
            --toggle-collect=event_base_loop "${cmd[@]}" >/dev/null 2>"$TMP/vg.log" &
    else
        strace -f -c -o "$out" "${cmd[@]}" >/dev/null 2>"$TMP/st.log" &
    fi
    pid=$!
    wait_port "$port" "$pid"
    lua5.4 "$ROOT/bench/static_calls.lua" "$port" "/$file" "$n" "$len"
    # Under strace the server is strace's child: end the server, and strace with it.
    kill -TERM "$(pgrep -P "$pid" || echo "$pid")"
    wait "$pid" || true
    if [ "$tool" = callgrind ]; then
        sed -n 's/^totals: \([0-9]*\).*/\1/p' "$out"
    else
        awk '$NF == "total" { print $4 }' "$out"
    fi
}

echo "| file | instructions/request | system calls/request |"
echo "|---|--:|--:|"
for s in "${SIZES[@]}"; do
    case $s in
    1k) name=1k.bin bytes=1024 ;;
    100k) name=100k.bin bytes=102400 ;;
    *=*) name=${s%%=*} bytes=${s#*=} ;;
    *) echo "bad size $s" >&2; exit 2 ;;
    esac
    head -c "$bytes" /dev/urandom >"$TMP/www/$name"
    i1=$(run callgrind "$N1" "$name" "$bytes")
    i2=$(run callgrind "$N2" "$name" "$bytes")
    s1=$(run strace "$N1" "$name" "$bytes")
    s2=$(run strace "$N2" "$name" "$bytes")
    awk -v f="$name" -v i1="$i1" -v i2="$i2" -v s1="$s1" -v s2="$s2" -v n1="$N1" -v n2="$N2" \
        'BEGIN { printf "| %s | %.0f | %.2f |\n", f, (i2 - i1) / (n2 - n1), (s2 - s1) / (n2 - n1) }'
done
