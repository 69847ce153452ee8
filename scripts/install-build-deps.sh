#!/usr/bin/env bash
# Installs, from Debian's packages, what `npm ci` needs on a fresh Debian 12 machine with Node 20+: a C/C++ toolchain
# and Python, because npm ci compiles better-sqlite3 12 from source (Node 20 runs on it). Nothing else: the server
# itself needs no other service. Extra package names given as arguments are installed too (install-test-deps.sh).
set -euo pipefail
packages=(build-essential python3 "$@")
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  as_root=(); [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  "${as_root[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q "${missing[@]}"
fi
echo "present: ${packages[*]}"
