#!/usr/bin/env bash
# Replaces the cluster's instances one at a time, the way a deploy does, while clients keep
# coming through HAProxy:
#   examples/cluster/roll.sh DIR [upgrade|restart]
# DIR is run.sh's directory (its cluster.env). For each instance:
#   upgrade (default): `hotsock upgrade --control DIR/iN.sock`: the new binary takes the
#     listening sockets over, so HAProxy never sees the port close; no drain needed. Then wait
#     until the new process is subscribed at Redis (--pubsub).
#   restart: drain it in HAProxy through the runtime API (no new connections go to it),
#     SIGTERM it (it finishes its connections within --grace), start it again from
#     DIR/iN.cmd, wait for it to be ready and subscribed at Redis, put it back in rotation
#     and wait for HAProxy's health check to pass.
# Exits 1 at the first instance that fails (the others keep serving).
set -euo pipefail
dir=${1:?usage: $0 DIR [upgrade|restart]}
mode=${2:-upgrade}
# shellcheck disable=SC1091
. "$dir/cluster.env"

hap() { printf '%s\n' "$1" | nc -U -N "$DIR/haproxy.sock"; }
# The instance's supervisor: the last "ready (pid N" of its log (an upgrade replaces it).
pid_of() { sed -n 's/.* ready (pid \([0-9]*\).*/\1/p' "$DIR/i$1.log" | tail -n 1; }
# Both backends' view of server iN: "UP 2" means up and holding 2 connections.
state() { hap "show stat" | awk -F, -v s="i$1" '$2 == s { print $18 }' | sort -u | tr '\n' ' '; }
subs() { grep -c ' pubsub: subscribed to ' "$DIR/i$1.log" || true; }
# Until instance i's log has more than n "pubsub: subscribed" lines: its new process gets what
# the other instances publish.
wait_subscribed() {
  for _ in $(seq 100); do
    [ "$(subs "$1")" -gt "$2" ] && return 0
    sleep 0.1
  done
  echo "i$1 did not subscribe at Redis again (see $DIR/i$1.log)" >&2
  return 1
}
wait_up() {
  for _ in $(seq 300); do
    [ "$(state "$1")" = "UP " ] && return 0
    sleep 0.1
  done
  echo "i$1 did not come back up in HAProxy: $(state "$1")" >&2
  return 1
}

for i in 1 2 3; do
  case "$mode" in
  upgrade)
    echo "i$i: upgrade (pid $(pid_of "$i"))"
    n=$(subs "$i")
    "$HOTSOCK" upgrade --control "$DIR/i$i.sock"
    wait_subscribed "$i" "$n"
    echo "i$i: now pid $(pid_of "$i")"
    ;;
  restart)
    old=$(pid_of "$i")
    echo "i$i: drain (pid $old)"
    hap "set server tcp_back/i$i state drain" >/dev/null
    hap "set server http_back/i$i state drain" >/dev/null
    kill -TERM "$old"
    for _ in $(seq 300); do
      kill -0 "$old" 2>/dev/null || break
      sleep 0.1
    done
    ! kill -0 "$old" 2>/dev/null || { echo "i$i (pid $old) did not stop" >&2; exit 1; }
    before=$(grep -c ' ready (pid' "$DIR/i$i.log" || true)
    n=$(subs "$i")
    bash "$DIR/i$i.cmd" &
    echo $! >"$DIR/i$i.pid"
    for _ in $(seq 100); do
      [ "$(grep -c ' ready (pid' "$DIR/i$i.log" || true)" -gt "$before" ] && break
      sleep 0.1
    done
    [ "$(grep -c ' ready (pid' "$DIR/i$i.log" || true)" -gt "$before" ] ||
      { echo "i$i did not start again (see $DIR/i$i.log)" >&2; exit 1; }
    wait_subscribed "$i" "$n"
    hap "set server tcp_back/i$i state ready" >/dev/null
    hap "set server http_back/i$i state ready" >/dev/null
    wait_up "$i"
    echo "i$i: restarted, pid $(pid_of "$i")"
    ;;
  *) echo "usage: $0 DIR [upgrade|restart]" >&2; exit 2 ;;
  esac
done
