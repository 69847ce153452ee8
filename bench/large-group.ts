/**
 * Presence and membership in one large group (`npm run bench:presence`; issue 9): MEMBERS members of one group
 * (10,000 with its owner by default) connect, and the bench prints what each connection received of `presence` and
 * `member.*` frames and bytes while they did, and the server's RSS growth per idle connection that is a member of the
 * group. Members join over REST first (before connecting), then connect from client processes (`--lg-worker`):
 * WARMUP of them first (kept open; RSS is measured after them), then the rest; then LIVE_JOINS more users join while
 * they are connected (membership frames and bytes each connected member receives for them).
 *
 * Environment: BENCH_LG_MEMBERS (group size, owner included; default 10000), BENCH_LG_CONNECT (members that connect,
 * default all), BENCH_LG_WARMUP (default 200), BENCH_LG_PROCESSES (client processes, default 2), BENCH_LG_LIVE_JOINS
 * (default 100). PARLEY_* variables reach the server (see startParley), to compare configurations. Figures only,
 * nothing asserted.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { OWN_SECRET, signToken } from '../test/helpers/server.js';
import { nextMessage } from './fanout-client.js';
import { connectParley, pool, procStats, rest, settledRss, startParley, stopServer } from './parley.js';

const thisModule = import.meta.url;
const memberId = (i: number): string => `lg-member-${i}`;

/** What the connections of one client process received after their `welcome`. */
interface Received {
  connections: number;
  presenceFrames: number;
  presenceBytes: number;
  membershipFrames: number;
  membershipBytes: number;
  /** The most presence + membership bytes one connection received. */
  maxBytes: number;
}

const PRESENCE = Buffer.from('{"event":"presence"');
const MEMBERSHIP = Buffer.from('{"event":"member.');
const startsWith = (frame: Buffer, prefix: Buffer): boolean => frame.length >= prefix.length && frame.subarray(0, prefix.length).equals(prefix);

async function worker(): Promise<void> {
  const send = (msg: unknown) => process.connected && process.send!(msg);
  process.on('disconnect', () => process.exit(0));
  const init = await new Promise<{ wsUrl: string; from: number; to: number }>((r) => process.once('message', r as any));
  const conns: Array<{ close(): void }> = [];
  const total: Received = { connections: 0, presenceFrames: 0, presenceBytes: 0, membershipFrames: 0, membershipBytes: 0, maxBytes: 0 };
  const perConnection: number[] = [];
  process.on('message', (msg: { type: string }) => {
    if (msg.type === 'report') send({ type: 'report', received: { ...total, connections: conns.length, maxBytes: Math.max(0, ...perConnection) } });
    if (msg.type === 'stop') {
      for (const c of conns) c.close();
      process.exit(0);
    }
  });
  try {
    await pool(init.to - init.from, 64, async (k) => {
      const slot = k;
      perConnection[slot] = 0;
      const token = await signToken(OWN_SECRET, 'parley', memberId(init.from + k));
      conns.push(await connectParley(init.wsUrl, token, (frame) => {
        const buf = typeof frame === 'string' ? Buffer.from(frame) : frame;
        if (startsWith(buf, PRESENCE)) {
          total.presenceFrames++;
          total.presenceBytes += buf.length;
        } else if (startsWith(buf, MEMBERSHIP)) {
          total.membershipFrames++;
          total.membershipBytes += buf.length;
        } else {
          return;
        }
        perConnection[slot]! += buf.length;
      }));
    });
  } catch (error) {
    send({ type: 'error', message: `large-group connect: ${String(error)}` });
    return;
  }
  send({ type: 'ready', connected: conns.length });
}

function forkWorker(): ChildProcess {
  return fork(fileURLToPath(thisModule), ['--lg-worker'], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json' });
}

async function report(workers: ChildProcess[]): Promise<Received> {
  const parts = await Promise.all(workers.map(async (w) => {
    const reply = nextMessage(w, 'report', 30_000);
    w.send({ type: 'report' });
    return ((await reply) as unknown as { received: Received }).received;
  }));
  return parts.reduce((a, b) => ({
    connections: a.connections + b.connections,
    presenceFrames: a.presenceFrames + b.presenceFrames,
    presenceBytes: a.presenceBytes + b.presenceBytes,
    membershipFrames: a.membershipFrames + b.membershipFrames,
    membershipBytes: a.membershipBytes + b.membershipBytes,
    maxBytes: Math.max(a.maxBytes, b.maxBytes),
  }));
}

/** Totals once they stopped growing (two reports 1 s apart agree), or after `timeoutMs`. */
async function quietReport(workers: ChildProcess[], timeoutMs: number): Promise<Received> {
  const deadline = Date.now() + timeoutMs;
  let last = await report(workers);
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1000));
    const next = await report(workers);
    if (next.presenceBytes === last.presenceBytes && next.membershipBytes === last.membershipBytes) return next;
    last = next;
  }
  return last;
}

const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

export async function runLargeGroupBench(log: (line: string) => void = console.log): Promise<void> {
  const members = Number(process.env.BENCH_LG_MEMBERS ?? 10_000);
  const joiners = members - 1; // the owner is a member
  const connecting = Math.min(joiners, Number(process.env.BENCH_LG_CONNECT ?? joiners));
  const warmup = Math.min(connecting - 1, Number(process.env.BENCH_LG_WARMUP ?? 200));
  const processes = Number(process.env.BENCH_LG_PROCESSES ?? 2);
  const liveJoins = Number(process.env.BENCH_LG_LIVE_JOINS ?? 100);
  // The group is built by one server process and measured by a fresh one on the same data: RSS then grows from what
  // serving idle members costs, not from heap left over by 10,000 joins.
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-bench-lg-'));
  const env = { PARLEY_LIMITS_MAX_MEMBERS_PER_GROUP: String(Math.max(members + liveJoins, 10_000)) };
  let server = await startParley(env, { dataDir });
  const workers: ChildProcess[] = [];
  try {
    const ownerToken = await signToken(OWN_SECRET, 'parley', 'lg-owner');
    const { conversation } = await rest(server, ownerToken, 'POST', '/api/v1/conversations', { name: 'large group', visibility: 'public' });
    const t0 = performance.now();
    await pool(joiners, 32, async (i) => {
      const token = await signToken(OWN_SECRET, 'parley', memberId(i));
      await rest(server, token, 'POST', `/api/v1/conversations/${conversation.id}/join`);
    });
    log(`large group: ${fmt(members)} members (joined over REST in ${fmt(performance.now() - t0)} ms); ${fmt(connecting)} connect (${fmt(warmup)} warm-up first) to a fresh server process`);
    await stopServer(server);
    server = await startParley(env, { dataDir });
    const pid = server.process.pid!;

    const warm = forkWorker();
    workers.push(warm);
    warm.send({ wsUrl: server.wsUrl, from: 0, to: warmup });
    await nextMessage(warm, 'ready', 120_000);
    await quietReport(workers, 60_000);
    const before = await settledRss(pid);
    const t1 = performance.now();
    const batch: ChildProcess[] = [];
    const measured = connecting - warmup;
    for (let w = 0; w < processes; w++) {
      const child = forkWorker();
      workers.push(child);
      batch.push(child);
      child.send({ wsUrl: server.wsUrl, from: warmup + Math.floor((w * measured) / processes), to: warmup + Math.floor(((w + 1) * measured) / processes) });
    }
    await Promise.all(batch.map((w) => nextMessage(w, 'ready', 600_000)));
    const connectMs = performance.now() - t1;
    const received = await quietReport(workers, 300_000);
    const quietMs = performance.now() - t1 - connectMs;
    // BENCH_MEM_IDLE_MS: as in the memory bench, sample after the connections have been idle that long.
    const idleMs = Number(process.env.BENCH_MEM_IDLE_MS ?? 0);
    if (idleMs > 0) await new Promise((r) => setTimeout(r, idleMs));
    const after = await settledRss(pid, 8);
    const n = received.connections;
    // Then more users join while every member is connected: what each connected member receives of it.
    const t2 = performance.now();
    await pool(liveJoins, 16, async (i) => {
      const token = await signToken(OWN_SECRET, 'parley', `lg-late-${i}`);
      await rest(server, token, 'POST', `/api/v1/conversations/${conversation.id}/join`);
    });
    const joinsMs = performance.now() - t2;
    const joined = await quietReport(workers, 300_000);
    log(`  connected in ${fmt(connectMs)} ms; presence and membership frames stopped ${fmt(quietMs)} ms later; server CPU ${fmt(procStats(pid).cpuUs / 1e6, 1)} s in all`);
    log('');
    log('received per connection (all connections, during the connects)   frames      bytes');
    log('----------------------------------------------------------------  ------  ---------');
    log(`presence                                                         ${fmt(received.presenceFrames / n, 2).padStart(6)}  ${fmt(received.presenceBytes / n).padStart(9)}`);
    log(`membership (member.*)                                            ${fmt(received.membershipFrames / n, 2).padStart(6)}  ${fmt(received.membershipBytes / n).padStart(9)}`);
    log(`most presence + membership bytes to one connection                        ${fmt(received.maxBytes).padStart(9)}`);
    log(`all connections: ${fmt(received.presenceFrames)} presence frames (${fmt(received.presenceBytes / 1e6, 1)} MB), ${fmt(received.membershipFrames)} membership frames (${fmt(received.membershipBytes / 1e6, 1)} MB)`);
    log(`${fmt(liveJoins)} more users joined (over REST, ${fmt(joinsMs)} ms) while they were connected: per connection ${fmt((joined.membershipFrames - received.membershipFrames) / n, 2)} membership frames, ${fmt((joined.membershipBytes - received.membershipBytes) / n)} bytes (and ${fmt((joined.presenceBytes - received.presenceBytes) / n)} presence bytes)`);
    log(`memory: RSS ${fmt(before.rss / 2 ** 20, 1)} MB after ${fmt(warmup)} warm-up connections -> ${fmt(after.rss / 2 ** 20, 1)} MB after ${fmt(measured)} more (samples ${after.samples.map((s) => fmt(s / 2 ** 20, 1)).join(', ')}): ${fmt((after.rss - before.rss) / 1024 / measured, 2)} KB per idle connection that is a member of the ${fmt(members)}-member group (target <= 6 KB)`);
  } finally {
    await Promise.all(workers.map(async (w) => {
      if (w.exitCode !== null) return;
      const exited = new Promise<void>((r) => w.once('exit', () => r()));
      try { w.send({ type: 'stop' }); } catch { w.kill('SIGKILL'); }
      const timer = setTimeout(() => w.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }));
    await stopServer(server);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain && process.argv.includes('--lg-worker')) {
  worker().catch((error) => {
    console.error(error);
    process.exit(1);
  });
} else if (isMain) {
  runLargeGroupBench().then(() => process.exit(0), (error) => {
    console.error(error);
    process.exit(1);
  });
}
