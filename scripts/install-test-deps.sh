#!/usr/bin/env bash
# Installs, from Debian's packages, what `npm ci && npm test` needs on a fresh Debian 12 machine with Node 20+: the
# build dependencies (install-build-deps.sh) and util-linux, whose prlimit and mount the store-failure tests use.
# Real Redis, PostgreSQL, NATS, Kafka, nginx and Chromium join this list with the tests that use them (the scale-out
# and web-client work); the single-instance suite needs none of them.
set -euo pipefail
exec bash "$(dirname "$0")/install-build-deps.sh" util-linux
