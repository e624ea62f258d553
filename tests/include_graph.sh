#!/bin/sh
# Prints the module graph of the core from its #include "core/..." lines: one line per module,
# "module -> header, header, ...", where a module is a core/*.c file and an edge is a header of
# another module it includes (its own header and *_internal.h ones left out). With --cycles,
# prints instead each loop among modules (edges to a header with no .c of its name left out):
# "a <-> b" for two modules that include each other's header, "a -> b -> c -> a" for a longer
# loop; no output when there is none. --check is --cycles that also fails (exit 1) when it
# prints a loop: ctest runs it as unit.include_cycles, so a new loop fails the suite.
# Run from the repository root: tests/include_graph.sh [--cycles | --check]
set -eu
if [ "${1:-}" = "--check" ]; then
    loops=$("$0" --cycles)
    if [ -n "$loops" ]; then
        printf 'the core module graph has a loop (break it as docs/building.md says):\n%s\n' "$loops"
        exit 1
    fi
    exit 0
fi
edges() {
    for f in core/*.c; do
        m=$(basename "$f" .c)
        sed -n 's|^#include "core/\([a-z0-9_]*\)\.h".*|\1|p' "$f" |
            grep -v -e "^$m\$" -e '_internal$' | sort -u | sed "s|^|$m |"
    done
}
if [ "${1:-}" = "--cycles" ]; then
    # tsort (coreutils) reports each loop it has to break, its members in the loop's order:
    # "tsort: -: input contains a loop:" then one "tsort: MODULE" line per member.
    edges | while read -r a b; do
        if [ -f "core/$b.c" ]; then echo "$a $b"; fi
    done | LC_ALL=C tsort 2>&1 >/dev/null | awk '
        function flush() {
            if (n == 2) print (m[1] < m[2] ? m[1] " <-> " m[2] : m[2] " <-> " m[1])
            else if (n > 2) { line = m[1]; for (i = 2; i <= n; i++) line = line " -> " m[i]
                              print line " -> " m[1] }
            n = 0
        }
        /input contains a loop/ { flush(); next }
        /^tsort: / { m[++n] = $2; next }
        { flush(); print "include_graph.sh: tsort: " $0; bad = 1 }
        END { flush(); exit bad }'
else
    edges | awk '{ if ($1 != m) { if (m != "") print line; m = $1; line = m " -> " $2 }
                   else line = line ", " $2 } END { if (m != "") print line }'
fi
