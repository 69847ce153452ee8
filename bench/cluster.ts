/**
 * `npm run bench:cluster`: Parley on one machine three ways, the same workloads in one run, side by side:
 * - `sqlite-1`: one instance on its embedded SQLite store (memory bus), as `npm run bench` runs it;
 * - `postgres-1`: one instance on PostgreSQL (memory bus);
 * - `cluster-3`: three instances on one PostgreSQL and one Redis (bus, presence and rate limits on Redis).
 * PostgreSQL (fsync and synchronous_commit on) and Redis are real processes started here (the test helpers: loopback,
 * random ports, temporary folders), each deployment on a fresh database and its own Redis key prefix.
 *
 * Workloads (bench/README.md): fan-out to BENCH_CLIENTS (1,000) members of one group, spread over the instances
 * (member i on instance i % n, the sender on the first), saturated and at a fixed BENCH_RATE (50,000 deliveries/s);
 * BENCH_DM_PAIRS (1,000) DM pairs whose two users are on different instances (maximum acknowledged stored messages/s,
 * then latency at a fixed offered rate). For the cluster, each instance's bus traffic is printed (payloads and bytes
 * it received: interest routing makes it follow its own members). No assertions: figures, and the targets.
 *
 * Environment: BENCH_CLIENTS, BENCH_SECONDS (8), BENCH_INFLIGHT (50), BENCH_RATE (50000), BENCH_DM_PAIRS (1000; 0
 * skips), BENCH_DM_INFLIGHT (4), BENCH_CLUSTER_DEPLOYMENTS (comma-separated, default sqlite-1,postgres-1,cluster-3).
 * PARLEY_* variables reach every instance (bench/parley.ts). Bounded: a watchdog exits after 15 minutes.
 */
import { loadavg } from 'node:os';
import type { TestServer } from '../test/helpers/server.js';
import { startPostgres, type PostgresService } from '../test/helpers/services/postgres.js';
import { startRedis, type RedisService } from '../test/helpers/services/redis.js';
import { runFanoutBench, type FanoutResult } from './fanout-client.js';
import { parleyFanoutTarget, runDmBench, singleSqlite, startParley, stopServer, type Deployment, type DmResult } from './parley.js';
import { envNumber, formatInt, formatMs, formatTable } from './stats.js';

const HARD_LIMIT_MS = 15 * 60_000;
const clients = envNumber('BENCH_CLIENTS', 1_000);
const seconds = envNumber('BENCH_SECONDS', 8);
const inflight = envNumber('BENCH_INFLIGHT', 50);
const rate = envNumber('BENCH_RATE', 50_000);
const dmPairs = envNumber('BENCH_DM_PAIRS', 1_000);
const dmInflight = envNumber('BENCH_DM_INFLIGHT', 4);
const chosen = (process.env.BENCH_CLUSTER_DEPLOYMENTS ?? 'sqlite-1,postgres-1,cluster-3').split(',').map((d) => d.trim()).filter(Boolean);

const watchdog = setTimeout(() => {
  console.error(`bench:cluster: still running after ${HARD_LIMIT_MS / 60_000} minutes, giving up`);
  process.exit(1);
}, HARD_LIMIT_MS);
watchdog.unref();

let postgres: PostgresService | null = null;
let redis: RedisService | null = null;
let deployed = 0;

/** Start the engines a deployment needs, once for the whole run. */
async function engines(): Promise<{ postgres: PostgresService; redis: RedisService }> {
  postgres ??= await startPostgres();
  redis ??= await startRedis();
  return { postgres, redis };
}

/** Each deployment: a fresh database and its own Redis key prefix, so no run sees another's data or store binding. */
const deployments: Record<string, () => Promise<Deployment>> = {
  'sqlite-1': async () => ({ ...(await singleSqlite()), name: 'sqlite-1' }),
  'postgres-1': async () => {
    const url = await (await engines()).postgres.createDatabase();
    const server = await startParley({ PARLEY_STORE_KIND: 'postgres', PARLEY_STORE_POSTGRES_URL: url });
    return { name: 'postgres-1', servers: [server], stop: () => stopServer(server) };
  },
  'cluster-3': async () => {
    const { postgres: pg, redis: bus } = await engines();
    const env = {
      PARLEY_STORE_KIND: 'postgres',
      PARLEY_STORE_POSTGRES_URL: await pg.createDatabase(),
      PARLEY_BUS_KIND: 'redis',
      PARLEY_PRESENCE_KIND: 'redis',
      PARLEY_RATELIMIT_KIND: 'redis',
      PARLEY_REDIS_URL: bus.url,
      PARLEY_REDIS_KEY_PREFIX: `bench${++deployed}:`,
    };
    const servers: TestServer[] = [];
    try {
      for (let i = 0; i < 3; i++) servers.push(await startParley(env));
    } catch (error) {
      await Promise.all(servers.map(stopServer));
      throw error;
    }
    return { name: 'cluster-3', servers, stop: async () => void (await Promise.all(servers.map(stopServer))) };
  },
};

interface Figures {
  name: string;
  saturated: FanoutResult | string;
  fixed: FanoutResult | string;
  dm: DmResult | string;
}

const log = (line: string) => console.log(`  ${line}`);

async function fanout(deploy: () => Promise<Deployment>, name: string, fixedRate: number | undefined): Promise<FanoutResult | string> {
  try {
    return await runFanoutBench({
      target: parleyFanoutTarget(clients, deploy, name),
      clients,
      seconds: fixedRate === undefined ? seconds : 4,
      inflight,
      rate: fixedRate,
      clientProcesses: 1,
      wsClient: 'raw',
      log,
    });
  } catch (error) {
    console.error(`  ${name}: ${(error as Error).message}`);
    return (error as Error).message;
  }
}

async function measure(name: string): Promise<Figures> {
  const deploy = deployments[name];
  if (!deploy) throw new Error(`unknown deployment ${name} (known: ${Object.keys(deployments).join(', ')})`);
  console.log(`\n${name}: load ${loadavg()[0]!.toFixed(1)}`);
  const saturated = await fanout(deploy, name, undefined);
  const fixed = rate > 0 ? await fanout(deploy, name, rate) : 'skipped';
  let dm: DmResult | string = 'skipped';
  if (dmPairs > 0) {
    try {
      dm = await runDmBench({ pairs: dmPairs, inflightPerSender: dmInflight, clientProcesses: 1, maxSeconds: 6, rateSeconds: 6, deploy, log });
    } catch (error) {
      console.error(`  ${name} dm: ${(error as Error).message}`);
      dm = (error as Error).message;
    }
  }
  return { name, saturated, fixed, dm };
}

console.log(
  `bench:cluster: fan-out to ${formatInt(clients)} members of one group spread over the instances (${inflight} in flight, ` +
    `${seconds} s; then ${formatInt(rate)} deliveries/s for 4 s), ${formatInt(dmPairs)} DM pairs across instances; ` +
    `load average ${loadavg().map((l) => l.toFixed(2)).join(' / ')} at start`,
);
const results: Figures[] = [];
try {
  for (const name of chosen) results.push(await measure(name));
} finally {
  await (redis as RedisService | null)?.close();
  await (postgres as PostgresService | null)?.destroy();
}

const cell = <T>(value: T | string, show: (v: T) => string): string => (typeof value === 'string' ? value.slice(0, 30) : show(value));
console.log(
  '\n' +
    formatTable(
      ['deployment', 'fan-out deliveries/s', 'fan-out p99 ms', `fixed ${formatInt(rate)}/s p50 ms`, 'fixed p99 ms', 'DM max stored msg/s', 'DM offered msg/s', 'DM p50 ms', 'DM p99 ms'],
      results.map((r) => [
        r.name,
        cell(r.saturated, (f) => formatInt(f.deliveriesPerSec)),
        cell(r.saturated, (f) => formatMs(f.p99Ms)),
        cell(r.fixed, (f) => formatMs(f.p50Ms)),
        cell(r.fixed, (f) => formatMs(f.p99Ms)),
        cell(r.dm, (d) => formatInt(d.maxStoredPerSec)),
        cell(r.dm, (d) => formatInt(d.offeredPerSec)),
        cell(r.dm, (d) => formatMs(d.rateP50Ms)),
        cell(r.dm, (d) => formatMs(d.rateP99Ms)),
      ]),
    ),
);

const fixedP99 = (name: string): number | null => {
  const fixed = results.find((r) => r.name === name)?.fixed;
  return fixed === undefined || typeof fixed === 'string' ? null : fixed.p99Ms;
};
const cluster = fixedP99('cluster-3');
const single = fixedP99('sqlite-1') ?? fixedP99('postgres-1');
const clusterDm = results.find((r) => r.name === 'cluster-3')?.dm;
console.log(
  `\ntargets: cross-instance fixed-rate p99 within 10 ms of one instance: ` +
    (cluster === null || single === null ? '-' : `${formatMs(cluster)} vs ${formatMs(single)} ms (${cluster - single <= 10 ? 'met' : 'not met'})`) +
    `; >= 10,000 stored DM msg/s on PostgreSQL across the cluster: ` +
    (clusterDm === undefined || typeof clusterDm === 'string' ? '-' : `${formatInt(clusterDm.maxStoredPerSec)} (${clusterDm.maxStoredPerSec >= 10_000 ? 'met' : 'not met'})`) +
    `; bus traffic per instance: printed above after each cluster run. Load average at end ${loadavg().map((l) => l.toFixed(2)).join(' / ')}.`,
);
process.exit(0);
