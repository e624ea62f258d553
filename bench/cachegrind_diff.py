#!/usr/bin/env python3
"""Where one operation's cache misses fall, by function, with start-up and shutdown cancelled.

    python3 bench/cachegrind_diff.py SMALL BIG OPS [EVENTS] [ROWS]

SMALL and BIG are cachegrind outputs of the same server under the same load made for two
operation counts (bench/instructions.sh with TOOL=cachegrind and KEEP=file, once with N2 set
low and once high); OPS is the difference in operations between them. EVENTS is a
comma-separated list of cachegrind's events (default D1mr,D1mw,I1mr,Ir: first-level data read
and write misses, instruction misses, instructions), sorted by the first. Prints, for each
function, (BIG - SMALL) / OPS of each event, largest first, ROWS rows (default 30). These are
the function's own costs: cachegrind, unlike callgrind, does not charge callees to callers.
Example (bench/results/profiles/cachegrind-tcp64_500-d1.txt, 500 connections):

    TOOL=cachegrind N1=100 N2=300 KEEP=/tmp/a bash bench/instructions.sh tcp64_500 hotsock build-bench
    TOOL=cachegrind N1=100 N2=1000 KEEP=/tmp/b bash bench/instructions.sh tcp64_500 hotsock build-bench
    python3 bench/cachegrind_diff.py /tmp/a /tmp/b 350000
"""
import re
import subprocess
import sys
import tempfile


def per_function(diff_path, events):
    """{function: [event counts]} from cg_annotate's function summary of a cg_diff output."""
    out = subprocess.run(
        ["cg_annotate", "--show=" + ",".join(events), "--sort=" + events[0], "--auto=no",
         "--threshold=0", diff_path],
        capture_output=True, text=True, check=True).stdout
    rows, in_table = {}, False
    for line in out.splitlines():
        if line.rstrip().endswith("file:function"):
            in_table = True
            continue
        if not in_table:
            continue
        # Each count may be followed by its share, "(12.34%)": drop those, then the first
        # len(events) fields are the counts and the rest is the function's name.
        fields = re.sub(r"\(\s*-?[\d.]+%\)", " ", line).split()
        if len(fields) <= len(events) or not all(re.fullmatch(r"-?[\d,]+", f)
                                                   for f in fields[:len(events)]):
            continue
        counts = [int(f.replace(",", "")) for f in fields[:len(events)]]
        rows[" ".join(fields[len(events):])] = counts
    return rows


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    small, big, ops = sys.argv[1], sys.argv[2], float(sys.argv[3])
    events = (sys.argv[4] if len(sys.argv) > 4 else "D1mr,D1mw,I1mr,Ir").split(",")
    nrows = int(sys.argv[5]) if len(sys.argv) > 5 else 30
    with tempfile.NamedTemporaryFile(mode="w", suffix=".cgdiff") as d:
        subprocess.run(["cg_diff", small, big], stdout=d, check=True)
        d.flush()
        rows = per_function(d.name, events)
    print(" ".join("%9s" % e for e in events) + "  function (per operation)")
    ranked = sorted(rows.items(), key=lambda kv: kv[1][0], reverse=True)
    for name, counts in ranked[:nrows]:
        print(" ".join("%9.2f" % (c / ops) for c in counts) + "  " + name[:150])


if __name__ == "__main__":
    main()
