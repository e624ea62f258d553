#!/usr/bin/env bash
# Soak run: builds hotsock (RelWithDebInfo) in build-soak/ and runs bench/soak.lua for
# DURATION seconds (default 600), a reload every 3 s; the samples go to
# build-soak/soak.tsv. See the header of bench/soak.lua for the traffic and the verdict.
#   bash bench/soak.sh [DURATION] [more soak.lua options]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-600}
shift || true
cmake -S . -B build-soak -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHOTSOCK_WERROR=ON >/dev/null
cmake --build build-soak -j"$(nproc)" --target hotsock hs_loadgen >/dev/null
exec timeout $((duration + 120)) lua5.4 bench/soak.lua --bin build-soak/hotsock \
  --loadgen build-soak/bench/hs_loadgen --duration "$duration" --tsv build-soak/soak.tsv "$@"
