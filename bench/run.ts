/**
 * `npm run bench`: the fan-out workload (bench/README.md) against the baselines, one after another, each server in
 * its own child process and the subscribers in another. Prints a table; no assertions. Bounded: every run has its
 * own time budget, and the whole bench stops after MAX_TOTAL_MS whatever happens (children are killed on exit).
 *
 * Environment: BENCH_CLIENTS (1000), BENCH_SECONDS (8), BENCH_INFLIGHT (50), BENCH_CLIENT_PROCS (1),
 * BENCH_TARGETS (comma-separated, default ws-coalesced,ws-naive,socketio), BENCH_WS_CLIENT (raw | ws; raw).
 */
import { loadavg } from 'node:os';
import { runFanoutBench, type BuiltinTarget, type FanoutResult } from './fanout-client.js';
import { formatInt, formatMs, formatTable } from './stats.js';

const MAX_TOTAL_MS = 115_000;

const envInt = (name: string, fallback: number): number => {
  const value = Number(process.env[name]);
  return Number.isFinite(value) && value > 0 ? value : fallback;
};

const clients = envInt('BENCH_CLIENTS', 1_000);
const seconds = envInt('BENCH_SECONDS', 8);
const inflight = envInt('BENCH_INFLIGHT', 50);
const clientProcesses = envInt('BENCH_CLIENT_PROCS', 1);
const wsClient = process.env.BENCH_WS_CLIENT === 'ws' ? 'ws' : 'raw';
const targets = (process.env.BENCH_TARGETS ?? 'ws-coalesced,ws-naive,socketio')
  .split(',')
  .map((t) => t.trim())
  .filter(Boolean) as BuiltinTarget[];

const watchdog = setTimeout(() => {
  console.error(`bench: exceeded ${MAX_TOTAL_MS / 1000} s, giving up`);
  process.exit(1); // the 'exit' hook in fanout-client kills every child
}, MAX_TOTAL_MS);
watchdog.unref();

console.log(
  `fan-out: 1 room x ${formatInt(clients)} subscribers, ~100-byte JSON, ${inflight} in flight, ${seconds} s per run ` +
    `(+1 s warm-up), loopback, ${clientProcesses} client process(es), ws-* subscribers on the ${wsClient} client\n`,
);

// The machine may be shared: the 1-minute load average before each run says how much else was running.
const results: Array<(FanoutResult & { load: number }) | { target: string; error: string }> = [];
for (const target of targets) {
  try {
    const load = loadavg()[0]!;
    const result = await runFanoutBench({
      target,
      clients,
      seconds,
      inflight,
      clientProcesses,
      wsClient,
      log: (l) => console.log(`  ${l}`),
    });
    results.push({ ...result, load });
  } catch (error) {
    console.error(`  ${target}: ${(error as Error).message}`);
    results.push({ target, error: (error as Error).message });
  }
}

const rows = results.map((r) =>
  'error' in r
    ? [r.target, 'failed', '', '', '', '', '', '', '', '']
    : [
        r.target,
        formatInt(r.deliveriesPerSec),
        formatInt(r.messagesPerSec),
        formatMs(r.p50Ms),
        formatMs(r.p99Ms),
        formatMs(r.maxMs),
        String(r.timedOut),
        r.serverRssPerConnKB === null ? '-' : r.serverRssPerConnKB.toFixed(1),
        `${r.cpu.server === null ? '-' : r.cpu.server.toFixed(2)} / ${r.cpu.clients.toFixed(2)} / ${r.cpu.coordinator.toFixed(2)}`,
        r.load.toFixed(1),
      ],
);
console.log(
  '\n' +
    formatTable(
      ['server', 'deliveries/s', 'messages/s', 'p50 ms', 'p99 ms', 'max ms', 'timed out', 'server KB/conn', 'CPU server/clients/sender', 'load'],
      rows,
    ),
);
clearTimeout(watchdog);
process.exit(0);
