#!/usr/bin/env bash
# Installs, from Debian's packages, what `npm ci && npm test` needs on a fresh Debian 12 machine with Node 20+: the
# build dependencies (install-build-deps.sh), util-linux, whose prlimit and mount the store-failure tests use,
# Chromium, which the web client's browser tests (test/browser) drive through playwright-core (a browser download of
# playwright's own is not used), nginx, which test/e2e/nginx-proxy.test.ts runs with deploy/nginx.conf (the tests
# start their own nginx on a random port; the package's default site is never used), and redis-server, which the
# Redis engine tests (test/engines/redis-*.test.ts, test/e2e/redis-engines.test.ts) start themselves through
# test/helpers/services/redis.ts: random loopback port, data in a temporary folder, no persistence (the machine's own
# redis service, if the package started one, is never used). PostgreSQL joins this list with the tests that use it.
set -euo pipefail
exec bash "$(dirname "$0")/install-build-deps.sh" util-linux chromium nginx redis-server
