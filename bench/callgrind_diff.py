#!/usr/bin/env python3
"""Where one operation's instructions go, by function, with start-up and shutdown cancelled.

    python3 bench/callgrind_diff.py SMALL BIG OPS [ROWS]

SMALL and BIG are callgrind outputs of the same server under the same load made for two
operation counts (bench/instructions.sh with KEEP=file, once with N2 set low and once high);
OPS is the difference in operations between them (requests, messages). Prints, for each
function, (inclusive Ir in BIG - inclusive Ir in SMALL) / OPS, largest first, ROWS rows
(default 80): the inclusive cost of one operation, where KEEP's single output would mix in
the start-up. Example, per /hello request:

    N1=200 N2=3000 KEEP=/tmp/a bash bench/instructions.sh http_hello hotsock build-bench
    N1=200 N2=9000 KEEP=/tmp/b bash bench/instructions.sh http_hello hotsock build-bench
    python3 bench/callgrind_diff.py /tmp/a /tmp/b 6000

Both runs past the first few thousand operations: before that hotsock's allocator is still
filling its kept blocks (instructions.sh says why).
"""
import re
import subprocess
import sys


def inclusive(path):
    """Inclusive Ir by function name, from callgrind_annotate."""
    out = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
        capture_output=True, text=True, check=True).stdout
    costs = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(.*)$", line)
        # "=> callee (Nx)" rows (calls seen in annotated source) carry their call count in
        # the name, so they could not be matched between the two runs: functions only.
        if m and not m.group(2).startswith("=>"):
            name = m.group(2)
            costs[name] = max(costs.get(name, 0), int(m.group(1).replace(",", "")))
    return costs


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    small, big = inclusive(sys.argv[1]), inclusive(sys.argv[2])
    ops, rows = float(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 80
    per_op = sorted(((big.get(k, 0) - small.get(k, 0)) / ops, k) for k in set(small) | set(big))
    for cost, name in reversed(per_op[-rows:]):
        print("%8.0f  %s" % (cost, name[:150]))


if __name__ == "__main__":
    main()
