/**
 * `npm run bench:restart`: how long clients are away when the server is SIGKILLed and restarted at once (a crash under
 * a supervisor such as systemd with Restart=always). Prints figures, asserts nothing.
 *
 * BENCH_RESTART_CLIENTS (200) authenticated connections, each its own user, reconnect the way the SDK does: after a
 * close, wait a full-jitter delay (packages/sdk/src/backoff.ts, 250 ms doubling to 10 s), try, and repeat until
 * `welcome`. Each round SIGKILLs the server and spawns it again on the same port and data folder, then measures from
 * the kill: when a TCP connect first succeeds (the port is open), when the server logs "parley listening" (ready),
 * and when each client has its `welcome` again (p50 / p99 / max). BENCH_RESTART_ROUNDS (3) rounds.
 *
 * Bounded: a client gives up after 30 s (counted as lost); a watchdog exits at 3 minutes.
 */
import { connect as tcpConnect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { Backoff } from '../packages/sdk/src/backoff.js';
import { sleep } from '../test/helpers/raw-client.js';
import { startServer, type TestServer } from '../test/helpers/server.js';
import { BENCH_LIMITS_ENV } from './parley.js';
import { envNumber, formatMs, formatTable } from './stats.js';

const clients = envNumber('BENCH_RESTART_CLIENTS', 200);
const rounds = envNumber('BENCH_RESTART_ROUNDS', 3);
const GIVE_UP_MS = 30_000;

const watchdog = setTimeout(() => {
  console.error('bench:restart still running after 3 minutes, giving up');
  process.exit(1);
}, 180_000);
watchdog.unref();

/** One connection attempt: resolves true on `welcome`, false on any failure (refused, closed, no welcome in 10 s). */
function attempt(url: string, token: string, onClose: () => void): Promise<boolean> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, ['parley.v1', `bearer.${token}`]);
    let welcomed = false;
    const timer = setTimeout(() => ws.terminate(), 10_000);
    ws.on('message', (data) => {
      if (!welcomed && String(data).includes('"event":"welcome"')) {
        welcomed = true;
        clearTimeout(timer);
        resolve(true);
      }
    });
    ws.on('error', () => {});
    ws.on('close', () => {
      clearTimeout(timer);
      if (welcomed) onClose();
      else resolve(false);
    });
  });
}

/** A client that stays connected, reconnecting like the SDK; `back` resolves with the time of each new welcome. */
class Reconnector {
  private lostAt = 0;
  private waiting: ((backAt: number | null) => void) | null = null;
  constructor(private readonly url: string, private readonly token: string) {}

  async start(): Promise<void> {
    if (!(await attempt(this.url, this.token, () => this.lost()))) throw new Error('initial connection failed');
  }

  /** Resolves with when the client was welcomed again after the next loss (null: gave up). */
  nextReturn(): Promise<number | null> {
    return new Promise((resolve) => (this.waiting = resolve));
  }

  private lost(): void {
    this.lostAt = performance.now();
    void this.reconnect();
  }

  private async reconnect(): Promise<void> {
    const backoff = new Backoff();
    while (performance.now() - this.lostAt < GIVE_UP_MS) {
      await sleep(backoff.next());
      if (await attempt(this.url, this.token, () => this.lost())) {
        this.waiting?.(performance.now());
        return;
      }
    }
    this.waiting?.(null);
  }
}

/** Poll TCP connects every 5 ms until one succeeds; resolves with its time. */
async function portOpen(port: number): Promise<number> {
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = tcpConnect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return performance.now();
    await sleep(5);
  }
}

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-bench-restart-'));
  let server: TestServer = await startServer(BENCH_LIMITS_ENV, { dataDir });
  const port = server.port;
  const rows: string[][] = [];
  try {
    const reconnectors = await Promise.all(Array.from({ length: clients }, async (_, i) => new Reconnector(server.wsUrl, await server.token(`restart-${i}`))));
    for (const r of reconnectors) await r.start();
    for (let round = 1; round <= rounds; round++) {
      const returns = reconnectors.map((r) => r.nextReturn());
      const killedAt = performance.now();
      await server.kill('SIGKILL');
      const opened = portOpen(port);
      const restarted = startServer(BENCH_LIMITS_ENV, { dataDir, port }).then((s) => ({ server: s, at: performance.now() }));
      const [openAt, ready, backs] = await Promise.all([opened, restarted, Promise.all(returns)]);
      server = ready.server;
      const times = backs.filter((b): b is number => b !== null).map((b) => b - killedAt).sort((a, b) => a - b);
      rows.push([
        String(round), formatMs(openAt - killedAt, 0), formatMs(ready.at - killedAt, 0),
        formatMs(quantile(times, 0.5), 0), formatMs(quantile(times, 0.99), 0), formatMs(times.at(-1) ?? NaN, 0), String(backs.length - times.length),
      ]);
      await sleep(1000);
    }
  } finally {
    await server.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  }
  console.log(`\n${clients} clients reconnecting with the SDK's backoff after a SIGKILL and immediate restart (ms after the kill)`);
  console.log(formatTable(['round', 'port open', 'ready', 'back p50', 'back p99', 'back max', 'lost'], rows));
}

await main();
process.exit(0);
