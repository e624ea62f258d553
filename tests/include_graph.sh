#!/bin/sh
# Prints the module graph of the core from its #include "core/..." lines: one line per module,
# "module -> header, header, ...", where a module is a core/*.c file and an edge is a header of
# another module it includes (its own header and *_internal.h ones left out). With --cycles,
# prints instead each pair of modules that include each other's header (none: no output).
# Run from the repository root: tests/include_graph.sh [--cycles]
set -eu
edges() {
    for f in core/*.c; do
        m=$(basename "$f" .c)
        sed -n 's|^#include "core/\([a-z0-9_]*\)\.h".*|\1|p' "$f" |
            grep -v -e "^$m\$" -e '_internal$' | sort -u | sed "s|^|$m |"
    done
}
if [ "${1:-}" = "--cycles" ]; then
    edges | while read -r a b; do
        if [ -f "core/$b.c" ] && edges_b=$(sed -n 's|^#include "core/\([a-z0-9_]*\)\.h".*|\1|p' "core/$b.c") &&
            printf '%s\n' "$edges_b" | grep -qx "$a" && [ "$a" \< "$b" ]; then
            echo "$a <-> $b"
        fi
    done
else
    edges | awk '{ if ($1 != m) { if (m != "") print line; m = $1; line = m " -> " $2 }
                   else line = line ", " $2 } END { if (m != "") print line }'
fi
