#!/usr/bin/env bash
# Installs, from Debian's packages, what `npm ci && npm test` needs on a fresh Debian 12 machine with Node 20+: the
# build dependencies (install-build-deps.sh), util-linux, whose prlimit and mount the store-failure tests use, and
# Chromium, which the web client's browser tests (test/browser) drive through playwright-core (a browser download of
# playwright's own is not used), and redis-server, which the Redis engine tests (test/engines/redis-*.test.ts) start
# themselves through test/helpers/services/redis.ts: random loopback port, data in a temporary folder, no persistence
# (the machine's own redis service, if the package started one, is never used). PostgreSQL and nginx
# join this list with the tests that use them (the scale-out work).
set -euo pipefail
exec bash "$(dirname "$0")/install-build-deps.sh" util-linux chromium redis-server
