#!/usr/bin/env bash
# Deterministic per-operation counts of the outbound paths of issue 15 (Speed): what one
# INCR through examples/counter.lua, or one 64 B ping-pong through examples/proxy.lua, costs
# hotsock in user-space instructions (callgrind) or in syscalls (strace -f -c), on a loaded
# shared machine where time is noise. As bench/instructions.sh: the server serves N1 and then
# N2 operations per connection in two runs, and (count(N2) - count(N1)) / ((N2 - N1) * conns)
# is the cost of one operation with start, connects and stop cancelled out.
#
#   bash bench/outbound_counts.sh WORKLOAD [TOOL] [BUILD_DIR]
#
# WORKLOAD: counter          examples/counter.lua, pooled Redis conns (one INCR per line)
#           counter_connect  the same with r:keepalive(...) replaced by r:close()
#           proxy64          examples/proxy.lua (conn:pipe) in front of hs_echo_raw, 64 B ping-pong
#           proxy64_receive  the same through examples/proxy_receive.lua (receive/send/flush)
# TOOL:     instructions (default) | syscalls (per syscall name, then the total)
# BUILD_DIR defaults to build-rel (RelWithDebInfo). CONNS (10), N1, N2 override; KEEP=file
# keeps the callgrind output (or the strace summary) of the N2 run.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:?usage: bench/outbound_counts.sh WORKLOAD [TOOL] [BUILD_DIR]}
tool=${2:-instructions}
B=${3:-build-rel}
conns=${CONNS:-10}
case $work in
counter | counter_connect) n1=20 n2=220 ;;
proxy64 | proxy64_receive) n1=20 n2=420 ;;
*)
    echo "bench/outbound_counts.sh: unknown workload $work" >&2
    exit 2
    ;;
esac
n1=${N1:-$n1}
n2=${N2:-$n2}
tmp=$(mktemp -d /tmp/hsout.XXXXXX)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
    for _ in $(seq 600); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1',$1)).close()" \
            2>/dev/null && return 0
        sleep 0.1
    done
    echo "bench/outbound_counts.sh: nothing listens on port $1" >&2
    exit 1
}

# CONNS connections at once, each sending N "INCR k" lines one after another (the next after
# the answer to the last), every answer checked to be a number.
cat >"$tmp/incr.py" <<'PY'
import selectors, socket, sys
port, conns, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
sel = selectors.DefaultSelector()
left = {}
for _ in range(conns):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sel.register(s, selectors.EVENT_READ)
    left[s] = [n, b""]
    s.sendall(b"INCR k\n")
while left:
    for key, _ in sel.select(60):
        s = key.fileobj
        data = s.recv(4096)
        if not data:
            sys.exit("incr.py: the server closed a connection")
        st = left[s]
        st[1] += data
        while b"\n" in st[1]:
            line, st[1] = st[1].split(b"\n", 1)
            if not line.isdigit():
                sys.exit("incr.py: unexpected answer %r" % line[:80])
            st[0] -= 1
            if st[0] > 0:
                s.sendall(b"INCR k\n")
        if st[0] == 0:
            sel.unregister(s)
            s.close()
            del left[s]
PY

case $work in
counter*)
    rport=$(free_port)
    redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no >"$tmp/redis.log" &
    pids+=($!)
    wait_port "$rport"
    script=examples/counter.lua
    if [[ $work == counter_connect ]]; then
        sed 's/r:keepalive([^)]*)/r:close()/' examples/counter.lua >"$tmp/counter_connect.lua"
        script=$tmp/counter_connect.lua
    fi
    extra=(--set "redis=tcp://127.0.0.1:$rport")
    ;;
proxy64 | proxy64_receive)
    uport=$(free_port)
    "$B/bench/hs_echo_raw" --listen "127.0.0.1:$uport" >"$tmp/upstream.log" 2>&1 &
    pids+=($!)
    wait_port "$uport"
    script=examples/proxy.lua
    [[ $work == proxy64_receive ]] && script=examples/proxy_receive.lua
    extra=(--set "upstream=tcp://127.0.0.1:$uport")
    ;;
esac

# The count of one server run serving n operations per connection (syscalls: one line per
# syscall name, "name count", and "total count").
run() {
    local n=$1 port pid
    port=$(free_port)
    local pre
    if [[ $tool == syscalls ]]; then
        pre=(strace -f -c -o "$tmp/out")
    else
        pre=(valgrind --tool=callgrind --callgrind-out-file="$tmp/out")
    fi
    LUA_PATH="lua/?.lua;;" "${pre[@]}" "$B/hotsock" serve "$script" --listen "tcp://127.0.0.1:$port" \
        "${extra[@]}" --workers 1 --control none --log-level warn --max-per-peer 0 \
        >/dev/null 2>"$tmp/tool.log" &
    pid=$!
    wait_port "$port"
    if [[ $work == proxy64* ]]; then
        timeout 300 "$B/bench/hs_loadgen" --target "tcp://127.0.0.1:$port" --mode pingpong \
            --size 64 --conns "$conns" --messages "$n" --warmup 0 --duration 600 --strict \
            >"$tmp/load.out"
        grep -q "errors=0 mismatches=0" "$tmp/load.out" || {
            cat "$tmp/load.out" >&2
            exit 1
        }
    else
        timeout 300 python3 "$tmp/incr.py" "$port" "$conns" "$n"
    fi
    # strace does not pass a TERM on to its tracee: stop the server itself.
    if [[ $tool == syscalls ]]; then
        kill -TERM "$(pgrep -P $pid)"
    else
        kill -TERM $pid
    fi
    wait $pid || true
    if [[ -n ${KEEP:-} ]]; then cp "$tmp/out" "$KEEP"; fi
    if [[ $tool == syscalls ]]; then
        # strace -c's table: "% time seconds usecs/call calls [errors] syscall".
        awk '/^-/ || /^%/ || NF < 5 { next } { print $NF, $4 }' "$tmp/out"
    else
        grep -o "Collected : [0-9]*" "$tmp/tool.log" | grep -o "[0-9]*$" || {
            cat "$tmp/tool.log" >&2
            exit 1
        }
    fi
}

a=$(KEEP='' run "$n1")
b=$(run "$n2")
ops=$(((n2 - n1) * conns))
if [[ $tool == syscalls ]]; then
    echo "$work syscalls/op ($n1 and $n2 ops per conn, $conns conns):"
    join -a 2 -e 0 -o 0,1.2,2.2 <(echo "$a" | sort) <(echo "$b" | sort) |
        awk -v ops="$ops" '{ d = ($3 - $2) / ops; if (d >= 0.005 || d <= -0.005) printf "  %-16s %.2f\n", $1, d }' |
        sort -k2 -rn
else
    echo "$work instructions/op: $(((b - a) / ops)) ($a at $n1, $b at $n2 per conn, $conns conns)"
fi
