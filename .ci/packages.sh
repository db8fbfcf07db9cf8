#!/usr/bin/env bash
# What a fresh machine lacks for the tests: Debian packages for the server binaries and clients
# the tests start or call (redis-server for the private and cluster servers, redis-cli, psql,
# openssl). Installs only what is missing, so a warm machine spends no time here.
set -euo pipefail

missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need redis-server redis-server
need redis-cli redis-tools
need redis-benchmark redis-tools
need psql postgresql-client
need openssl openssl
need python3 python3
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -m pip --version >/dev/null 2>&1 || {
  apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
}
