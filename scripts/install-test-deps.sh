#!/usr/bin/env bash
# Installs, from Debian's packages, what `npm ci && npm test` needs on a fresh Debian 12 machine with Node 20+: the
# build dependencies (install-build-deps.sh), util-linux, whose prlimit and mount the store-failure tests use (and
# whose runuser starts PostgreSQL as the postgres user when the tests run as root), Chromium, which the web client's
# browser tests (test/browser) drive through playwright-core (a browser download of playwright's own is not used),
# nginx, which test/e2e/nginx-proxy.test.ts runs with deploy/nginx.conf (the tests start their own nginx on a random
# port; the package's default site is never used), PostgreSQL (server and pg_trgm), which the PostgreSQL store's
# tests start on their own (initdb into a temporary folder, a random loopback port: test/helpers/services/postgres.ts;
# the machine's default cluster is never used), and redis-server, which the Redis engine tests
# (test/engines/redis-*.test.ts, test/e2e/redis-engines.test.ts) start on their own (a random loopback port, data in a
# temporary folder, no persistence: test/helpers/services/redis.ts; the machine's own redis service, if the package
# started one, is never used). NATS and Kafka join this list with the tests that use them.
set -euo pipefail
exec bash "$(dirname "$0")/install-build-deps.sh" util-linux chromium nginx postgresql redis-server
