#!/usr/bin/env bash
# Installs, from Debian's packages, what `npm ci && npm test` needs on a fresh Debian 12 machine with Node 20+: the
# build dependencies (install-build-deps.sh) and the tools the tests use (util-linux's prlimit and mount for the
# store-failure tests, present on every Debian). Real Redis, PostgreSQL, NATS, Kafka, nginx and Chromium join this list
# with the tests that use them (the scale-out and web-client work); the single-instance suite needs none of them.
set -euo pipefail
bash "$(dirname "$0")/install-build-deps.sh"
packages=(util-linux)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  as_root=(); [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  "${as_root[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q "${missing[@]}"
fi
echo "test dependencies present: build-essential python3 ${packages[*]}"
