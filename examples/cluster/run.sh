#!/usr/bin/env bash
# Starts the cluster example on loopback: redis-server, three hotsock instances (tcp.lua and
# http.lua on ?proxy listeners, counter and rate limit in Redis, publish/subscribe across the
# instances with --pubsub redis://) and HAProxy in front of them, each on a free port; prints
# how to try it; stops everything on exit (Ctrl-C, SIGTERM, or after --for SECONDS, 600 by
# default).
#   examples/cluster/run.sh [--dir DIR] [--for SECONDS]
# Environment: HOTSOCK (the binary; default build/hotsock), WORKERS per instance (2), LIMIT
# and WINDOW (the rate limit: LIMIT incr per client address per WINDOW seconds; 100 per 1),
# CHECK_MS (HAProxy's health-check interval; 500), GRACE (--grace of each instance; 5),
# HOST (HAProxy's bind address; 127.0.0.1).
# Once everything is up (every instance subscribed at Redis and passing HAProxy's health
# check), DIR/cluster.env holds the ports and paths for roll.sh and scripts; DIR keeps the
# logs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=""
for_s=600
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --for) for_s=$2; shift 2 ;;
    *) echo "usage: $0 [--dir DIR] [--for SECONDS]" >&2; exit 2 ;;
  esac
done
HOTSOCK=${HOTSOCK:-$root/build/hotsock}
HOTSOCK=$(cd "$(dirname "$HOTSOCK")" && pwd)/$(basename "$HOTSOCK")
WORKERS=${WORKERS:-2}
LIMIT=${LIMIT:-100}
WINDOW=${WINDOW:-1}
CHECK_MS=${CHECK_MS:-500}
GRACE=${GRACE:-5}
HOST=${HOST:-127.0.0.1}
[ -x "$HOTSOCK" ] || { echo "no hotsock binary at $HOTSOCK (set HOTSOCK)" >&2; exit 1; }
if [ -z "$dir" ]; then
  dir=$(mktemp -d "${TMPDIR:-/tmp}/hotsock-cluster.XXXXXX")
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
rm -f "$dir/cluster.env"

cleanup() {
  trap - EXIT INT TERM
  local pids=()
  for i in 1 2 3; do
    # After `hotsock upgrade` the instance runs under a new pid: its log's last "ready" line.
    local p
    p=$(sed -n 's/.* ready (pid \([0-9]*\).*/\1/p' "$dir/i$i.log" 2>/dev/null | tail -n 1 || true)
    [ -n "$p" ] || p=$(cat "$dir/i$i.pid" 2>/dev/null || true)
    [ -n "$p" ] && pids+=("$p")
  done
  for f in haproxy redis; do
    [ -f "$dir/$f.pid" ] && pids+=("$(cat "$dir/$f.pid")")
  done
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "${pids[@]}" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "${pids[@]}" 2>/dev/null || true
  rm -f "$dir/cluster.env"
  echo "cluster stopped (logs in $dir)"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# Free loopback ports, taken at random below the kernel's ephemeral range and checked by
# binding them (all held until all are found, so they differ), then released. Not ports the
# kernel hands out for port 0: another program binding port 0 meanwhile (a parallel test suite)
# could be given the same one between this check and the servers' start.
read -r TCP_PORT HTTP_PORT REDIS_PORT I1_TCP I1_HTTP I2_TCP I2_HTTP I3_TCP I3_HTTP < <(lua5.4 -e '
  local socket = require "socket"
  local f = io.open("/proc/sys/net/ipv4/ip_local_port_range")
  local low = f and tonumber(f:read("l"):match("^%s*(%d+)")) or 32768
  if f then f:close() end
  local s, ports = {}, {}
  for _ = 1, 1000 do
    if #ports == 9 then break end
    local port = math.random(math.max(1024, low - 10000), low - 1)
    local b = socket.bind("127.0.0.1", port)
    if b then s[#s + 1], ports[#ports + 1] = b, port end
  end
  assert(#ports == 9, "no 9 free ports below " .. low)
  for _, b in ipairs(s) do b:close() end
  print(table.concat(ports, " "))')

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
  >"$dir/redis.log" 2>&1 &
echo $! >"$dir/redis.pid"
for _ in $(seq 100); do
  [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && break
  sleep 0.1
done
[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] || { echo "redis did not start" >&2; exit 1; }
REDIS=tcp://127.0.0.1:$REDIS_PORT

# Each instance's command line goes to DIR/iN.cmd, so roll.sh can start it again.
for i in 1 2 3; do
  tp=$(eval echo "\$I${i}_TCP")
  hp=$(eval echo "\$I${i}_HTTP")
  opts="--set redis=$REDIS --set name=i$i --set limit=$LIMIT --set window=$WINDOW"
  cat >"$dir/i$i.cmd" <<CMD
export LUA_PATH='$here/?.lua;$root/lua/?.lua;;'
exec setsid '$HOTSOCK' serve '$here/tcp.lua' --listen 'tcp://127.0.0.1:$tp?proxy' $opts \\
  '$here/http.lua' --listen 'tcp://127.0.0.1:$hp?proxy' $opts \\
  --pubsub redis://127.0.0.1:$REDIS_PORT --workers $WORKERS --grace $GRACE \\
  --control '$dir/i$i.sock' ${EXTRA_ARGS:-} \\
  >>'$dir/i$i.log' 2>&1 </dev/null
CMD
  bash "$dir/i$i.cmd" &
  echo $! >"$dir/i$i.pid"
done
for i in 1 2 3; do
  for _ in $(seq 100); do
    grep -q ' ready (pid' "$dir/i$i.log" 2>/dev/null && break
    sleep 0.1
  done
  grep -q ' ready (pid' "$dir/i$i.log" || { echo "instance i$i did not start:" >&2; cat "$dir/i$i.log" >&2; exit 1; }
  # Its worker 1 holds the pub/sub connection to Redis: from this line on, what any instance
  # publishes reaches this one.
  for _ in $(seq 100); do
    grep -q ' pubsub: subscribed to ' "$dir/i$i.log" && break
    sleep 0.1
  done
  grep -q ' pubsub: subscribed to ' "$dir/i$i.log" ||
    { echo "instance i$i did not subscribe at Redis:" >&2; cat "$dir/i$i.log" >&2; exit 1; }
done

sed -e "s|@DIR@|$dir|g" -e "s|@HOST@|$HOST|g" -e "s|@TCP_PORT@|$TCP_PORT|g" \
  -e "s|@HTTP_PORT@|$HTTP_PORT|g" -e "s|@CHECK_MS@|$CHECK_MS|g" \
  -e "s|@I1_TCP@|$I1_TCP|g" -e "s|@I1_HTTP@|$I1_HTTP|g" -e "s|@I2_TCP@|$I2_TCP|g" \
  -e "s|@I2_HTTP@|$I2_HTTP|g" -e "s|@I3_TCP@|$I3_TCP|g" -e "s|@I3_HTTP@|$I3_HTTP|g" \
  "$here/haproxy.cfg" >"$dir/haproxy.cfg"
haproxy -f "$dir/haproxy.cfg" -db >"$dir/haproxy.log" 2>&1 &
echo $! >"$dir/haproxy.pid"
# Ready when HAProxy counts all six servers (3 instances x 2 backends) UP.
up=0
for _ in $(seq 200); do
  up=$(echo "show stat" | nc -U -N "$dir/haproxy.sock" 2>/dev/null |
    awk -F, '$2 ~ /^i[123]$/ && $18 == "UP"' | wc -l || true)
  [ "$up" = 6 ] && break
  sleep 0.1
done
[ "$up" = 6 ] || { echo "HAProxy did not see every instance up:" >&2; cat "$dir/haproxy.log" >&2; exit 1; }

cat >"$dir/cluster.env.tmp" <<ENV
HOTSOCK='$HOTSOCK'
DIR='$dir'
HOST=$HOST
TCP_PORT=$TCP_PORT
HTTP_PORT=$HTTP_PORT
REDIS_PORT=$REDIS_PORT
I1_TCP=$I1_TCP
I1_HTTP=$I1_HTTP
I2_TCP=$I2_TCP
I2_HTTP=$I2_HTTP
I3_TCP=$I3_TCP
I3_HTTP=$I3_HTTP
CHECK_MS=$CHECK_MS
ENV
cat <<MSG
hotsock cluster up: 3 instances x $WORKERS workers behind HAProxy, Redis on port $REDIS_PORT
  TCP  (line protocol):  printf 'who\nincr\nhello\n' | nc -q1 $HOST $TCP_PORT
  publish/subscribe:     nc $HOST $TCP_PORT, type "sub news"; from another terminal
                         (another instance): printf 'pub news hi\n' | nc -q1 $HOST $TCP_PORT
  HTTP:                  curl http://$HOST:$HTTP_PORT/who ; curl -X POST http://$HOST:$HTTP_PORT/incr
  from another address:  curl --interface 127.0.0.2 http://$HOST:$HTTP_PORT/who
  rate limit:            $LIMIT incr per client address per $WINDOW s, TCP and HTTP together
                         (TCP "incr": "ERR rate limited"; HTTP: 429)
  HAProxy runtime API:   echo 'show stat' | nc -U -N $dir/haproxy.sock
  roll the instances:    $here/roll.sh $dir [upgrade|restart]
  logs and state:        $dir
Stops after $for_s s or on Ctrl-C.
MSG
mv "$dir/cluster.env.tmp" "$dir/cluster.env"
# Bounded: wait in short sleeps so a signal ends it at once.
end=$((SECONDS + for_s))
while [ $SECONDS -lt "$end" ]; do
  sleep 1 &
  wait $! || true
done
