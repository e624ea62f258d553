#!/usr/bin/env bash
# The whole test suite, as the README's second command and CI run it: installs what is
# missing, checks formatting, builds Debug (warnings as errors) and Asan (address and
# undefined-behaviour sanitizers), and runs every ctest suite against both builds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
jobs=$(nproc)

echo "== format (clang-format --dry-run --Werror on core/, tests/, bench/)"
clang-format --dry-run --Werror core/*.c core/*.h tests/unit/*.c tests/fuzz/*.c bench/*.c tests/loadgen/*.c tests/loadgen/*.h

echo "== lua lint (luacheck, .luacheckrc: zero warnings)"
luacheck --quiet --formatter plain .

for type in Debug Asan; do
  dir=build-$(echo "$type" | tr '[:upper:]' '[:lower:]')
  echo "== $type build in $dir"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DHOTSOCK_WERROR=ON >/dev/null
  cmake --build "$dir" -j"$jobs"
  echo "== $type tests"
  (cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 600)
done

# The optimised build users get (the demo's): gcc's -O2 warns of things -O0/-O1 do not see
# (format truncation), and warnings stay at zero there too. The server alone, no tests.
echo "== RelWithDebInfo build (warnings as errors) in build-rel"
cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHOTSOCK_WERROR=ON \
  -DHOTSOCK_BUILD_TESTS=OFF -DHOTSOCK_BUILD_BENCH=OFF >/dev/null
cmake --build build-rel -j"$jobs" --target hotsock

# libFuzzer targets (tests/fuzz/): a clang build of them alone, each fuzzed for a bounded time
# over its committed corpus. Their corpus replays already ran in both builds above.
echo "== fuzz (clang, HOTSOCK_FUZZ_SECONDS each) in build-fuzz"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DHOTSOCK_WERROR=ON \
  -DHOTSOCK_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_http fuzz_http_response fuzz_framing fuzz_addr fuzz_upload fuzz_proxy fuzz_json \
  fuzz_ws fuzz_resp
(cd build-fuzz && ctest --output-on-failure -j"$jobs" -L fuzz --timeout 300)
