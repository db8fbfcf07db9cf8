#!/bin/sh
# The peer figure for the Redis rate store: `redis-benchmark` running the crate's own Lua script
# (`palisade_redis::rate::SCRIPT`, extracted from src/rate.rs) with EVALSHA, on the counter, at
# the concurrencies of `cargo bench -p palisade-benches --bench redis`: 1 connection
# sequential, 50 connections, and 50 connections pipelining 16 requests each. With a fourth
# argument `--cluster`, against a Redis Cluster (any node's host and port): the script is
# loaded on every node and redis-benchmark follows the slots. Allow: a limit never reached; deny: limit 1 on keys already spent. 1 key and
# 100k keys (`-r`). Keys live under `palisade-rb:` and expire by the script's own TTLs; they are
# deleted at the end. Only reads and writes keys: the server's configuration is left alone.
#
# Usage: scripts/redis-benchmark.sh [host] [port] [requests] [--cluster]
set -eu
HOST=${1:-127.0.0.1}
PORT=${2:-6379}
N=${3:-50000}
CLUSTER=${4:-}
HERE=$(dirname "$0")
CLI="redis-cli -h $HOST -p $PORT"

# The script text: between `pub const SCRIPT: &str = r"` and the closing `";`.
LUA=$(awk '/^pub const SCRIPT: &str = r"$/ {on = 1; next} on && /^";$/ {exit} on' \
  "$HERE/../src/rate.rs")
if [ "$CLUSTER" = --cluster ]; then
  redis-cli --cluster call "$HOST:$PORT" SCRIPT LOAD "$LUA" > /dev/null
  SHA=$(printf '%s' "$LUA" | sha1sum | cut -d' ' -f1)
else
  SHA=$($CLI SCRIPT LOAD "$LUA")
fi
echo "script sha $SHA"

# ARGV: kind, period (us), limit, op, cost; period one minute.
ALLOW="c 60000000 1125899906842624 a 1"
DENY="c 60000000 1 a 1"

run() { # label, key, keys (-r), args, extra redis-benchmark options
  label=$1 key=$2 keys=$3 args=$4
  shift 4
  printf '%-44s ' "$label"
  # shellcheck disable=SC2086
  redis-benchmark -h "$HOST" -p "$PORT" $CLUSTER -q -n "$N" -r "$keys" "$@" \
    EVALSHA "$SHA" 1 "$key" $args | tr '\r' '\n' | grep -v '^$' | tail -n 1 | sed 's/.*: //'
}

for keys in 1 100000; do
  if [ "$keys" = 1 ]; then key='palisade-rb:{bench}:c'; else key='palisade-rb:{__rand_int__}:c'; fi
  # On a cluster redis-benchmark routes by a `{tag}` it rewrites per master: one key per
  # master (1 key), or each master's share of the keys in one slot of its own (100k keys).
  if [ "$CLUSTER" = --cluster ]; then
    if [ "$keys" = 1 ]; then key='palisade-rb:{tag}:c'; else key='palisade-rb:{tag}:__rand_int__:c'; fi
  fi
  # Spend every deny key's one unit first (the deny keys are the allow keys' siblings).
  dkey=$(echo "$key" | sed 's/:c$/:d/')
  # shellcheck disable=SC2086
  redis-benchmark -h "$HOST" -p "$PORT" $CLUSTER -q -n $((keys * 10)) -r "$keys" -c 50 -P 16 \
    EVALSHA "$SHA" 1 "$dkey" $DENY > /dev/null
  for mode in allow deny; do
    if [ "$mode" = allow ]; then k=$key args=$ALLOW; else k=$dkey args=$DENY; fi
    run "$mode, $keys key(s), 1 connection" "$k" "$keys" "$args" -c 1
    run "$mode, $keys key(s), 50 connections" "$k" "$keys" "$args" -c 50
    run "$mode, $keys key(s), 50 connections, pipeline 16" "$k" "$keys" "$args" -c 50 -P 16
  done
done

# Clean up: the keys would expire within two minutes anyway (and do, on a cluster).
[ "$CLUSTER" = --cluster ] || $CLI --scan --pattern 'palisade-rb:*' | xargs -r -n 500 $CLI DEL > /dev/null
