#!/usr/bin/env bash
# The whole test suite, as the README's second command and CI run it: installs what is
# missing, checks formatting, builds Debug (warnings as errors) and Asan (address and
# undefined-behaviour sanitizers), and runs every ctest suite against both builds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
jobs=$(nproc)

echo "== format (clang-format --dry-run --Werror on core/, tests/, bench/)"
clang-format --dry-run --Werror core/*.c core/*.h tests/unit/*.c bench/*.c bench/*.h

for type in Debug Asan; do
  dir=build-$(echo "$type" | tr '[:upper:]' '[:lower:]')
  echo "== $type build in $dir"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DHOTSOCK_WERROR=ON >/dev/null
  cmake --build "$dir" -j"$jobs"
  echo "== $type tests"
  (cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 600)
done
