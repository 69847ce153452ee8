/**
 * `npm run bench`: the fan-out workload (bench/README.md) against the baselines, one after another, each server in
 * its own child process and the subscribers in another. Prints two tables, no assertions:
 * 1. saturated: the sender keeps BENCH_INFLIGHT messages outstanding → deliveries/s (latency is queueing-dominated);
 * 2. fixed rate: BENCH_RATE deliveries/s offered (default 50,000, 4 s per run) → latency below saturation.
 *
 * Bounded: every run has its own time budget inside runFanoutBench; a run that would not fit in what is left of
 * TOTAL_BUDGET_MS is skipped; a watchdog exits at HARD_LIMIT_MS whatever happens, and the exit hook in
 * fanout-client kills every child process.
 *
 * Environment: BENCH_CLIENTS (1000), BENCH_SECONDS (8), BENCH_INFLIGHT (50), BENCH_RATE (50000; 0 skips table 2),
 * BENCH_CLIENT_PROCS (1), BENCH_WS_CLIENT (raw | ws; raw),
 * BENCH_TARGETS (comma-separated, default ws-coalesced,ws-naive,socketio).
 */
import { loadavg } from 'node:os';
import { runFanoutBench, type BuiltinTarget, type FanoutResult } from './fanout-client.js';
import { formatInt, formatMs, formatTable } from './stats.js';

const TOTAL_BUDGET_MS = 110_000;
const HARD_LIMIT_MS = 118_000;
/** Worst case set-up and tear-down of one run beyond its measured seconds (server start, 1,000 connects, stop). */
const RUN_OVERHEAD_MS = 12_000;

const envNumber = (name: string, fallback: number): number => {
  const value = Number(process.env[name]);
  return process.env[name] !== undefined && Number.isFinite(value) && value >= 0 ? value : fallback;
};

const clients = envNumber('BENCH_CLIENTS', 1_000);
const seconds = envNumber('BENCH_SECONDS', 8);
const inflight = envNumber('BENCH_INFLIGHT', 50);
const rate = envNumber('BENCH_RATE', 50_000);
const rateSeconds = 4;
const clientProcesses = envNumber('BENCH_CLIENT_PROCS', 1);
const wsClient = process.env.BENCH_WS_CLIENT === 'ws' ? 'ws' : 'raw';
const targets = (process.env.BENCH_TARGETS ?? 'ws-coalesced,ws-naive,socketio')
  .split(',')
  .map((t) => t.trim())
  .filter(Boolean) as BuiltinTarget[];

const started = performance.now();
const watchdog = setTimeout(() => {
  console.error(`bench: still running after ${HARD_LIMIT_MS / 1000} s, giving up`);
  process.exit(1);
}, HARD_LIMIT_MS);
watchdog.unref();

type Row = (FanoutResult & { load: number }) | { target: string; error: string };

async function runAll(mode: 'saturated' | 'rate'): Promise<Row[]> {
  const rows: Row[] = [];
  const runSeconds = mode === 'rate' ? rateSeconds : seconds;
  for (const target of targets) {
    const left = TOTAL_BUDGET_MS - (performance.now() - started);
    if (left < (runSeconds + 1) * 1_000 + RUN_OVERHEAD_MS) {
      rows.push({ target, error: 'skipped (time budget)' });
      continue;
    }
    try {
      // The machine may be shared: the 1-minute load average before each run says how much else was running.
      const load = loadavg()[0]!;
      const result = await runFanoutBench({
        target,
        clients,
        seconds: runSeconds,
        inflight,
        rate: mode === 'rate' ? rate : undefined,
        clientProcesses,
        wsClient,
        log: (l) => console.log(`  ${l}`),
      });
      rows.push({ ...result, load });
    } catch (error) {
      console.error(`  ${target}: ${(error as Error).message}`);
      rows.push({ target, error: (error as Error).message });
    }
  }
  return rows;
}

const cpuCell = (r: FanoutResult) =>
  `${r.cpu.server === null ? '-' : r.cpu.server.toFixed(2)} / ${r.cpu.clients.toFixed(2)} / ${r.cpu.coordinator.toFixed(2)}`;

console.log(
  `fan-out: 1 room x ${formatInt(clients)} subscribers, ~100-byte JSON text, loopback; ${clientProcesses} client ` +
    `process(es); ws-* subscribers on the ${wsClient} client\n`,
);

console.log(`saturated: ${inflight} messages in flight, ${seconds} s per run (+1 s warm-up)`);
const saturated = await runAll('saturated');
console.log(
  '\n' +
    formatTable(
      ['server', 'deliveries/s', 'messages/s', 'p50 ms', 'p99 ms', 'max ms', 'timed out', 'server KB/conn', 'CPU server/clients/sender', 'load'],
      saturated.map((r) =>
        'error' in r
          ? [r.target, r.error, '', '', '', '', '', '', '', '']
          : [
              r.target,
              formatInt(r.deliveriesPerSec),
              formatInt(r.messagesPerSec),
              formatMs(r.p50Ms),
              formatMs(r.p99Ms),
              formatMs(r.maxMs),
              String(r.timedOut),
              r.serverRssPerConnKB === null ? '-' : r.serverRssPerConnKB.toFixed(1),
              cpuCell(r),
              r.load.toFixed(1),
            ],
      ),
    ) +
    '\n',
);

if (rate > 0) {
  console.log(`fixed rate: ${formatInt(rate)} deliveries/s offered (at most ${inflight} in flight), ${rateSeconds} s per run`);
  const fixed = await runAll('rate');
  console.log(
    '\n' +
      formatTable(
        ['server', 'deliveries/s', 'p50 ms', 'p99 ms', 'max ms', 'timed out', 'CPU server/clients/sender', 'load'],
        fixed.map((r) =>
          'error' in r
            ? [r.target, r.error, '', '', '', '', '', '']
            : [
                r.target,
                formatInt(r.deliveriesPerSec),
                formatMs(r.p50Ms, 2),
                formatMs(r.p99Ms, 2),
                formatMs(r.maxMs, 2),
                String(r.timedOut),
                cpuCell(r),
                r.load.toFixed(1),
              ],
        ),
      ),
  );
}
console.log(`\ntotal ${((performance.now() - started) / 1000).toFixed(1)} s`);
clearTimeout(watchdog);
process.exit(0);
