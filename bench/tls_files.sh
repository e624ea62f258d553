#!/usr/bin/env bash
# A large file over HTTPS: requests/s and the server's CPU time per request, to compare two
# builds on how a file is read under TLS (bench/results/tls.md, "Files over TLS").
#
#   bash bench/tls_files.sh [SIZE] [SECONDS] BIN...
#
# SIZE is the file's size for head -c (default 100K), SECONDS each measured run (default 4).
# For each BIN in turn, scripts/http.lua serves the file on a tls:// listener (ECDSA P-256,
# made for the run) pinned to core 0, and wrk (1 thread, 10 keep-alive conns, core 1) fetches
# it for 1 s of warm-up, then SECONDS. Prints per run: req/s, the server's user and system
# µs per request (/proc/PID/stat), its peak RSS and minor faults per request. Name the builds
# twice or more (A B A B) and read the medians: one run is noisy on a shared machine. Run it
# alone. Loopback only; every step is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-100K}
secs=${2:-4}
shift 2 || true
[ $# -gt 0 ] || set -- build-bench/hotsock
tmp=$(mktemp -d /tmp/hstlsfiles.XXXXXX)
pid=
cleanup() {
    [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
mkdir "$tmp/www"
head -c "$size" /dev/urandom >"$tmp/www/file.bin"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/k.pem" \
    -out "$tmp/c.pem" -days 2 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 2>/dev/null

# utime, stime (ticks) and minor faults of a pid.
ticks() { awk '{print $14, $15, $10}' "/proc/$1/stat"; }

for bin in "$@"; do
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    url="https://127.0.0.1:$port/file.bin"
    taskset -c 0 "$bin" serve scripts/http.lua \
        --listen "tls://127.0.0.1:$port?cert=$tmp/c.pem&key=$tmp/k.pem" --set "root=$tmp/www" \
        --workers 1 --control none --log-level warn >"$tmp/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 50); do
        curl -sk -o /dev/null --max-time 2 "$url" && break
        sleep 0.1
    done
    timeout 10 taskset -c 1 wrk -t1 -c10 -d1s "$url" >/dev/null
    read -r u0 s0 f0 < <(ticks "$pid")
    out=$(timeout $((secs + 10)) taskset -c 1 wrk -t1 -c10 -d"${secs}s" "$url")
    read -r u1 s1 f1 < <(ticks "$pid")
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    hz=$(getconf CLK_TCK)
    awk -v b="$bin" -v s="$size" -v r="$reqs" -v t="$secs" -v hz="$hz" -v u="$((u1 - u0))" \
        -v y="$((s1 - s0))" -v f="$((f1 - f0))" -v m="$hwm" 'BEGIN {
        printf "%s %s: %.0f req/s, user %.1f + sys %.1f us/req, peak RSS %d KiB, %.2f faults/req\n",
            b, s, r / t, u * 1e6 / hz / r, y * 1e6 / hz / r, m, f / r }'
done
