#!/usr/bin/env bash
# Installs Causeway's dependencies and builds it. Run as root on Debian (or with sudo available).
#   ./install.sh          runtime only: Node.js 24 (from the npm registry, into node_modules), build
#   ./install.sh --test   also the services the tests and benchmarks use (Debian packages)
set -euo pipefail
cd "$(dirname "$0")"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# npm brings Node.js 24 (the `node` package pinned in package.json); the host's node only runs npm.
if ! command -v npm >/dev/null 2>&1; then apt_install nodejs npm ca-certificates; fi

if [ "${1:-}" = "--test" ]; then
  # Test and benchmark peers: nginx (upstream and reference proxy), wrk (load), etcd and redis, the
  # TLS and HTTP/2 tools (openssl makes the test certificates; curl and nghttp2's clients and h2load),
  # and prometheus for promtool, which checks the metrics exposition (its server is never started).
  apt_install nginx-light wrk etcd-server redis-server procps util-linux openssl curl nghttp2-client prometheus
fi

if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
npm run build
