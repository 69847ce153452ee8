/**
 * Parley under the bench workloads (bench/README.md): a real server process from dist/ (`node dist/cli.js serve`,
 * configured with PARLEY_* variables, own-issuer tokens signed here, users created on first connect).
 *
 * 1. `parleyFanoutTarget()`: a CustomTarget for runFanoutBench: one public group, the sender is its owner, the
 *    subscribers join it over REST before they connect; every message goes through Parley's full path (authenticated
 *    connection, rate limiters, JSON parse + schema validation, membership check, SQLite append with synchronous=full,
 *    seq allocation, serialise once, bus, frame once, coalesced writes).
 * 2. `runDmBench()`: DM pairs in client processes (this file with `--dm-worker`): the maximum acknowledged (stored)
 *    message rate, then a fixed offered rate for latency (send → receipt of `message.new` by the peer).
 * 3. `runMemoryBench()`: server RSS growth per idle authenticated connection (client processes: `--mem-worker`).
 *
 * Rate limits are raised on the server for every run (PARLEY_LIMITS_*): the bench measures the path, not the limiter.
 * Client connections use `connectRawWs` (raw TCP, no per-frame library cost); requests are sent in masked frames.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { OWN_SECRET, signToken, startServer, type TestServer } from '../test/helpers/server.js';
import { connectRawWs, findToken, makeBody, nextMessage, type CustomTarget, type FanoutAdapter, type Frame } from './fanout-client.js';
import { LatencyHistogram, monoUs, type HistogramJSON } from './stats.js';

const thisModule = import.meta.url;

/** Generous limits: the bench measures the message path, not the limiters (which would refuse this load). */
export const BENCH_LIMITS_ENV: Record<string, string> = {
  PARLEY_LIMITS_CONNECTION_RATE_PER_SECOND: '1000000',
  PARLEY_LIMITS_CONNECTION_RATE_BURST: '1000000',
  PARLEY_LIMITS_USER_MESSAGE_RATE_PER_SECOND: '1000000',
  PARLEY_LIMITS_USER_MESSAGE_RATE_BURST: '1000000',
  PARLEY_LIMITS_FLOOD_CLOSE_AFTER: '1000000',
  PARLEY_LIMITS_MAX_CONVERSATIONS_PER_USER: '100000',
  PARLEY_LIMITS_REST_RATE_PER_SECOND: '1000000',
  PARLEY_LIMITS_REST_RATE_BURST: '1000000',
  PARLEY_LIMITS_MAX_CONNECTIONS: '1000000',
  PARLEY_LIMITS_MAX_CONNECTIONS_PER_USER: '1000000',
  PARLEY_LIMITS_USER_CONNECT_RATE_PER_SECOND: '1000000',
  PARLEY_LIMITS_USER_CONNECT_RATE_BURST: '1000000',
};

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** RSS (bytes) and CPU time (µs) of a process, from /proc. */
export function procStats(pid: number): { rss: number; cpuUs: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime
  return { rss: rssKb * 1024, cpuUs: (ticks / CLOCK_TICKS) * 1e6 };
}

/** BENCH_PARLEY_NODE_OPTIONS is handed to the server process as NODE_OPTIONS (profiling: see cpu-profile.mjs). */
export async function startParley(env: Record<string, string> = {}, options: { dataDir?: string } = {}): Promise<TestServer> {
  const nodeOptions = process.env.BENCH_PARLEY_NODE_OPTIONS;
  const profiling: Record<string, string> = nodeOptions ? { NODE_OPTIONS: nodeOptions, BENCH_CPU_PROF_DIR: process.env.BENCH_CPU_PROF_DIR ?? '' } : {};
  // PARLEY_* variables of the bench's own environment reach the server, to compare configurations.
  const passed = Object.fromEntries(Object.entries(process.env).filter(([k, v]) => k.startsWith('PARLEY_') && v !== undefined)) as Record<string, string>;
  return startServer({ ...BENCH_LIMITS_ENV, ...passed, ...profiling, ...env }, options);
}

/**
 * Where a bench runs Parley: one instance or several on shared engines. Clients are spread over `servers` by index
 * (bench/cluster.ts); REST set-up goes to the first. `stop` ends every process it started.
 */
export interface Deployment {
  name: string;
  servers: TestServer[];
  stop(): Promise<void>;
}

/** The default deployment: one instance on its embedded SQLite store (`startParley`). */
export async function singleSqlite(): Promise<Deployment> {
  const server = await startParley();
  return { name: 'parley', servers: [server], stop: () => stopServer(server) };
}

/** RSS and CPU time summed over a deployment's server processes. */
function deploymentStats(deployment: Deployment): { rss: number; cpuUs: number } {
  let rss = 0;
  let cpuUs = 0;
  for (const server of deployment.servers) {
    const stats = procStats(server.process.pid!);
    rss += stats.rss;
    cpuUs += stats.cpuUs;
  }
  return { rss, cpuUs };
}

export async function rest(server: TestServer, token: string, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

export async function pool<T>(count: number, concurrency: number, work: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await work(i);
      }
    }),
  );
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// A Parley client connection on the raw receive path

const WELCOME_PREFIX = Buffer.from('{"event":"welcome"');

export interface ParleyConn {
  send(text: string): void;
  close(): void;
  /** The TCP socket (`pause()` it to stop reading: a client that no longer reads). */
  readonly socket: Socket;
}

/** Connect with a bearer token and resolve once `welcome` arrived (from then on, events reach the connection). */
export async function connectParley(
  wsUrl: string,
  token: string,
  onFrame: (frame: Buffer) => void,
  onClose?: (code: number) => void,
): Promise<ParleyConn> {
  let welcomed: () => void = () => {};
  const welcome = new Promise<void>((r) => (welcomed = r));
  let ready = false;
  const conn = await connectRawWs(
    wsUrl,
    (frame: Buffer) => {
      if (!ready) {
        if (frame.length >= WELCOME_PREFIX.length && frame.subarray(0, WELCOME_PREFIX.length).equals(WELCOME_PREFIX)) {
          ready = true;
          welcomed();
        }
        return;
      }
      onFrame(frame);
    },
    { headers: { Authorization: `Bearer ${token}` }, timeoutMs: 30_000, onClose },
  );
  let timer: NodeJS.Timeout | undefined;
  const closed = new Promise<never>((_, reject) => {
    conn.socket.once('close', () => reject(new Error('connection closed before welcome')));
    timer = setTimeout(() => reject(new Error('no welcome within 30 s')), 30_000);
  });
  closed.catch(() => {});
  try {
    await Promise.race([welcome, closed]);
  } catch (error) {
    conn.close();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return conn;
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Fan-out through the full path

export interface ParleyAdapterOptions {
  /** The instances' WebSocket URLs: subscriber i connects to wsUrls[i % n], the sender to wsUrls[0]. */
  wsUrls: string[];
  conversationId: string;
  senderToken: string;
}

const subscriberId = (index: number) => `fan-sub-${index}`;

/** The adapter for runFanoutBench's client processes (imported by module URL and export name). */
export function createParleyAdapter(options: ParleyAdapterOptions): FanoutAdapter {
  return {
    async connectSubscriber(index, onFrame) {
      const token = await signToken(OWN_SECRET, 'parley', subscriberId(index));
      const conn = await connectParley(options.wsUrls[index % options.wsUrls.length]!, token, onFrame);
      return { close: () => conn.close() };
    },
    async connectSender() {
      const conn = await connectParley(options.wsUrls[0]!, options.senderToken, () => {});
      let id = 0;
      const prefix = `","text":`;
      return {
        send(body: string) {
          id++;
          conn.send(
            `{"id":${id},"type":"message.send","data":{"conversationId":"${options.conversationId}","key":"k${id}${prefix}${JSON.stringify(body)}}}`,
          );
        },
        close: () => conn.close(),
      };
    },
    extract: (frame: Frame) => findToken(frame),
  };
}

/**
 * Fan-out through the full path on `deploy` (default: one instance on SQLite): its subscribers spread over the
 * instances. `name` is the target's name in the tables.
 */
export function parleyFanoutTarget(clients: number, deploy: () => Promise<Deployment> = singleSqlite, name = 'parley'): CustomTarget {
  return {
    name,
    async start({ fail }) {
      const deployment = await deploy();
      const [server] = deployment.servers as [TestServer];
      let stopped = false;
      for (const instance of deployment.servers) {
        instance.process.once('exit', (code, signal) => {
          if (!stopped) fail(new Error(`parley exited (${code ?? signal})`));
        });
      }
      try {
        const ownerToken = await signToken(OWN_SECRET, 'parley', 'fan-owner');
        const { conversation } = await rest(server, ownerToken, 'POST', '/api/v1/conversations', { name: 'bench', visibility: 'public' });
        // Members join before they connect (over REST: each join then costs nobody a member.joined frame).
        await pool(clients, 16, async (i) => {
          const token = await signToken(OWN_SECRET, 'parley', subscriberId(i));
          await rest(server, token, 'POST', `/api/v1/conversations/${conversation.id}/join`);
        });
        return {
          adapter: {
            module: thisModule,
            exportName: 'createParleyAdapter',
            options: { wsUrls: deployment.servers.map((s) => s.wsUrl), conversationId: conversation.id, senderToken: ownerToken } satisfies ParleyAdapterOptions,
          },
          stop: async () => {
            stopped = true;
            for (const [i, instance] of deployment.servers.entries()) await logBackpressure(instance, deployment.servers.length > 1 ? `${name} instance ${i + 1}` : name);
            if (deployment.servers.length > 1) await logBusTraffic(deployment);
            await deployment.stop();
          },
          stats: async () => deploymentStats(deployment),
        };
      } catch (error) {
        stopped = true;
        await deployment.stop();
        throw error;
      }
    },
  };
}

/** A figure of an instance's /metrics (0 when absent or unreachable). */
async function metricOf(server: TestServer, series: string): Promise<number> {
  try {
    const text = await (await fetch(`${server.url}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
    return Number(new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\S+)`, 'm').exec(text)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Per instance: its open connections and what it received from the bus (interest routing: its own users' topics). */
export async function logBusTraffic(deployment: Deployment, log: (line: string) => void = (l) => console.log(`  ${l}`)): Promise<void> {
  for (const [i, server] of deployment.servers.entries()) {
    const [connections, payloads, bytes] = await Promise.all([
      metricOf(server, 'parley_connections_total'),
      metricOf(server, 'parley_bus_received_total'),
      metricOf(server, 'parley_bus_received_bytes_total'),
    ]);
    log(`${deployment.name} instance ${i + 1}: ${connections} connections accepted; received from the bus ${payloads} payloads, ${(bytes / 1e6).toFixed(1)} MB`);
  }
}

/** Say whether the run was slowed by the server's outgoing budget (limits.maxOutgoingTotalBytes) or closed readers. */
async function logBackpressure(server: TestServer, label: string): Promise<void> {
  const [pauses, closes] = await Promise.all([
    metricOf(server, 'parley_backpressure_pauses_total'),
    metricOf(server, 'parley_closes_total{reason="SLOW_CONSUMER"}'),
  ]);
  console.log(`  ${label}: ${pauses} backpressure pauses, ${closes} slow-consumer closes`);
}

export async function stopServer(server: TestServer): Promise<void> {
  const timer = setTimeout(() => server.process.kill('SIGKILL'), 8_000);
  await server.stop().catch(() => {});
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------------------------------
// Client processes (DM and memory workers)

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

function forkWorker(flag: string): ChildProcess {
  const child = fork(fileURLToPath(thisModule), [flag], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'json',
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}


async function stopWorker(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    child.send({ type: 'stop' });
  } catch {
    // gone
  }
  const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------------------------------
// 2. DM pairs

export interface DmOptions {
  pairs?: number;
  /** Requests each sender keeps outstanding in the maximum-rate phase. */
  inflightPerSender?: number;
  maxSeconds?: number;
  rateSeconds?: number;
  warmupSeconds?: number;
  clientProcesses?: number;
  /** Lower bound of the offered rate of the latency phase (the brief: half the maximum, or this if higher). */
  minOfferedRate?: number;
  /**
   * The offered rate of the latency phase, in msg/s, whatever the maximum was: two builds compared at the same load
   * (with the brief's rule, the one with the higher maximum is offered more).
   */
  offeredRate?: number;
  /**
   * Where Parley runs (default: one instance on SQLite). With several instances, pair i's receiver connects to
   * instance i % n and its sender to instance (i + 1) % n: every message crosses instances.
   */
  deploy?: () => Promise<Deployment>;
  log?: (line: string) => void;
}

export interface DmResult {
  pairs: number;
  clientProcesses: number;
  inflightPerSender: number;
  maxStoredPerSec: number;
  maxErrors: number;
  maxP50Ms: number;
  maxP99Ms: number;
  maxCpu: { server: number; clients: number };
  offeredPerSec: number;
  rateStoredPerSec: number;
  rateDeliveredPerSec: number;
  rateP50Ms: number;
  rateP99Ms: number;
  rateMaxMs: number;
  rateCpu: { server: number; clients: number };
  setupMs: number;
}

type DmReport = {
  type: 'report';
  acks: number;
  errors: number;
  deliveries: number;
  elapsedUs: number;
  cpuUs: number;
  histogram: HistogramJSON;
  skipped: number;
};

export async function runDmBench(options: DmOptions = {}): Promise<DmResult> {
  const pairs = options.pairs ?? 1_000;
  const inflightPerSender = options.inflightPerSender ?? 4;
  const maxSeconds = options.maxSeconds ?? 6;
  const rateSeconds = options.rateSeconds ?? 6;
  const warmupSeconds = options.warmupSeconds ?? 1;
  const processes = options.clientProcesses ?? 1;
  const log = options.log ?? (() => {});
  const started = performance.now();
  const deployment = await (options.deploy ?? singleSqlite)();
  const workers: ChildProcess[] = [];
  try {
    for (let w = 0; w < processes; w++) {
      const worker = forkWorker('--dm-worker');
      workers.push(worker);
      worker.send({
        type: 'init',
        wsUrls: deployment.servers.map((server) => server.wsUrl),
        from: Math.floor((w * pairs) / processes),
        to: Math.floor(((w + 1) * pairs) / processes),
      });
    }
    await Promise.all(workers.map((w) => nextMessage(w, 'ready', 120_000)));
    const setupMs = performance.now() - started;
    log(`dm: ${pairs} pairs (${pairs * 2} connections, direct conversations opened) in ${Math.round(setupMs)} ms`);

    const phase = async (command: Record<string, unknown>, seconds: number) => {
      for (const w of workers) w.send({ ...command, type: 'run' });
      await new Promise((r) => setTimeout(r, warmupSeconds * 1_000));
      const cpu0 = deploymentStats(deployment).cpuUs;
      const t0 = performance.now();
      for (const w of workers) w.send({ type: 'measure' });
      await new Promise((r) => setTimeout(r, seconds * 1_000));
      const reports = workers.map((w) => nextMessage<DmReport>(w, 'report', 30_000));
      for (const w of workers) w.send({ type: 'halt' });
      const cpu1 = deploymentStats(deployment).cpuUs;
      const window = (performance.now() - t0) / 1_000;
      const all = await Promise.all(reports);
      const histogram = new LatencyHistogram();
      let acks = 0;
      let errors = 0;
      let deliveries = 0;
      let clientCpuUs = 0;
      let skipped = 0;
      let perSecAcks = 0;
      let perSecDeliveries = 0;
      for (const r of all) {
        histogram.merge(r.histogram);
        acks += r.acks;
        errors += r.errors;
        deliveries += r.deliveries;
        clientCpuUs += r.cpuUs;
        skipped += r.skipped;
        perSecAcks += r.acks / (r.elapsedUs / 1e6);
        perSecDeliveries += r.deliveries / (r.elapsedUs / 1e6);
      }
      // Let everything outstanding drain before the next phase.
      await Promise.all(workers.map((w) => nextMessage(w, 'idle', 30_000)));
      return {
        acksPerSec: perSecAcks,
        deliveriesPerSec: perSecDeliveries,
        errors,
        skipped,
        deliveries,
        acks,
        histogram,
        cpu: { server: (cpu1 - cpu0) / 1e6 / window, clients: clientCpuUs / 1e6 / window },
      };
    };

    const max = await phase({ mode: 'max', inflight: inflightPerSender }, maxSeconds);
    log(
      `dm max: ${Math.round(max.acksPerSec)} stored msg/s acknowledged (${max.errors} errors), peer receipt p50 ` +
        `${(max.histogram.quantileUs(0.5) / 1000).toFixed(1)} ms p99 ${(max.histogram.quantileUs(0.99) / 1000).toFixed(1)} ms, ` +
        `CPU server ${max.cpu.server.toFixed(2)} clients ${max.cpu.clients.toFixed(2)}`,
    );
    const offered = options.offeredRate ?? Math.max(Math.round(max.acksPerSec / 2), options.minOfferedRate ?? 10_000);
    const rate = await phase({ mode: 'rate', perSecond: offered / processes }, rateSeconds);
    log(
      `dm rate: ${offered} msg/s offered → ${Math.round(rate.acksPerSec)} stored/s, ${Math.round(rate.deliveriesPerSec)} ` +
        `delivered/s (${rate.skipped} sends skipped: sender at its in-flight cap), CPU server ${rate.cpu.server.toFixed(2)} ` +
        `clients ${rate.cpu.clients.toFixed(2)}`,
    );
    return {
      pairs,
      clientProcesses: processes,
      inflightPerSender,
      maxStoredPerSec: max.acksPerSec,
      maxErrors: max.errors,
      maxP50Ms: max.histogram.quantileUs(0.5) / 1000,
      maxP99Ms: max.histogram.quantileUs(0.99) / 1000,
      maxCpu: max.cpu,
      offeredPerSec: offered,
      rateStoredPerSec: rate.acksPerSec,
      rateDeliveredPerSec: rate.deliveriesPerSec,
      rateP50Ms: rate.histogram.quantileUs(0.5) / 1000,
      rateP99Ms: rate.histogram.quantileUs(0.99) / 1000,
      rateMaxMs: rate.histogram.maxUs / 1000,
      rateCpu: rate.cpu,
      setupMs,
    };
  } finally {
    await Promise.all(workers.map(stopWorker));
    if (deployment.servers.length > 1) await logBusTraffic(deployment, log);
    await deployment.stop();
  }
}

const ID_PREFIX = Buffer.from('{"id":');
const MESSAGE_NEW_PREFIX = Buffer.from('{"event":"message.new"');

async function dmWorker(): Promise<void> {
  const send = (msg: unknown) => process.connected && process.send!(msg);
  process.on('disconnect', () => process.exit(0));
  const init = await new Promise<{ wsUrls: string[]; from: number; to: number }>((r) => process.once('message', r as any));
  const count = init.to - init.from;
  const instanceOf = (i: number) => init.wsUrls[i % init.wsUrls.length]!;

  let measuring = false;
  let acks = 0;
  let errors = 0;
  let deliveries = 0;
  let skipped = 0;
  let histogram = new LatencyHistogram();
  let windowStart = 0;
  let cpuStart = process.cpuUsage();
  let mode: 'idle' | 'max' | 'rate' = 'idle';
  let inflightCap = 4;
  let seq = 0;

  interface Pair {
    sender: ParleyConn | null;
    conversationId: string;
    outstanding: number;
    prefix: string;
    /** Reply waiters during setup. */
    waiting: ((frame: Buffer) => void) | null;
  }
  const pairs: Pair[] = [];
  const receivers: ParleyConn[] = [];

  const sendOne = (p: Pair) => {
    const s = ++seq;
    p.outstanding++;
    p.sender!.send(`{"id":${s}${p.prefix}${s}","text":${JSON.stringify(makeBody(s, monoUs()))}}}`);
  };
  const onPeerFrame = (frame: Buffer) => {
    if (!measuring) return;
    if (frame.length < MESSAGE_NEW_PREFIX.length || frame.compare(MESSAGE_NEW_PREFIX, 0, MESSAGE_NEW_PREFIX.length, 0, MESSAGE_NEW_PREFIX.length) !== 0) return;
    const token = findToken(frame);
    if (!token) return;
    deliveries++;
    histogram.record(monoUs() - token.sentUs);
  };
  const onSenderFrame = (p: Pair) => (frame: Buffer) => {
    if (frame.compare(ID_PREFIX, 0, ID_PREFIX.length, 0, ID_PREFIX.length) !== 0) return; // own message.new echo
    if (p.waiting) {
      const w = p.waiting;
      p.waiting = null;
      w(frame);
      return;
    }
    p.outstanding--;
    // {"id":<digits>,"result"  vs  {"id":<digits>,"error"
    let i = ID_PREFIX.length;
    while (frame[i]! >= 0x30 && frame[i]! <= 0x39) i++;
    const ok = frame[i + 2] === 0x72; /* r */
    if (measuring) {
      if (ok) acks++;
      else errors++;
    }
    if (mode === 'max' && p.outstanding < inflightCap) sendOne(p);
  };

  try {
    await pool(count, 32, async (k) => {
      const i = init.from + k;
      const receiverToken = await signToken(OWN_SECRET, 'parley', `dm-r-${i}`);
      receivers[k] = await connectParley(instanceOf(i), receiverToken, onPeerFrame);
      const pair: Pair = { sender: null, conversationId: '', outstanding: 0, prefix: '', waiting: null };
      pairs[k] = pair;
      const senderToken = await signToken(OWN_SECRET, 'parley', `dm-s-${i}`);
      pair.sender = await connectParley(instanceOf(i + 1), senderToken, onSenderFrame(pair));
      const reply = await new Promise<Buffer>((resolve) => {
        pair.waiting = resolve;
        pair.sender!.send(JSON.stringify({ id: 'open', type: 'direct.open', data: { userId: `dm-r-${i}` } }));
      });
      const parsed = JSON.parse(reply.toString()) as { result?: { conversation: { id: string } }; error?: unknown };
      if (!parsed.result) throw new Error(`direct.open: ${reply.toString()}`);
      pair.conversationId = parsed.result.conversation.id;
      pair.prefix = `,"type":"message.send","data":{"conversationId":"${pair.conversationId}","key":"k`;
    });
  } catch (error) {
    send({ type: 'error', message: `dm setup: ${String(error)}` });
    return;
  }

  let pacer: NodeJS.Timeout | null = null;
  let idleCheck: NodeJS.Timeout | null = null;
  process.on('message', (msg: { type: string; mode?: 'max' | 'rate'; inflight?: number; perSecond?: number }) => {
    if (msg.type === 'run') {
      mode = msg.mode!;
      measuring = false;
      if (mode === 'max') {
        inflightCap = msg.inflight ?? 4;
        for (const p of pairs) while (p.outstanding < inflightCap) sendOne(p);
      } else {
        inflightCap = 32;
        const perMs = (msg.perSecond ?? 1_000) / 1_000;
        const start = performance.now();
        let sent = 0;
        let cursor = 0;
        pacer = setInterval(() => {
          const due = Math.floor((performance.now() - start) * perMs);
          while (sent < due) {
            sent++;
            const p = pairs[cursor]!;
            cursor = cursor + 1 === pairs.length ? 0 : cursor + 1;
            if (p.outstanding >= inflightCap) {
              if (measuring) skipped++;
              continue;
            }
            sendOne(p);
          }
        }, 1);
      }
    } else if (msg.type === 'measure') {
      acks = 0;
      errors = 0;
      deliveries = 0;
      skipped = 0;
      histogram = new LatencyHistogram();
      windowStart = monoUs();
      cpuStart = process.cpuUsage();
      measuring = true;
    } else if (msg.type === 'halt') {
      const cpu = process.cpuUsage(cpuStart);
      measuring = false;
      mode = 'idle';
      if (pacer) clearInterval(pacer);
      pacer = null;
      send({
        type: 'report',
        acks,
        errors,
        deliveries,
        skipped,
        elapsedUs: monoUs() - windowStart,
        cpuUs: cpu.user + cpu.system,
        histogram: histogram.toJSON(),
      } satisfies DmReport);
      idleCheck = setInterval(() => {
        if (pairs.every((p) => p.outstanding === 0)) {
          clearInterval(idleCheck!);
          send({ type: 'idle' });
        }
      }, 20);
    } else if (msg.type === 'stop') {
      for (const p of pairs) p.sender?.close();
      for (const r of receivers) r.close();
      process.exit(0);
    }
  });
  send({ type: 'ready' });
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Memory per idle authenticated connection

export interface MemoryOptions {
  connections?: number;
  warmup?: number;
  clientProcesses?: number;
  log?: (line: string) => void;
}

export interface MemoryResult {
  connections: number;
  warmup: number;
  rssBeforeMB: number;
  /** RSS once the first fifth of the connections are open (after the warm-up). */
  rssMidMB: number;
  rssAfterMB: number;
  /** (after − before) / connections: includes what the first connections grow once (heap, code, caches). */
  perConnKB: number;
  /** (after − mid) / the last four fifths: what one more connection costs once the process has grown (the slope). */
  marginalKB: number;
  /** The slope's share in the V8 heap in use (JS objects, after the last GC) and outside it (buffers), KB per connection. */
  heapUsedKB: number;
  externalKB: number;
  connectMs: number;
  samplesAfterMB: number[];
}

/**
 * BENCH_MEM_SNAPSHOTS=<dir>: write a heap snapshot of the server at the memory bench's first fifth and at its end (the
 * server must run with BENCH_PARLEY_NODE_OPTIONS="--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=<dir>"), to diff
 * what one more connection costs by constructor. Waits (at most 120 s) until the new file stops growing.
 */
async function heapSnapshot(pid: number): Promise<void> {
  const dir = process.env.BENCH_MEM_SNAPSHOTS;
  if (!dir) return;
  const count = (): string[] => readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot'));
  const before = count().length;
  process.kill(pid, 'SIGUSR2');
  let lastSize = -1;
  for (let i = 0; i < 1200; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const files = count();
    if (files.length <= before) continue;
    const size = statSync(join(dir, files.sort().at(-1)!)).size;
    if (size > 0 && size === lastSize) return;
    lastSize = size;
  }
}

/** The server's V8 heap in use and its memory outside the heap (buffers, typed arrays), in bytes, from /metrics. */
async function heapStats(server: TestServer): Promise<{ heapUsed: number; external: number }> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const read = (name: string): number => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN);
  return { heapUsed: read('parley_nodejs_heap_size_used_bytes'), external: read('parley_nodejs_external_memory_bytes') };
}

/** RSS samples `count` times `intervalMs` apart; the minimum of the last ones is what remains after GC. */
export async function settledRss(pid: number, count = 6, intervalMs = 500): Promise<{ rss: number; samples: number[] }> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    await new Promise((r) => setTimeout(r, intervalMs));
    samples.push(procStats(pid).rss);
  }
  return { rss: Math.min(...samples.slice(-3)), samples };
}

export async function runMemoryBench(options: MemoryOptions = {}): Promise<MemoryResult> {
  const connections = options.connections ?? 10_000;
  const warmup = options.warmup ?? 200;
  const processes = options.clientProcesses ?? 2;
  const log = options.log ?? (() => {});
  const server = await startParley();
  const pid = server.process.pid!;
  const workers: ChildProcess[] = [];
  try {
    // Warm-up connections (kept open) load the code paths and the first allocations, so the difference below is the
    // cost of one more connection, not of the first one.
    const warm = forkWorker('--mem-worker');
    workers.push(warm);
    warm.send({ type: 'init', wsUrl: server.wsUrl, from: 0, to: warmup, prefix: 'mem-warm' });
    await nextMessage(warm, 'ready', 60_000);
    const before = await settledRss(pid);
    const t0 = performance.now();
    // Two phases in one process: the first fifth, then the rest. The slope between them is the cost of one more
    // connection without what the process grows once (a lower baseline, e.g. from lazy loading, would otherwise show
    // as a higher figure per connection).
    const connect = async (from: number, to: number): Promise<void> => {
      const batch: ChildProcess[] = [];
      for (let w = 0; w < processes; w++) {
        const worker = forkWorker('--mem-worker');
        workers.push(worker);
        batch.push(worker);
        const span = to - from;
        worker.send({ type: 'init', wsUrl: server.wsUrl, from: from + Math.floor((w * span) / processes), to: from + Math.floor(((w + 1) * span) / processes), prefix: 'mem' });
      }
      await Promise.all(batch.map((w) => nextMessage(w, 'ready', 180_000)));
    };
    const fifth = Math.floor(connections / 5);
    await connect(0, fifth);
    const connectFirstMs = performance.now() - t0;
    const mid = await settledRss(pid);
    const midHeap = await heapStats(server);
    await heapSnapshot(pid);
    const t1 = performance.now();
    await connect(fifth, connections);
    const connectMs = connectFirstMs + performance.now() - t1;
    log(`memory: ${connections} authenticated connections (+${warmup} warm-up) in ${Math.round(connectMs)} ms`);
    // BENCH_MEM_IDLE_MS: sample after the connections have been idle this long (V8 collects the garbage of the
    // connect burst and shrinks its heap only after a while of low allocation).
    const idleMs = Number(process.env.BENCH_MEM_IDLE_MS ?? 0);
    if (idleMs > 0) await new Promise((r) => setTimeout(r, idleMs));
    const after = await settledRss(pid, 8);
    const afterHeap = await heapStats(server);
    await heapSnapshot(pid);
    const rest = (connections - fifth) * 1024;
    return {
      heapUsedKB: (afterHeap.heapUsed - midHeap.heapUsed) / rest,
      externalKB: (afterHeap.external - midHeap.external) / rest,
      connections,
      warmup,
      rssBeforeMB: before.rss / 1024 / 1024,
      rssMidMB: mid.rss / 1024 / 1024,
      rssAfterMB: after.rss / 1024 / 1024,
      perConnKB: (after.rss - before.rss) / 1024 / connections,
      marginalKB: (after.rss - mid.rss) / 1024 / (connections - fifth),
      connectMs,
      samplesAfterMB: after.samples.map((s) => s / 1024 / 1024),
    };
  } finally {
    await Promise.all(workers.map(stopWorker));
    await stopServer(server);
  }
}

async function memWorker(): Promise<void> {
  const send = (msg: unknown) => process.connected && process.send!(msg);
  process.on('disconnect', () => process.exit(0));
  const init = await new Promise<{ wsUrl: string; from: number; to: number; prefix: string }>((r) => process.once('message', r as any));
  const conns: ParleyConn[] = [];
  process.on('message', (msg: { type: string }) => {
    if (msg.type === 'stop') {
      for (const c of conns) c.close();
      process.exit(0);
    }
  });
  try {
    await pool(init.to - init.from, 64, async (k) => {
      const token = await signToken(OWN_SECRET, 'parley', `${init.prefix}-${init.from + k}`);
      conns.push(await connectParley(init.wsUrl, token, () => {}));
    });
  } catch (error) {
    send({ type: 'error', message: `memory connect: ${String(error)}` });
    return;
  }
  send({ type: 'ready', connected: conns.length });
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain && process.argv.includes('--dm-worker')) {
  dmWorker().catch((error) => {
    console.error(error);
    process.exit(1);
  });
} else if (isMain && process.argv.includes('--mem-worker')) {
  memWorker().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
