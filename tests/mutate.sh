#!/usr/bin/env bash
# Mutation sample: does the suite notice a broken error path? Each mutation below is one
# realistic single-line bug in the core; this script applies it to a copy of the tree,
# rebuilds, runs the tests that should catch it, and reports caught or MISSED. Run on demand
# (minutes, not part of CI): a MISSED line is a weak spot to cover with a test; "not applied"
# means the code moved and the mutation's pattern needs updating.
#
#   tests/mutate.sh            every mutation
#   tests/mutate.sh NAME...    only those (names from the table below)
#   KEEP=1 tests/mutate.sh     keep the scratch copy (its path is printed)
#
# Exit status: 0 when every mutation applied and was caught, 1 otherwise.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
jobs=${JOBS:-2}

# name | file | perl substitution (one line of the file changes; write a '|' as \x7c) | ctest
# regex of the tests that must fail
mutations=(
  "sendv_cap|core/conn.c|s/if \(hs__conn_out_len\(c\) \+ total > c->set->limits.out_hard\)/if (0)/|^unit\.conn\$"
  "udp_max|core/udp.c|s/if \(len > UDP_MAX_PAYLOAD\)/if (0)/|^integration\.errpaths\$"
  "on_reload_error|core/script.c|s/^(\s+)r = run_on_reload\(p, err, errlen\);/\$1run_on_reload(p, err, errlen);/|^integration\.errpaths\$"
  "callback_type|core/script_decl.c|s/if \(type != LUA_TFUNCTION\) \{/if (type != LUA_TFUNCTION && 0) {/|^integration\.errpaths\$"
  "is_closed|core/lua_conn.c|s/box->c == NULL \x7c\x7c hs_conn_is_closing\(box->c\)\)/box->c == NULL)/|^integration\.errpaths\$"
  "fsync_before_rename|core/filesink.c|s/if \(fsync\(f->fd\) != 0\)/if (0)/|^integration\.errpaths\$"
  "incr_on_string|core/shared_ops.c|s/^(\s+)r = -EINVAL;/\$1*result = 1;/|^integration\.errpaths\$"
  "errno_disjoint|core/hs.h|s/#define HS_AGAIN \(-\d+\)/#define HS_AGAIN (-2)/|^unit\.hs\$"
  "drain_listeners|core/listener.c|s/^(\s+)evconnlistener_free\(l->evl\); \/\* closes the socket \*\//\$1evconnlistener_disable(l->evl);/|^integration\.drain\$"
)

want=("$@")
selected() {
  [ ${#want[@]} -eq 0 ] && return 0
  local w
  for w in "${want[@]}"; do [ "$w" = "$1" ] && return 0; done
  return 1
}

scratch=$(mktemp -d)
if [ -z "${KEEP:-}" ]; then trap 'rm -rf "$scratch"' EXIT; else echo "scratch copy: $scratch"; fi
src=$scratch/src
build=$scratch/build
mkdir -p "$src"
# The working tree as it is (uncommitted edits included), without build directories.
(cd "$root" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -xf - -C "$src"
echo "configuring and building the unmutated copy..."
if ! cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Debug >"$scratch/configure.log" 2>&1 ||
   ! cmake --build "$build" -j"$jobs" >"$scratch/build.log" 2>&1; then
  echo "the unmutated tree does not build; see $scratch/build.log" >&2
  KEEP=1
  exit 1
fi

status=0
printf '%-22s %-10s %s\n' MUTATION RESULT TESTS
for m in "${mutations[@]}"; do
  IFS='|' read -r name file subst tests <<<"$m"
  selected "$name" || continue
  cp "$src/$file" "$scratch/orig"
  perl -pi -e "$subst" "$src/$file"
  if cmp -s "$src/$file" "$scratch/orig"; then
    printf '%-22s %-10s %s\n' "$name" "not applied" "$file: pattern not found"
    status=1
    continue
  fi
  if ! cmake --build "$build" -j"$jobs" >"$scratch/$name.build.log" 2>&1; then
    result="caught" # by the compiler
    tests="(does not build)"
  elif (cd "$build" && ctest -R "$tests" -j1 --timeout 300 --output-on-failure >"$scratch/$name.test.log" 2>&1); then
    result="MISSED"
    status=1
  else
    result="caught"
    # Which case failed: a busted "not ok" line or a cmocka "[  FAILED  ] test_..." line.
    by=$(grep -m1 -oE '(not ok [0-9]+ - .*|\[  FAILED  \] test_[a-z0-9_]+)' \
      "$scratch/$name.test.log" | cut -c1-100)
    tests="$tests${by:+: $by}"
  fi
  printf '%-22s %-10s %s\n' "$name" "$result" "$tests"
  cp "$scratch/orig" "$src/$file"
  # Put the unmutated object back so the next mutation starts from a clean build.
  touch "$src/$file"
done
# One last build leaves the scratch copy consistent for KEEP=1.
cmake --build "$build" -j"$jobs" >/dev/null 2>&1
exit $status
