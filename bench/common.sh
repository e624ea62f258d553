# shellcheck shell=bash disable=SC2034 # (variables here are read by the scripts that source it)
# Shared by bench/proxy.sh and bench/redis_rr.sh (sourced, not run): the shape every row takes
# there is start a server pinned to core 0, a warm-up client run, a measured client run pinned
# to core 1 with the server's CPU time read from /proc before and after, stop the server.
# The caller sets TMP (a scratch directory) after bench_bounded.

# The whole script is bounded: run it again under timeout(1) unless that is done already.
#   bench_bounded LIMIT "$0" "$@"
bench_bounded() {
  local limit=$1
  shift
  if [ -z "${HS_BENCH_BOUNDED:-}" ]; then
    HS_BENCH_BOUNDED=1 exec timeout -k 10 "$limit" bash "$@"
  fi
}

# Packages a peer needs, installed only when missing (as bench/run.sh does).
#   bench_need PATH_OR_COMMAND PACKAGE ...
bench_need() {
  local missing=() what
  while [ $# -ge 2 ]; do
    what=$1
    if [[ $what == /* ]]; then
      [ -e "$what" ] || missing+=("$2")
    else
      command -v "$what" >/dev/null 2>&1 || missing+=("$2")
    fi
    shift 2
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}

# Builds the binaries into BUILD when one is missing (RelWithDebInfo, as bench/run.sh).
bench_build() {
  local build=$1
  shift
  local t
  for t in "$@"; do
    if [ ! -x "$build/$t" ] && [ ! -x "$build/bench/$t" ]; then
      cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
      cmake --build "$build" -j2 --target hotsock hs_loadgen hs_echo_raw >"$build/build.log" 2>&1 || {
        tail -30 "$build/build.log" >&2
        exit 1
      }
      return
    fi
  done
}

# Prefixes pinning servers to core 0 and clients to core 1 (empty on one core).
PIN_S=() PIN_C=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  PIN_S=(taskset -c 0) PIN_C=(taskset -c 1)
fi
HZ=$(getconf CLK_TCK)

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port PORT PID: until something accepts on PORT (10 s), or PID has exited.
wait_port() {
  for _ in $(seq 1 200); do
    kill -0 "$2" 2>/dev/null || {
      echo "bench: server $2 exited before listening on $1" >&2
      return 1
    }
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench: nothing listening on port $1" >&2
  return 1
}

# User + system ticks of PID and all its live descendants (nginx's worker, hotsock's workers).
cpu_ticks() {
  local total=0 p t
  for p in $(tree_pids "$1"); do
    t=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}
tree_pids() {
  local c
  echo "$1"
  for c in $(pgrep -P "$1" || true); do tree_pids "$c"; done
}

# echo_load WORKLOAD: sets load (hs_loadgen's arguments) and scheme (tcp or udp) for one of
# the echo rows, as bench/run.lua's WORKLOADS run them; returns 1 for any other workload.
echo_load() {
  scheme=tcp
  case $1 in
  tcp64_1) load=(--mode pingpong --size 64 --conns 1) ;;
  tcp64_50) load=(--mode pingpong --size 64 --conns 50) ;;
  tcp64_500) load=(--mode pingpong --size 64 --conns 500) ;;
  tcp4k_pipe) load=(--mode pipeline --size 4096 --depth 16 --conns 50) ;;
  udp64) load=(--size 64 --conns 50) scheme=udp ;;
  *) return 1 ;;
  esac
}

# run_load SECONDS PORT [PATH]: on core 1, the echo row's client set by echo_load (hs_loadgen,
# LOADGEN or build-bench's) or, given PATH, wrk on that HTTP path (1 thread, 50 keep-alive
# connections, as bench/run.lua); prints the operations it completed.
run_load() {
  local out
  if [ $# -ge 3 ]; then
    out=$(timeout $(($1 + 10)) "${PIN_C[@]}" wrk -t1 -c50 -d"$1s" "http://127.0.0.1:$2$3")
    awk '/requests in/ {print $1}' <<<"$out"
  else
    out=$(timeout $(($1 + 20)) "${PIN_C[@]}" "${LOADGEN:-build-bench/bench/hs_loadgen}" \
      --target "$scheme://127.0.0.1:$2" "${load[@]}" --duration "$1" --warmup 0)
    tr ' ' '\n' <<<"$out" | awk -F= '$1 == "messages" {print $2}' | tail -1
  fi
}

# start_hotsock LOG BIN echo|http PORT [OPTION...]: hotsock BIN on core 0 as bench/run.lua runs
# it, one worker: scripts/echo.lua on PORT's TCP and UDP, or scripts/http.lua on its TCP; the
# options after PORT are added. Its pid in BG_PID.
start_hotsock() {
  local log=$1 bin=$2 kind=$3 port=$4
  shift 4
  if [ "$kind" = http ]; then
    start_bg "$log" "${PIN_S[@]}" "$bin" serve scripts/http.lua --listen "tcp://127.0.0.1:$port" \
      --workers 1 --control none --log-level warn "$@"
  else
    start_bg "$log" "${PIN_S[@]}" "$bin" serve scripts/echo.lua --listen "tcp://127.0.0.1:$port" \
      --listen "udp://127.0.0.1:$port" --workers 1 --control none --log-level warn \
      --max-connections 12000 --max-per-peer 0 "$@"
  fi
}

# Ticks the hypervisor stole from core 0 so far (steal in /proc/stat): time no process in
# the guest is charged for, which a run on that core loses all the same.
steal0() { awk '$1 == "cpu0" { print $9 }' /proc/stat; }

# per_op TICKS OPS: µs of CPU per operation.
per_op() {
  awk -v t="$1" -v hz="$HZ" -v n="$2" 'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "-" }'
}
# ratio A B: A / B, two decimals.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b != "-" && b > 0) printf "%.2f", a / b; else print "-" }'
}

# Servers started with start_bg are stopped by stop_bg and at exit.
BG_PIDS=()
start_bg() { # LOG CMD...: runs CMD in the background, its pid in BG_PID
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  BG_PID=$!
  BG_PIDS+=("$BG_PID")
}
stop_bg() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
bench_cleanup() {
  local p
  for p in "${BG_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap bench_cleanup EXIT
