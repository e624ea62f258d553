#!/usr/bin/env bash
# GET /hello for two or more builds alternated round by round: bench/ab.sh's http_hello
# workload, kept under the name bench/results/instructions.md cites.
#
#   bash bench/http_ab.sh [SECONDS] [ROUNDS] BIN...
set -euo pipefail
exec bash "$(dirname "$0")/ab.sh" http_hello "$@"
