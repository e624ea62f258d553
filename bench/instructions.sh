#!/usr/bin/env bash
# Instructions per message (or request) of one server under one workload, counted by
# callgrind: deterministic on a loaded shared machine, unlike time. The server serves N1 and
# then N2 messages per connection in two runs; (I(N2) - I(N1)) / ((N2 - N1) * conns) is the
# cost of one message with start, connect and stop cancelled out. Method and results:
# bench/results/instructions.md.
#
#   bench/instructions.sh WORKLOAD [SERVER] [BUILD_DIR]
#
# WORKLOAD: tcp64_1 | tcp64_50 | tcp64_500 | tcp4k_pipe | udp64 | http_hello | https_hello |
#           http_static (https_hello: GET /hello over one TLS 1.3 keep-alive connection, ECDSA
#           P-256; http_static: GET /index.html, 789 B from examples/www, as http_hello)
# SERVER:   hotsock (default; sandbox limits at their defaults) | raw (bench/echo_raw.c,
#           echo workloads) | nginx (http_hello, nginx + lua-nginx-module)
# BUILD_DIR defaults to build-rel (RelWithDebInfo). N1/N2 override the message counts;
# KEEP=prefix keeps the callgrind output of the N2 run (for callgrind_annotate). SCRIPT=FILE
# serves the echo and UDP rows with another handler than scripts/echo.lua (it must echo).
# TOOL=strace counts system calls per message instead (strace -c -f, same cancelling out),
# with one line per call that happens at least once per 100 messages.
# TOOL=cachegrind simulates the caches and branch predictor too (valgrind --tool=cachegrind
# --cache-sim=yes --branch-sim=yes, the host's cache sizes): per message the instructions,
# first-level and last-level misses (instruction and data), mispredicted branches, and a
# rough cycle estimate from them (Ir + 10 x (L1 misses + mispredicts) + 100 x LL misses).
# Where two servers' instructions differ less than their user time, this says why.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:?usage: bench/instructions.sh WORKLOAD [SERVER] [BUILD_DIR]}
server=${2:-hotsock}
B=${3:-build-rel}
tmp=$(mktemp -d /tmp/hsinstr.XXXXXX)
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT

# Both runs are long enough for hotsock to be in its steady state: the Lua allocator keeps
# freed blocks for reuse and the collector lets ~1 MiB of garbage build up between cycles
# (core/lua_blocks.h, lua_limits.c), so the first few thousand operations still call malloc
# and the kept blocks are freed at exit. With N1 and N2 a few hundred apart (the defaults
# before 2026-12-07) that one-off cost fell on the operations counted: 2-8% too many
# (bench/results/instructions.md, "steady state"). Since the collector's ballast
# (lua_limits.c) the first cycle comes after ~1 MiB of allocation, ~11,000 echoed 64 B
# messages: every row's first run is past that (the 1- and 500-connection and UDP rows'
# windows grew for it; "seventh part" there).
conns=10
case $work in
tcp64_1) conns=1 load=(--mode pingpong --size 64) n1=20000 n2=44000 ;;
tcp64_50) conns=50 load=(--mode pingpong --size 64) n1=400 n2=1000 ;;
tcp64_500) conns=500 load=(--mode pingpong --size 64) n1=40 n2=100 ;;
tcp4k_pipe) load=(--mode pipeline --size 4096 --depth 16) n1=200 n2=1400 ;;
udp64) load=(--mode pingpong --size 64 --udp-timeout 10) n1=3000 n2=9000 ;;
http_hello | https_hello | http_static) conns=1 n1=3000 n2=9000 ;;
*)
    echo "bench/instructions.sh: unknown workload $work" >&2
    exit 2
    ;;
esac
n1=${N1:-$n1}
n2=${N2:-$n2}

# A keep-alive client sending a fixed number of GET /hello one after another on one
# connection, reading each response whole (Content-Length) before the next; over TLS when a
# third argument (the CA file) is given.
cat >"$tmp/http.py" <<'PY'
import os, socket, ssl, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
path = os.environ.get("HS_PATH", "/hello").encode()
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
if len(sys.argv) > 3:
    ctx = ssl.create_default_context(cafile=sys.argv[3])
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    s = ctx.wrap_socket(s, server_hostname="localhost")
req = b"GET " + path + b" HTTP/1.1\r\nHost: bench\r\n\r\n"
buf = b""
for _ in range(n):
    s.sendall(req)
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].lower()
            i = head.find(b"content-length:")
            length = int(head[i + 15:].split(b"\r\n")[0])
            if len(buf) >= end + 4 + length:
                buf = buf[end + 4 + length:]
                break
        data = s.recv(65536)
        if not data:
            sys.exit("connection closed")
        buf += data
s.close()
PY

if [[ $work == https_hello ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -keyout "$tmp/ec.key" -out "$tmp/ec.pem" -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost 2>/dev/null
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Total instructions of one server run serving n messages per connection.
run() {
    local n=$1 port pid
    port=$(free_port)
    local vg=(valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out")
    [[ ${TOOL:-} == strace ]] && vg=(strace -f -c -o "$tmp/st.$n")
    [[ ${TOOL:-} == cachegrind ]] && vg=(valgrind --tool=cachegrind --cache-sim=yes
        --branch-sim=yes --cachegrind-out-file="$tmp/cg.out")
    case $server:$work in
    hotsock:http_hello | hotsock:http_static)
        "${vg[@]}" "$B/hotsock" serve scripts/http.lua --listen "tcp://127.0.0.1:$port" \
            --workers 1 --control none --log-level warn >/dev/null 2>"$tmp/vg.log" &
        ;;
    hotsock:https_hello)
        "${vg[@]}" "$B/hotsock" serve scripts/http.lua \
            --listen "tls://127.0.0.1:$port?cert=$tmp/ec.pem&key=$tmp/ec.key" \
            --workers 1 --control none --log-level warn >/dev/null 2>"$tmp/vg.log" &
        ;;
    hotsock:*)
        "${vg[@]}" "$B/hotsock" serve "${SCRIPT:-scripts/echo.lua}" --listen "tcp://127.0.0.1:$port" \
            --listen "udp://127.0.0.1:$port" --workers 1 --control none --log-level warn \
            --max-per-peer 0 --max-connections 12000 >/dev/null 2>"$tmp/vg.log" &
        ;;
    raw:http* | nginx:tcp* | nginx:udp* | nginx:https*)
        echo "bench/instructions.sh: server $server does not run $work" >&2
        exit 2
        ;;
    raw:*)
        "${vg[@]}" "$B/bench/hs_echo_raw" --listen "127.0.0.1:$port" --udp "127.0.0.1:$port" \
            >/dev/null 2>"$tmp/vg.log" &
        ;;
    nginx:http_hello)
        mkdir -p "$tmp/www"
        sed -e "s|@DIR@|$tmp|g; s|@ROOT@|$tmp/www|g; s|@LISTEN@|127.0.0.1:$port|g" \
            -e "s|@BODY@|hello from nginx|g" -e "s|^worker_processes 1;|master_process off;|" \
            bench/peers/nginx.conf.in >"$tmp/nginx.conf"
        "${vg[@]}" nginx -c "$tmp/nginx.conf" -p "$tmp" -e "$tmp/error.log" \
            >/dev/null 2>"$tmp/vg.log" &
        ;;
    esac
    pid=$!
    # run's caller is a command substitution, a subshell: if the load fails (set -e), this
    # stops the server (and strace's child) with it instead of leaving it running.
    # shellcheck disable=SC2064 # pid is meant to be expanded now
    trap "pkill -TERM -P $pid 2>/dev/null; kill -TERM $pid 2>/dev/null" EXIT
    for _ in $(seq 300); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1',$port)).close()" \
            2>/dev/null && break
        sleep 0.1
    done
    if [[ $work == http_hello ]]; then
        timeout 300 python3 "$tmp/http.py" "$port" "$n"
    elif [[ $work == http_static ]]; then
        HS_PATH=/index.html timeout 300 python3 "$tmp/http.py" "$port" "$n"
    elif [[ $work == https_hello ]]; then
        timeout 300 python3 "$tmp/http.py" "$port" "$n" "$tmp/ec.pem"
    else
        local scheme=tcp
        [[ $work == udp64 ]] && scheme=udp
        timeout 300 "$B/bench/hs_loadgen" --target "$scheme://127.0.0.1:$port" "${load[@]}" \
            --conns "$conns" --messages "$n" --warmup 0 --duration 600 --strict >"$tmp/load.out"
        grep -q "errors=0 mismatches=0" "$tmp/load.out" || {
            cat "$tmp/load.out" >&2
            exit 1
        }
    fi
    # Under strace, the server is strace's child: signal it, and strace ends with it.
    if [[ ${TOOL:-} == strace ]]; then kill -TERM "$(pgrep -P $pid)"; else kill -TERM $pid; fi
    wait $pid || true
    trap - EXIT
    if [[ ${TOOL:-} == strace ]]; then
        awk '$NF == "total" { print $4 }' "$tmp/st.$n"
        return
    fi
    if [[ -n ${KEEP:-} ]]; then cp "$tmp/cg.out" "$KEEP"; fi
    if [[ ${TOOL:-} == cachegrind ]]; then
        # The summary's counts, in the order of the names below (sim_names).
        awk '{ sub(/^==[0-9]+== /, "") }
            /^(I   refs|I1  misses|LLi misses|D1  misses|LLd misses|Mispredicts):/ {
                v = $0; sub(/^[^:]*: */, "", v); sub(/ .*/, "", v); gsub(/,/, "", v)
                printf "%s ", v }' "$tmp/vg.log"
        return
    fi
    grep -o "Collected : [0-9]*" "$tmp/vg.log" | grep -o "[0-9]*$" || {
        cat "$tmp/vg.log" >&2
        exit 1
    }
}

a=$(KEEP='' run "$n1")
b=$(run "$n2")
msgs=$(((n2 - n1) * conns))
if [[ ${TOOL:-} == strace ]]; then
    echo "$work $server syscalls/message: $(awk -v d=$((b - a)) -v m=$msgs 'BEGIN { printf "%.2f", d / m }') ($a at $n1, $b at $n2 per conn, $conns conns)"
    # Per call: the calls column of each run.
    awk -v m=$msgs '
        FNR == 1 { f++ }
        $1 ~ /^[0-9.]+$/ && $NF != "total" { c[f, $NF] = $4; names[$NF] = 1 }
        END { for (k in names) { d = (c[2, k] - c[1, k]) / m; if (d >= 0.01) printf "  %-16s %.2f\n", k, d } }
    ' "$tmp/st.$n1" "$tmp/st.$n2" | sort -k2 -rn
    exit 0
fi
if [[ ${TOOL:-} == cachegrind ]]; then
    awk -v a="$a" -v b="$b" -v m=$msgs -v w="$work" -v s="$server" 'BEGIN {
        split("Ir I1_misses LLi_misses D1_misses LLd_misses mispredicts", name, " ")
        na = split(a, x, " "); nb = split(b, y, " ")
        if (na != 6 || nb != 6) { print "bench/instructions.sh: no cachegrind summary" > "/dev/stderr"; exit 1 }
        printf "%s %s per message:", w, s
        for (i = 1; i <= 6; i++) { d[i] = (y[i] - x[i]) / m; printf " %s %.1f", name[i], d[i] }
        printf ", cycles ~%.0f\n", d[1] + 10 * (d[2] + d[4] + d[6]) + 100 * (d[3] + d[5]) }'
    exit 0
fi
echo "$work $server instructions/message: $(((b - a) / msgs)) ($a at $n1, $b at $n2 per conn, $conns conns)"
