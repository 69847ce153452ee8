/**
 * `npm run bench`: Parley and the baselines under the bench workloads (bench/README.md), one after another, each
 * server in its own child process and the clients in others. Prints, no assertions:
 * 1. fan-out saturated: the sender keeps BENCH_INFLIGHT messages outstanding → deliveries/s (Parley through its full
 *    path: authenticated, validated, stored, sequenced; the baselines bare), and Parley's ratio to each baseline;
 * 2. DM pairs (Parley): maximum acknowledged stored messages/s, then latency at a fixed offered rate;
 * 3. memory per idle authenticated Parley connection at BENCH_MEM_CONNECTIONS (10,000);
 * 4. fan-out at a fixed rate: BENCH_RATE deliveries/s offered (default 50,000, 4 s per run) → latency below saturation;
 * 4b. lean events and reconnect (lean.ts): bytes per delivered `message.new` and per send round trip, and the reconnect
 *    path (connect → welcome → sync → reply) with and without missed messages (BENCH_LEAN_RECONNECTS, 100; 0 skips);
 * 5. one summary table: each figure, its target, met or not.
 *
 * Bounded: every run has its own time budget inside runFanoutBench; a run that would not fit in what is left of
 * TOTAL_BUDGET_MS is skipped; a watchdog exits at HARD_LIMIT_MS whatever happens, and the exit hook in
 * fanout-client kills every child process.
 *
 * Environment: BENCH_CLIENTS (1000), BENCH_SECONDS (8), BENCH_INFLIGHT (50), BENCH_RATE (50000; 0 skips table 2),
 * BENCH_RATE_SECONDS (4), BENCH_CLIENT_PROCS (1), BENCH_WS_CLIENT (raw | ws; raw),
 * BENCH_TARGETS (comma-separated, default parley,ws-coalesced,socketio; ws-naive is available), BENCH_DM_PAIRS (1000),
 * BENCH_DM_INFLIGHT (requests each DM sender keeps outstanding at maximum rate, 4), BENCH_DM_PROCS (1),
 * BENCH_DM_RATE (msg/s offered in the DM latency phase; default half the maximum or 10,000, whichever is higher: set it
 * to compare builds at the same load),
 * BENCH_MEM_CONNECTIONS (10000; 0 skips), BENCH_MEM_PROCS (2).
 */
import { cpus, loadavg } from 'node:os';
import { runFanoutBench, type BuiltinTarget, type CustomTarget, type FanoutResult } from './fanout-client.js';
import { BENCH_LIMITS_ENV, parleyFanoutTarget, runDmBench, runMemoryBench, type DmResult, type MemoryResult } from './parley.js';
import { envNumber, formatInt, formatMs, formatTable } from './stats.js';
import { formatLean, runLeanBench, type LeanResult } from './lean.js';

const TOTAL_BUDGET_MS = 280_000;
const HARD_LIMIT_MS = 295_000;
/** Worst case set-up and tear-down of one run beyond its measured seconds (server start, 1,000 connects, stop). */
const RUN_OVERHEAD_MS = 12_000;


const clients = envNumber('BENCH_CLIENTS', 1_000);
const seconds = envNumber('BENCH_SECONDS', 8);
const inflight = envNumber('BENCH_INFLIGHT', 50);
const rate = envNumber('BENCH_RATE', 50_000);
const rateSeconds = envNumber('BENCH_RATE_SECONDS', 4);
const clientProcesses = envNumber('BENCH_CLIENT_PROCS', 1);
const wsClient = process.env.BENCH_WS_CLIENT === 'ws' ? 'ws' : 'raw';
const targets = (process.env.BENCH_TARGETS ?? 'parley,ws-coalesced,socketio')
  .split(',')
  .map((t) => t.trim())
  .filter(Boolean) as Array<BuiltinTarget | 'parley'>;
const dmPairs = envNumber('BENCH_DM_PAIRS', 1_000);
const dmInflight = envNumber('BENCH_DM_INFLIGHT', 4);
const dmProcesses = envNumber('BENCH_DM_PROCS', 1);
const dmRate = envNumber('BENCH_DM_RATE', 0);
const memConnections = envNumber('BENCH_MEM_CONNECTIONS', 10_000);
const memProcesses = envNumber('BENCH_MEM_PROCS', 2);
const targetOf = (name: BuiltinTarget | 'parley'): BuiltinTarget | CustomTarget =>
  name === 'parley' ? parleyFanoutTarget(clients) : name;

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
        target: targetOf(target),
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

const loadAtStart = loadavg();
console.log(
  `machine: ${cpus().length} cores, load average ${loadAtStart.map((l) => l.toFixed(2)).join(' / ')} (1/5/15 min) at start; ` +
    `other engineers' processes may be running: figures are lower bounds, compare within this run\n`,
);
console.log(
  `fan-out: 1 room x ${formatInt(clients)} subscribers, ~100-byte JSON text, loopback; ${clientProcesses} client ` +
    `process(es); ws-* and parley subscribers on the ${wsClient} client (parley: raw TCP WebSocket client always)\n` +
    `parley: one public group, the sender is its owner, ${formatInt(clients)} members joined over REST, each an ` +
    `authenticated connection of its own user; every message.send is rate-checked, validated, stored (SQLite, ` +
    `synchronous=full, group commit), sequenced and fanned out.\n` +
    `parley rate limits raised for the bench (it measures the path, not the limiter): ` +
    Object.entries(BENCH_LIMITS_ENV)
      .filter(([k]) => k.includes('RATE') || k.includes('FLOOD'))
      .map(([k, v]) => `${k}=${v}`)
      .join(' ') +
    '\n',
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

const found = (name: string): (FanoutResult & { load: number }) | null => {
  const row = saturated.find((r) => r.target === name);
  return row && !('error' in row) ? row : null;
};
const parleyFan = found('parley');
const ioFan = found('socketio');
const wsFan = found('ws-coalesced');
const ratio = (a: FanoutResult | null, b: FanoutResult | null): number | null =>
  a && b && b.deliveriesPerSec > 0 ? a.deliveriesPerSec / b.deliveriesPerSec : null;
const vsSocketIo = ratio(parleyFan, ioFan);
const vsWs = ratio(parleyFan, wsFan);
if (parleyFan) {
  console.log(
    `parley / socketio: ${vsSocketIo === null ? '-' : vsSocketIo.toFixed(2) + 'x'} (target >= 5x); ` +
      `parley / ws-coalesced: ${vsWs === null ? '-' : vsWs.toFixed(2) + 'x'} (target >= 0.8x)\n`,
  );
}

const leftMs = () => TOTAL_BUDGET_MS - (performance.now() - started);
let dm: DmResult | { error: string } | null = null;
if (dmPairs > 0) {
  const dmLoad = loadavg()[0]!;
  console.log(
    `DM pairs: ${formatInt(dmPairs)} pairs (${formatInt(dmPairs * 2)} authenticated connections, one direct conversation ` +
      `each), ${dmProcesses} client process(es), ~100-byte text; load ${dmLoad.toFixed(1)}`,
  );
  if (leftMs() < 45_000) dm = { error: 'skipped (time budget)' };
  else {
    try {
      dm = await runDmBench({
        pairs: dmPairs,
        inflightPerSender: dmInflight,
        clientProcesses: dmProcesses,
        maxSeconds: 6,
        rateSeconds: 6,
        ...(dmRate > 0 ? { offeredRate: dmRate } : {}),
        log: (l) => console.log(`  ${l}`),
      });
    } catch (error) {
      console.error(`  dm: ${(error as Error).message}`);
      dm = { error: (error as Error).message };
    }
  }
  if (dm && !('error' in dm)) {
    console.log(
      '\n' +
        formatTable(
          ['phase', 'offered msg/s', 'stored msg/s (acked)', 'peer deliveries/s', 'p50 ms', 'p99 ms', 'CPU server/clients'],
          [
            [
              `maximum (${dm.inflightPerSender} in flight per sender)`,
              '-',
              formatInt(dm.maxStoredPerSec),
              '-',
              formatMs(dm.maxP50Ms),
              formatMs(dm.maxP99Ms),
              `${dm.maxCpu.server.toFixed(2)} / ${dm.maxCpu.clients.toFixed(2)}`,
            ],
            [
              'fixed rate',
              formatInt(dm.offeredPerSec),
              formatInt(dm.rateStoredPerSec),
              formatInt(dm.rateDeliveredPerSec),
              formatMs(dm.rateP50Ms, 2),
              formatMs(dm.rateP99Ms, 2),
              `${dm.rateCpu.server.toFixed(2)} / ${dm.rateCpu.clients.toFixed(2)}`,
            ],
          ],
        ) +
        '\n',
    );
  }
}

let lean: LeanResult | { error: string } | null = null;
const leanRounds = envNumber('BENCH_LEAN_RECONNECTS', 100);
if (leanRounds > 0) {
  console.log(`lean events and reconnect: one group, 100-byte texts, ${leanRounds} reconnect rounds; load ${loadavg()[0]!.toFixed(1)}`);
  if (leftMs() < 40_000) lean = { error: 'skipped (time budget)' };
  else {
    try {
      lean = await runLeanBench({ reconnects: leanRounds });
      console.log(formatLean(lean) + '\n');
    } catch (error) {
      console.error(`  lean: ${(error as Error).message}`);
      lean = { error: (error as Error).message };
    }
  }
}

let memory: MemoryResult | { error: string } | null = null;
if (memConnections > 0) {
  console.log(
    `memory: ${formatInt(memConnections)} idle authenticated connections (each its own user), ${memProcesses} client ` +
      `process(es); server RSS sampled every 0.5 s after connecting, minimum of the last 3 samples; load ${loadavg()[0]!.toFixed(1)}`,
  );
  if (leftMs() < 60_000) memory = { error: 'skipped (time budget)' };
  else {
    try {
      memory = await runMemoryBench({ connections: memConnections, clientProcesses: memProcesses, log: (l) => console.log(`  ${l}`) });
      console.log(
        `  RSS ${memory.rssBeforeMB.toFixed(1)} MB before (after ${memory.warmup} warm-up connections) -> ` +
          `${memory.rssMidMB.toFixed(1)} MB after the first fifth -> ` +
          `${memory.rssAfterMB.toFixed(1)} MB after (samples ${memory.samplesAfterMB.map((m) => m.toFixed(1)).join(', ')}): ` +
          `${memory.perConnKB.toFixed(2)} KB per connection from the warm-up, ${memory.marginalKB.toFixed(2)} KB per connection ` +
          `past the first fifth (the slope; of it ${memory.heapUsedKB.toFixed(2)} KB JS heap in use, ` +
          `${memory.externalKB.toFixed(2)} KB buffers outside the heap)\n`,
      );
    } catch (error) {
      console.error(`  memory: ${(error as Error).message}`);
      memory = { error: (error as Error).message };
    }
  }
}

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

// ---------------------------------------------------------------- summary
const met = (ok: boolean | null) => (ok === null ? 'n/a' : ok ? 'yes' : 'NO');
const dmOk = dm && !('error' in dm) ? dm : null;
const memOk = memory && !('error' in memory) ? memory : null;
const summary: string[][] = [
  ['fan-out deliveries/s (parley, 1,000 members, 50 in flight)', parleyFan ? formatInt(parleyFan.deliveriesPerSec) : '-', '-', ''],
  ['fan-out p50 / p99 ms (parley, saturated)', parleyFan ? `${formatMs(parleyFan.p50Ms)} / ${formatMs(parleyFan.p99Ms)}` : '-', '-', ''],
  ['fan-out deliveries/s (socketio / ws-coalesced)', `${ioFan ? formatInt(ioFan.deliveriesPerSec) : '-'} / ${wsFan ? formatInt(wsFan.deliveriesPerSec) : '-'}`, '-', ''],
  ['parley / socketio fan-out', vsSocketIo === null ? '-' : `${vsSocketIo.toFixed(2)}x`, '>= 5x', met(vsSocketIo === null ? null : vsSocketIo >= 5)],
  ['parley / ws-coalesced fan-out', vsWs === null ? '-' : `${vsWs.toFixed(2)}x`, '>= 0.8x', met(vsWs === null ? null : vsWs >= 0.8)],
  ['DM stored msg/s (max, acknowledged)', dmOk ? formatInt(dmOk.maxStoredPerSec) : dm && 'error' in dm ? dm.error : '-', '>= 20,000', met(dmOk ? dmOk.maxStoredPerSec >= 20_000 : null)],
  [
    `DM p50 / p99 ms at ${dmOk ? formatInt(dmOk.offeredPerSec) : '-'} msg/s offered`,
    dmOk ? `${formatMs(dmOk.rateP50Ms, 2)} / ${formatMs(dmOk.rateP99Ms, 2)}` : '-',
    'p99 < 20 ms',
    met(dmOk ? dmOk.rateP99Ms < 20 : null),
  ],
  [
    `memory per idle authenticated connection (${formatInt(memConnections)})`,
    memOk ? `${memOk.perConnKB.toFixed(2)} KB` : memory && 'error' in memory ? memory.error : '-',
    '<= 6 KB',
    met(memOk ? memOk.perConnKB <= 6 : null),
  ],
  ['memory per idle connection past the first fifth (slope)', memOk ? `${memOk.marginalKB.toFixed(2)} KB` : '-', '-', ''],
  ...leanRows(lean),
];
/** Summary rows of the lean bench (bytes per message, reconnect path). */
function leanRows(r: LeanResult | { error: string } | null): string[][] {
  if (r === null) return [];
  if ('error' in r) return [['lean events / reconnect', r.error, '-', '']];
  return [
    ['bytes per delivered message.new (100-byte text)', r.deliveredBytes.toFixed(0), '-', ''],
    ['bytes per send round trip at the sending connection', r.sendRoundTripBytes.toFixed(0), '-', ''],
    ['reconnect with missed messages p50 / p99 ms', `${r.reconnectP50Ms.toFixed(2)} / ${r.reconnectP99Ms.toFixed(2)}`, '-', ''],
    ['reconnect with nothing missed p50 / p99 ms', `${r.idleP50Ms.toFixed(2)} / ${r.idleP99Ms.toFixed(2)}`, '-', ''],
  ];
}

const loadAtEnd = loadavg();
console.log(
  `\nsummary (machine load average ${loadAtStart[0]!.toFixed(2)} at start, ${loadAtEnd.map((l) => l.toFixed(2)).join(' / ')} ` +
    `at end; figures only, nothing asserted)\n\n` +
    formatTable(['figure', 'measured', 'target', 'met'], summary),
);
console.log(`\ntotal ${((performance.now() - started) / 1000).toFixed(1)} s`);
clearTimeout(watchdog);
process.exit(0);
