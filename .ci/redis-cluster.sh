#!/usr/bin/env bash
# A local Redis Cluster for the palisade-redis tests: 3 masters and 3 replicas on loopback,
# ports BASE..BASE+5 (default 7100-7105), each a `redis-server` in a temp dir of its own, the
# cluster made by `redis-cli --cluster create --cluster-replicas 1`. Stopped by the PIDs it
# wrote; nothing else is touched.
#
#   .ci/redis-cluster.sh start [BASE]   start and wait until the cluster is ok
#   .ci/redis-cluster.sh urls [BASE]    print the node URLs, comma-separated
#                                       (the value of PALISADE_REDIS_CLUSTER_URLS)
#   .ci/redis-cluster.sh stop [BASE]    stop the servers and remove the dir
#
# cluster-node-timeout is one second so that a failover (a test kills a master) takes
# seconds, not the default 15; a replica validity factor of 0 lets a replica be promoted
# however long its link was down (the failover test prefers an answer to a refusal).
set -euo pipefail

cmd=${1:-}
base=${2:-7100}
dir="${TMPDIR:-/tmp}/palisade-redis-cluster-$base"
ports=$(seq "$base" $((base + 5)))

urls() {
  local out=""
  for p in $ports; do out="${out:+$out,}redis://127.0.0.1:$p"; done
  echo "$out"
}

stop() {
  for p in $ports; do
    if [ -f "$dir/$p/pid" ]; then
      pid=$(cat "$dir/$p/pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  done
  rm -rf "$dir"
}

start() {
  stop
  mkdir -p "$dir"
  for p in $ports; do
    mkdir -p "$dir/$p"
    redis-server --port "$p" --bind 127.0.0.1 --dir "$dir/$p" --daemonize yes \
      --pidfile "$dir/$p/pid" --logfile "$dir/$p/log" --save "" --appendonly no \
      --cluster-enabled yes --cluster-config-file "$dir/$p/nodes.conf" \
      --cluster-node-timeout 1000 --cluster-replica-validity-factor 0 >/dev/null
  done
  for p in $ports; do
    for _ in $(seq 100); do
      redis-cli -p "$p" ping 2>/dev/null | grep -q PONG && break
      sleep 0.05
    done
  done
  local nodes=""
  for p in $ports; do nodes="$nodes 127.0.0.1:$p"; done
  # shellcheck disable=SC2086
  redis-cli --cluster create $nodes --cluster-replicas 1 --cluster-yes >"$dir/create.log"
  for _ in $(seq 200); do
    ok=1
    for p in $ports; do
      redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' || ok=0
    done
    # Every replica has finished its first sync (so a failover can promote it).
    for p in $ports; do
      if redis-cli -p "$p" info replication | grep -q '^role:slave'; then
        redis-cli -p "$p" info replication | grep -q 'master_link_status:up' || ok=0
      fi
    done
    [ "$ok" = 1 ] && break
    sleep 0.1
  done
  if [ "$ok" != 1 ]; then
    echo "error: the cluster on $base-$((base + 5)) did not become ok" >&2
    exit 1
  fi
  echo "redis cluster ok on ports $base-$((base + 5))" >&2
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  urls) urls ;;
  *)
    echo "usage: $0 start|stop|urls [base port]" >&2
    exit 2
    ;;
esac
