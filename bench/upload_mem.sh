#!/usr/bin/env bash
# bench/run.sh's upload row without the full bench, for what a loaded machine can still tell:
# the server's peak RSS (VmHWM, split into anonymous and file-backed pages), its CPU seconds,
# and the ack delay after the last byte (the commit's fsync). MB/s is printed too, but on a
# shared machine it is disk and scheduler noise; judge speed by CPU seconds and system calls.
#
#   bash bench/upload_mem.sh [BUILD_DIR] [MiB] [SERVER ...]   # default build-rel 1024 hotsock cfile
#   STRACE=1 bash bench/upload_mem.sh build-rel 1024 hotsock  # system calls (strace -c -f)
#
# SERVER is hotsock (scripts/upload.lua) or cfile (bench/hs_upload_raw), started as
# bench/run.sh starts them, pinned to core 0 with the client on core 1.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
. bench/common.sh
bench_bounded 900 "$0" "$@"
B=${1:-build-rel}
MIB=${2:-1024}
shift 2 || shift $# || true
[ $# -gt 0 ] || set -- hotsock cfile
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$B" -j2 --target hotsock hs_loadgen hs_upload_raw >/dev/null
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

field() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$2/status"; }

for s in "$@"; do
    port=$(free_port)
    dir=$TMP/up-$s
    mkdir -p "$dir"
    pre=()
    [ -z "${STRACE:-}" ] || pre=(strace -f -c -o "$TMP/strace-$s")
    case $s in
    hotsock)
        "${pre[@]}" "${PIN_S[@]}" "$B/hotsock" serve scripts/upload.lua \
            --listen "tcp://127.0.0.1:$port" --set "dir=$dir" --workers 1 --control none \
            --log-level warn --grace 1 >/dev/null 2>"$TMP/log-$s" &
        ;;
    cfile)
        "${pre[@]}" "${PIN_S[@]}" "$B/bench/hs_upload_raw" --listen "127.0.0.1:$port" \
            --dir "$dir" 2>"$TMP/log-$s" &
        ;;
    *)
        echo "bench: unknown server $s (hotsock, cfile)" >&2
        exit 2
        ;;
    esac
    wrapper=$!
    wait_port "$port" "$wrapper"
    # The server itself, under strace or taskset (exec'd) or not.
    pid=$(pgrep -n -f -- "127.0.0.1:$port" | head -1)
    sync
    out=$("${PIN_C[@]}" "$B/bench/hs_loadgen" --target "tcp://127.0.0.1:$port" --mode upload \
        --bytes $((MIB << 20)) --duration 300 | tail -1)
    read -r ut st < <(awk '{ print $14, $15 }' "/proc/$pid/stat")
    printf '%-8s %s MiB: %s MB/s, ack %s ms, peak RSS %s KiB (now anon %s + file %s), CPU %.2f s\n' \
        "$s" "$MIB" "$(grep -o 'mb_per_s=[0-9.]*' <<<"$out" | cut -d= -f2)" \
        "$(grep -o 'ack_ms=[0-9.]*' <<<"$out" | cut -d= -f2)" "$(field VmHWM "$pid")" \
        "$(field RssAnon "$pid")" "$(field RssFile "$pid")" "$(awk -v a="$ut" -v b="$st" -v h="$HZ" 'BEGIN { print (a + b) / h }')"
    kill "$pid" 2>/dev/null || true
    wait "$wrapper" 2>/dev/null || true
    [ -z "${STRACE:-}" ] || head -12 "$TMP/strace-$s"
done
