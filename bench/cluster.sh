#!/usr/bin/env bash
# Throughput through HAProxy to 1 and to 3 hotsock instances (examples/cluster/, send-proxy-v2
# to ?proxy listeners) against the same scripts served directly (a plain listener, no
# balancer): 64 B line echo (hs_loadgen pingpong) and HTTP GET /hello (wrk). The HAProxy
# overhead is the direct row over the through-HAProxy row with 1 instance. The direct instance
# logs at info, as run.sh's do (an access-log line per HTTP request, to a file). The last
# column counts the connections HAProxy opened to the instances during the HTTP row (from its
# stats socket): CONNS x instances when it keeps one per client and instance, as haproxy.cfg's
# "http-reuse never" makes it; up to one per request when it cannot reuse them.
#   bench/cluster.sh [BUILD_DIR]   (default build-rel; DURATION=10 s, CONNS=50 per row,
#                                   WORKERS=1 per instance)
# Prints a Markdown table for bench/RESULTS.md. Everything runs on this machine: HAProxy and the
# load generators take cores from the instances, so read the rows against each other.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-rel}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
export WORKERS=${WORKERS:-1}
bin=$(cd "$build" && pwd)/hotsock
loadgen=$(cd "$build" && pwd)/bench/hs_loadgen
tmp=$(mktemp -d)
pids=()
cleanup() {
  if [ ${#pids[@]} -gt 0 ]; then kill "${pids[@]}" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

HOTSOCK=$bin LIMIT=1000000000 CHECK_MS=1000 examples/cluster/run.sh --dir "$tmp/cluster" \
  --for 3600 >"$tmp/run.out" 2>&1 &
pids+=($!)
for _ in $(seq 300); do
  [ -f "$tmp/cluster/cluster.env" ] && break
  sleep 0.1
done
# shellcheck disable=SC1091
. "$tmp/cluster/cluster.env"

# The direct baseline: the same scripts on plain listeners, WORKERS workers, logging as the
# cluster's instances do.
LUA_PATH="examples/cluster/?.lua;lua/?.lua;;" "$bin" serve examples/cluster/tcp.lua \
  --listen tcp://127.0.0.1:0 examples/cluster/http.lua --listen tcp://127.0.0.1:0 \
  --workers "$WORKERS" --control none >"$tmp/direct.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  [ "$(grep -c '^  tcp://' "$tmp/direct.out" || true)" = 2 ] && break
  sleep 0.1
done
d_tcp=$(awk '$1 ~ /^tcp:/ && $2 == "tcp" { n = split($1, a, ":"); print a[n] }' "$tmp/direct.out")
d_http=$(awk '$1 ~ /^tcp:/ && $2 == "http" { n = split($1, a, ":"); print a[n] }' "$tmp/direct.out")

hap() { printf '%s\n' "$1" | nc -U -N "$DIR/haproxy.sock"; }
# Connections HAProxy has opened to the HTTP backend's servers so far.
http_connects() { hap "show stat" | awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) h[$i] = i; next }
  $1 == "http_back" && $2 == "BACKEND" { print $h["connect"] }'; }
echo_rate() {
  "$loadgen" --target "tcp://127.0.0.1:$1" --mode pingpong --conns "$CONNS" --size 64 \
    --payload line --duration "$DURATION" --warmup 1 2>&1 | tee -a "$tmp/loadgen.log" |
    grep -o 'msg_per_s=[0-9.]*' | head -n 1 | cut -d= -f2
}
http_rate() {
  wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$1/hello" 2>&1 |
    awk '/Requests\/sec/ { print $2 }'
}
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4"; }
# One through-HAProxy row: echo rate, HTTP rate, server connections opened during the latter.
via_haproxy() {
  local echo http before
  echo=$(echo_rate "$TCP_PORT")
  before=$(http_connects)
  http=$(http_rate "$HTTP_PORT")
  row "$1" "$echo" "$http" "$(($(http_connects) - before))"
}

echo "| target | 64 B echo (msg/s) | HTTP /hello (req/s) | HTTP: server conns opened |"
echo "| --- | ---: | ---: | ---: |"
row "direct, 1 instance x $WORKERS workers (no balancer)" "$(echo_rate "$d_tcp")" "$(http_rate "$d_http")" "-"
via_haproxy "HAProxy -> 3 instances x $WORKERS workers"
for s in i2 i3; do
  hap "disable server tcp_back/$s" >/dev/null
  hap "disable server http_back/$s" >/dev/null
done
via_haproxy "HAProxy -> 1 instance x $WORKERS workers"
