#!/usr/bin/env bash
# TLS rows, side by side in one run (issue 16): run it alone on a quiet machine.
#   bash bench/tls.sh [SECONDS]      (default 10 s per row; build-bench/ or build/ binary)
# Rows:
#   https_hello_{rsa,ec}   HTTPS GET /hello, keep-alive, 50 conns (wrk): hotsock vs nginx
#   https_new_{rsa,ec}     new handshakes/s: every request on a new connection (wrk with
#                          Connection: close), 50 conns: hotsock vs nginx. wrk keeps its
#                          session across reconnects, so after the first these handshakes are
#                          resumed by ticket (no certificate, no signature): both servers alike
#   tls_echo_4k            TLS echo 4 KiB pipelined (depth 16, 10 conns) vs plaintext, same
#                          Python client for both (client-bound: read the ratio, not the rate)
#   tls_idle_mem           memory per idle TLS connection (1,000 held) vs plaintext
#   https_idle_mem         memory per idle HTTPS keep-alive connection after one GET /hello
#                          (1,000 held): hotsock vs nginx vs HAProxy (the anchors)
# The HTTPS rows also give the server's CPU time per request, which a shared machine's noise
# disturbs far less than the rates.
# nginx answers /hello with a fixed `return 200` (bench/peers/nginx_tls.conf.in), hotsock
# with its Lua HTTP script: the keep-alive row carries the plaintext /hello gap too.
# Both servers run pinned to core 0 and the clients to core 1 (taskset). Certificates (RSA
# 2048 and ECDSA P-256) are made for the run. nginx rows are skipped when nginx is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
bin=${HOTSOCK_BIN:-build-bench/hotsock}
[ -x "$bin" ] || bin=build/hotsock
[ -x "$bin" ] || bin=build-debug/hotsock
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
pid=
pin_srv="taskset -c 0"
pin_cli="taskset -c 1"
[ "$(nproc --all)" -ge 2 ] || { pin_srv=""; pin_cli=""; }

for kind in rsa ec; do
  if [ $kind = rsa ]; then newkey=rsa:2048; else newkey="ec -pkeyopt ec_paramgen_curve:P-256"; fi
  # shellcheck disable=SC2086
  openssl req -x509 -newkey $newkey -nodes -days 2 -keyout "$tmp/$kind.key" \
    -out "$tmp/$kind.pem" -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 2>/dev/null
done

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

# Servers start in this shell (not in $(...), whose subshell would run the EXIT trap): pid=.
start_hotsock() { # SCRIPT URL
  $pin_srv "$bin" serve "$1" --listen "$2" --workers 1 --control none --log-level warn \
    --max-connections 12000 --max-per-peer 0 --tls-max-handshakes 0 >"$tmp/hs.log" 2>&1 &
  pid=$!
}

start_nginx() { # KIND PORT
  local d="$tmp/nginx.$1"
  mkdir -p "$d"
  sed -e "s|@DIR@|$d|g" -e "s|@LISTEN@|127.0.0.1:$2|g" -e "s|@CERT@|$tmp/$1.pem|g" \
    -e "s|@KEY@|$tmp/$1.key|g" bench/peers/nginx_tls.conf.in >"$d/nginx.conf"
  $pin_srv nginx -c "$d/nginx.conf" -p "$d" -e "$d/error.log" &
  pid=$!
}

cpu_ticks() { # PIDS (comma-separated) -> their user + system CPU time in clock ticks
  local t=0 p
  for p in ${1//,/ }; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo $t
}

# wrk's rate, and the server's CPU per request (µs): the figure a busy shared machine
# disturbs least (the rate follows whatever CPU share the server gets).
wrk_rate() { # URL SERVER_PIDS [HEADER] -> "requests/s cpu_us_per_request"
  local h=() before out
  [ $# -gt 2 ] && h=(-H "$3")
  before=$(cpu_ticks "$2")
  out=$($pin_cli wrk -t1 -c50 -d"${secs}s" "${h[@]}" "$1")
  awk -v t=$(($(cpu_ticks "$2") - before)) -v hz="$(getconf CLK_TCK)" \
    '/requests in/ {n = $1} /Requests\/sec/ {r = $2} END {printf "%s %.0f\n", r, n ? t * 1e6 / hz / n : 0}' \
    <<<"$out"
}

row() { printf '%-16s %-10s %-6s %12s %-14s %s\n' "$@"; }
row ROW SERVER CERT RATE UNIT "CPU µs/req"
for kind in rsa ec; do
  for srv in hotsock nginx; do
    p=$(port)
    if [ $srv = hotsock ]; then
      start_hotsock scripts/http.lua "tls://127.0.0.1:$p?cert=$tmp/$kind.pem&key=$tmp/$kind.key"
    elif command -v nginx >/dev/null; then
      start_nginx $kind "$p"
    else
      row "https_*_$kind" nginx $kind - "skipped: nginx not installed"
      continue
    fi
    pids+=("$pid")
    wait_port "$p"
    held=$pid
    [ $srv = nginx ] && held=$(pgrep -d, -P "$pid") # the worker serves
    read -r rate cpu < <(wrk_rate "https://127.0.0.1:$p/hello" "$held")
    row "https_hello_$kind" $srv $kind "$rate" req/s "$cpu"
    read -r rate cpu < <(wrk_rate "https://127.0.0.1:$p/hello" "$held" "Connection: close")
    row "https_new_$kind" $srv $kind "$rate" handshakes/s "$cpu"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
  done
done

# TLS echo pipelined and idle memory: the same Python client over TLS and plaintext.
for scheme in tls tcp; do
  p=$(port)
  url="tcp://127.0.0.1:$p"
  [ $scheme = tls ] && url="tls://127.0.0.1:$p?cert=$tmp/ec.pem&key=$tmp/ec.key"
  start_hotsock scripts/echo.lua "$url"
  pids+=("$pid")
  wait_port "$p"
  $pin_cli python3 bench/peers/tls_load.py "$scheme" "$p" "$tmp/ec.pem" "$secs" "$pid" |
    while read -r name value unit; do row "$name" hotsock "$scheme" "$value" "$unit"; done
  kill "$pid"
  wait "$pid" 2>/dev/null || true
done

# Idle HTTPS keep-alive connections after one request each: hotsock, nginx and HAProxy.
for srv in hotsock nginx haproxy; do
  command -v "$srv" >/dev/null || [ $srv = hotsock ] || {
    row https_idle_mem $srv ec - "skipped: $srv not installed"
    continue
  }
  p=$(port)
  case $srv in
  hotsock) start_hotsock scripts/http.lua "tls://127.0.0.1:$p?cert=$tmp/ec.pem&key=$tmp/ec.key" ;;
  nginx) start_nginx ec "$p" ;;
  haproxy)
    cat "$tmp/ec.pem" "$tmp/ec.key" >"$tmp/ec.both"
    sed -e "s|@LISTEN@|127.0.0.1:$p|" -e "s|@PEM@|$tmp/ec.both|" bench/peers/haproxy_tls.cfg.in \
      >"$tmp/haproxy.cfg"
    $pin_srv haproxy -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
    pid=$!
    ;;
  esac
  pids+=("$pid")
  wait_port "$p"
  held=$pid
  [ $srv = nginx ] && held=$(pgrep -d, -P "$pid") # the worker holds the connections
  read -r kib unit < <($pin_cli python3 bench/peers/tls_idle.py "$p" "$tmp/ec.pem" "$held")
  row https_idle_mem $srv ec "$kib" "$unit"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
done
