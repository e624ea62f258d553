#!/usr/bin/env bash
# The proxy rows of issue 15 (Speed): examples/proxy.lua (conn:pipe: bytes move in C) and
# examples/proxy_receive.lua (the same proxy as receive/send/flush loops) beside HAProxy in TCP
# mode (peers/haproxy_tcp.cfg.in) and nginx's stream proxy_pass (peers/nginx_stream.conf.in),
# all in front of the same upstream, hs_echo_raw, in one run:
#   pingpong_64   64 B ping-pong over 50 connections       (hs_loadgen --mode pingpong)
#   pipe_4k       4 KiB pipelined 16 deep, 50 connections  (hs_loadgen --mode pipeline)
# For each: messages/s and the proxy's CPU per message (user + system of the proxy process and
# its descendants, /proc/PID/stat, around the measured run), and both as ratios to HAProxy's in
# the same run (the issue's goal: >= 0.9x HAProxy's msg/s, <= 1.3x its CPU/msg). A "direct"
# row (hs_loadgen straight to the upstream) shows what the proxies cost.
# The proxy under test is pinned to core 0; the upstream and hs_loadgen share core 1.
# Each proxy is freshly started per row, warmed up by a WARMUP-second run, then measured.
# Each round runs every proxy again; the first table gives each cell's median over the rounds
# (ratios: the median of each round's ratio to that round's HAProxy), the second every round.
#   bash bench/proxy.sh [BUILD_DIR]    (default build-bench; built when missing)
#   SECONDS_PER_RUN=5 WARMUP=1 CONNS=50 ROUNDS=3
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
. bench/common.sh
bench_bounded 15m "$0" "$@"
TMP=$(mktemp -d)

build=${1:-build-bench}
secs=${SECONDS_PER_RUN:-5}
warm=${WARMUP:-1}
conns=${CONNS:-50}
rounds=${ROUNDS:-3}
bench_need haproxy haproxy nginx nginx-extras \
  /usr/lib/nginx/modules/ngx_stream_module.so libnginx-mod-stream python3 python3
bench_build "$build" hotsock bench/hs_loadgen bench/hs_echo_raw
bin=$(cd "$build" && pwd)/hotsock
loadgen=$(cd "$build" && pwd)/bench/hs_loadgen
echo_raw=$(cd "$build" && pwd)/bench/hs_echo_raw
chmod 755 "$TMP" # nginx's worker runs as nobody when started by root
ulimit -n 8192 2>/dev/null || true

# The upstream, for the whole run.
up_port=$(free_port)
start_bg "$TMP/upstream.log" "${PIN_C[@]}" "$echo_raw" --listen "127.0.0.1:$up_port"
up_pid=$BG_PID
wait_port "$up_port" "$up_pid"

# start_proxy NAME PORT: the proxy's pid in BG_PID.
start_proxy() {
  local name=$1 port=$2 dir=$TMP/$1.$2
  mkdir -p "$dir"
  case $name in
  hotsock | hotsock_receive)
    local script=examples/proxy.lua
    [ "$name" = hotsock_receive ] && script=examples/proxy_receive.lua
    start_bg "$dir/log" "${PIN_S[@]}" "$bin" serve "$script" --listen "tcp://127.0.0.1:$port" \
      --set "upstream=tcp://127.0.0.1:$up_port" --workers 1 --control none --log-level warn \
      --max-per-peer 0
    ;;
  haproxy)
    sed -e "s|@LISTEN@|127.0.0.1:$port|" -e "s|@UPSTREAM@|127.0.0.1:$up_port|" \
      bench/peers/haproxy_tcp.cfg.in >"$dir/haproxy.cfg"
    start_bg "$dir/log" "${PIN_S[@]}" haproxy -db -f "$dir/haproxy.cfg"
    ;;
  nginx)
    sed -e "s|@DIR@|$dir|g" -e "s|@LISTEN@|127.0.0.1:$port|" -e "s|@UPSTREAM@|127.0.0.1:$up_port|" \
      bench/peers/nginx_stream.conf.in >"$dir/nginx.conf"
    start_bg "$dir/log" "${PIN_S[@]}" nginx -c "$dir/nginx.conf" -p "$dir" -e "$dir/error.log"
    ;;
  esac
  wait_port "$port" "$BG_PID" || { cat "$dir/log" >&2; return 1; }
}

# load ROW PORT SECONDS: one hs_loadgen run; prints its result line (exit 1 on any error).
load() {
  local args=(--conns "$conns" --size 64)
  [ "$1" = pipe_4k ] && args=(--conns "$conns" --mode pipeline --size 4096 --depth 16)
  "${PIN_C[@]}" timeout 60 "$loadgen" --target "tcp://127.0.0.1:$2" "${args[@]}" --duration "$3" \
    2>>"$TMP/loadgen.err" | tail -n 1
}
field() { grep -o "$1=[0-9.]*" | head -n 1 | cut -d= -f2; }

# measure ROW NAME: M_RATE and M_CPU (µs/msg) of one fresh proxy (NAME "direct": the upstream
# alone).
measure() {
  local row=$1 name=$2 port pid t0 t1 out
  if [ "$name" = direct ]; then
    port=$up_port pid=$up_pid
  else
    port=$(free_port)
    start_proxy "$name" "$port"
    pid=$BG_PID
  fi
  # hs_loadgen refuses --duration 0: WARMUP=0 skips the warm-up run.
  [ "$warm" = 0 ] || load "$row" "$port" "$warm" >/dev/null
  t0=$(cpu_ticks "$pid")
  out=$(load "$row" "$port" "$secs")
  t1=$(cpu_ticks "$pid")
  [ "$name" = direct ] || stop_bg "$pid"
  case $out in *" errors=0 mismatches=0 "*) ;; *)
    echo "bench: $name $row failed: $out" >&2
    tail -n 3 "$TMP/loadgen.err" >&2
    exit 1
    ;;
  esac
  local msgs rate
  msgs=$(echo "$out" | field messages)
  rate=$(echo "$out" | field msg_per_s)
  M_RATE=$rate M_CPU=$(per_op $((t1 - t0)) "$msgs")
}

names=(direct haproxy nginx hotsock hotsock_receive)
declare -A rate cpu
for row in pingpong_64 pipe_4k; do
  for r in $(seq 1 "$rounds"); do
    for name in "${names[@]}"; do
      measure "$row" "$name"
      rate[$row.$name.$r]=$M_RATE cpu[$row.$name.$r]=$M_CPU
    done
  done
done

# median V...: the middle value (the mean of the two middle ones for an even count); "-" when
# any is "-".
median() {
  printf '%s\n' "$@" | sort -g | awk '/^-$/ { bad = 1 } { v[NR] = $1 }
    END { if (bad || NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
          else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
label_of() {
  case $1 in
  direct) echo "direct (no proxy; upstream CPU)" ;;
  hotsock) echo "hotsock examples/proxy.lua" ;;
  hotsock_receive) echo "hotsock examples/proxy_receive.lua" ;;
  *) echo "$1" ;;
  esac
}

# One cell's medians over the rounds: MED_RATE, MED_CPU, MED_RR, MED_RC (ratios to HAProxy).
medians() {
  local row=$1 name=$2 r rs=() cs=() rrs=() rcs=()
  for r in $(seq 1 "$rounds"); do
    rs+=("${rate[$row.$name.$r]}") cs+=("${cpu[$row.$name.$r]}")
    rrs+=("$(ratio "${rate[$row.$name.$r]}" "${rate[$row.haproxy.$r]}")")
    rcs+=("$(ratio "${cpu[$row.$name.$r]}" "${cpu[$row.haproxy.$r]}")")
  done
  MED_RATE=$(median "${rs[@]}") MED_CPU=$(median "${cs[@]}")
  MED_RR=$(median "${rrs[@]}") MED_RC=$(median "${rcs[@]}")
}

echo "Median of $rounds round(s):"
echo
echo "| row | proxy | msg/s | proxy CPU µs/msg | msg/s vs HAProxy | CPU/msg vs HAProxy |"
echo "| --- | --- | ---: | ---: | ---: | ---: |"
for row in pingpong_64 pipe_4k; do
  for name in "${names[@]}"; do
    medians "$row" "$name"
    [ "$name" = direct ] && MED_RC="" # the upstream's CPU, not a proxy's
    printf '| %s | %s | %s | %s | %s | %s |\n' "$row" "$(label_of "$name")" "$MED_RATE" \
      "$MED_CPU" "$MED_RR" "$MED_RC"
  done
done
echo
echo "Every round:"
echo
echo "| row | round | proxy | msg/s | proxy CPU µs/msg | msg/s vs HAProxy | CPU/msg vs HAProxy |"
echo "| --- | ---: | --- | ---: | ---: | ---: | ---: |"
for row in pingpong_64 pipe_4k; do
  for r in $(seq 1 "$rounds"); do
    for name in "${names[@]}"; do
      k=$row.$name.$r h=$row.haproxy.$r
      rr=$(ratio "${rate[$k]}" "${rate[$h]}") rc=$(ratio "${cpu[$k]}" "${cpu[$h]}")
      [ "$name" = direct ] && rc=""
      printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$row" "$r" "$(label_of "$name")" \
        "${rate[$k]}" "${cpu[$k]}" "$rr" "$rc"
    done
  done
done
echo
for row in pingpong_64 pipe_4k; do
  for name in hotsock hotsock_receive; do
    medians "$row" "$name"
    awk -v row="$row" -v who="$(label_of "$name")" -v m="$MED_RR" -v c="$MED_RC" -v n="$rounds" 'BEGIN {
      ok = (m != "-" && c != "-" && m >= 0.9 && c <= 1.3)
      printf "goal %s, %s, median of %d (>= 0.9x msg/s, <= 1.3x CPU/msg of HAProxy): %s (%sx, %sx)\n",
        row, who, n, ok ? "met" : "NOT met", m, c }'
  done
done
