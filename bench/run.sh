#!/bin/bash
# The benchmark suite in one command (see bench/README.md):
#
#   bash bench/run.sh            full run: 3 rounds, 30-40 minutes; writes bench/results/
#                                and the table in bench/RESULTS.md
#   bash bench/run.sh --quick    smoke run: 1 round, short runs, about 3 minutes; writes
#                                bench/results/raw/quick.md only
#
# It installs what is missing (Debian packages: the peers nginx-extras, haproxy, tarantool,
# python3, the HTTP load generator wrk, and the build and driver dependencies), builds hotsock
# and the bench tools (RelWithDebInfo, in build-bench/), and runs bench/run.lua pinned to the
# second core; every server it starts is pinned to the first. Other options are passed to
# bench/run.lua (--help lists them).
set -euo pipefail
cd "$(dirname "$0")/.."

# command or file -> Debian package
declare -A need=(
    [nginx]=nginx-extras [haproxy]=haproxy [tarantool]=tarantool [wrk]=wrk
    [/usr/bin/python3]=python3 [lua5.4]=lua5.4 [cmake]=cmake [gcc]=gcc
    [pkg-config]=pkg-config [curl]=curl [taskset]=util-linux [timeout]=coreutils
    [/usr/include/event2/event.h]=libevent-dev [/usr/include/lua5.4/lua.h]=liblua5.4-dev
    [/usr/include/openssl/evp.h]=libssl-dev
    [/usr/share/lua/5.4/socket.lua]=lua-socket
    [/usr/lib/x86_64-linux-gnu/lua/5.4/cjson.so]=lua-cjson
)
missing=()
for what in "${!need[@]}"; do
    if [[ $what == /* ]]; then
        [[ -e $what ]] || missing+=("${need[$what]}")
    else
        command -v "$what" >/dev/null 2>&1 || missing+=("${need[$what]}")
    fi
done
# lua-cjson's module path differs by architecture; ask Lua rather than trust the path above.
if [[ " ${missing[*]} " == *" lua-cjson "* ]] && command -v lua5.4 >/dev/null &&
    lua5.4 -e 'require "cjson"' 2>/dev/null; then
    missing=("${missing[@]/lua-cjson/}")
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u | grep -v '^$' || true)
if ((${#missing[@]})); then
    echo "bench: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

echo "bench: building hotsock and the bench tools in build-bench/ (RelWithDebInfo)" >&2
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-bench -j2 --target hotsock hs_loadgen hs_echo_raw hs_echo_bev hs_upload_raw hs_bench_signal hs_core_distance \
    >build-bench/build.log 2>&1 || {
    tail -30 build-bench/build.log >&2
    echo "bench: build failed (full log: build-bench/build.log)" >&2
    exit 1
}

pin=()
if (($(nproc) >= 2)); then
    pin=(taskset -c 1)
fi
# The whole suite is bounded too: a full run takes 30-40 minutes on a shared 2-core machine
# (noisy runs are repeated).
exec timeout -k 10 60m "${pin[@]}" lua5.4 bench/run.lua "$@"
