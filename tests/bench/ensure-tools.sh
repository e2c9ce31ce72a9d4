#!/usr/bin/env bash
# What `make bench` needs besides the venv: Postgres, Redis and nginx (through the test
# harness's ensure-servers.sh) and the wrk load generator, each installed only when missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/../harness/ensure-servers.sh" postgresql redis-server nginx
command -v wrk >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "make bench needs wrk (Debian package \`wrk\`); install it and run again" >&2
    exit 1
fi
echo "installing the load generator: wrk" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends wrk >/dev/null
