/**
 * The fan-out load client, shared by every bench target (the baselines here, Parley later).
 *
 * Workload: one room of `clients` subscribers; one sender keeps `inflight` messages outstanding (a message is done
 * when every subscriber got it; then the sender sends the next one); ~100-byte JSON text bodies carrying a
 * sequence number and the send time; loopback only. Measured at the clients over a fixed window after a warm-up:
 * deliveries per second and per-delivery latency (receive time − send time embedded in the body) → p50/p99.
 *
 * Processes (2 cores on this machine kind, see bench/README.md for what was measured):
 * - the server under test runs in its own child process (`target.start()`);
 * - the subscribers run in `clientProcesses` child processes (this file, forked with an IPC channel), each
 *   holding a slice of the subscribers and reporting the sequence numbers all its subscribers received;
 * - the sender and the coordination run in the calling process, which is otherwise idle.
 * Send and receive times use CLOCK_MONOTONIC (`monoUs`), which is one clock for every process on the machine.
 *
 * Plugging in another server: implement a `FanoutAdapter` in a module (how to connect a subscriber, how to connect
 * the sender and send a body, optionally how to find the body in a received frame), and pass a `CustomTarget`
 * whose `start()` launches the server and returns `{ adapter: { module, exportName, options }, stop }`. The adapter
 * module is imported in every client process, so its options must be JSON.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import { io as ioClient } from 'socket.io-client';
import { LatencyHistogram, monoUs, type HistogramJSON } from './stats.js';

// ---------------------------------------------------------------------------------------------------------------
// Adapter interface

export type Frame = Buffer | string;

export interface SubscriberConnection {
  close(): void;
}

export interface SenderConnection {
  send(body: string): void;
  close(): void;
}

export interface FanoutAdapter {
  /**
   * Connect subscriber `index` (0-based, unique across all client processes) and subscribe it to the room. Resolve
   * once a message sent afterwards will reach it. Call `onFrame` with each received message (the raw text frame,
   * or the decoded body when the client library decodes it).
   */
  connectSubscriber(index: number, onFrame: (frame: Frame) => void): Promise<SubscriberConnection>;
  /** Connect the sender; `send(body)` gets `body` to the server, which broadcasts it (or a frame containing it). */
  connectSender(): Promise<SenderConnection>;
  /**
   * Where the bench token is in a received frame. The default (`findToken`) searches for the token, so it works
   * for any frame that embeds the body's `id` verbatim; override only to skip frames or for a binary encoding.
   */
  extract?(frame: Frame): { seq: number; sentUs: number } | null;
}

/** How a client process builds the adapter: `(await import(module))[exportName](options)`. */
export interface AdapterSpec {
  module: string;
  exportName: string;
  options: unknown;
}

export interface CustomTarget {
  name: string;
  /** Launch the server; call `fail` if it dies later (the run then stops with that error). */
  start(context: { fail(error: Error): void }): Promise<{
    adapter: AdapterSpec;
    stop(): Promise<void>;
    /**
     * Server RSS (bytes) and CPU time used so far (µs), if the target can tell: used for the per-connection memory
     * estimate and the CPU column (who the bottleneck is).
     */
    stats?(): Promise<{ rss: number; cpuUs: number }>;
  }>;
}

export type BuiltinTarget = 'ws-coalesced' | 'ws-naive' | 'socketio';

export interface FanoutOptions {
  target: BuiltinTarget | CustomTarget;
  /** Subscribers in the room. Default 1,000. */
  clients?: number;
  /** Measured window, seconds. Default 8, at most 60. */
  seconds?: number;
  /** Unmeasured warm-up before the window, seconds. Default 1. */
  warmupSeconds?: number;
  /** Messages outstanding. Default 50. */
  inflight?: number;
  /**
   * Fixed-rate mode: aim at this many deliveries per second (the sender sends `rate / clients` messages per second,
   * evenly, still never more than `inflight` outstanding) to read latency below saturation. Default: saturate.
   */
  rate?: number;
  /** Child processes holding the subscribers. Default 1 (measured best on 2 cores; see bench/README.md). */
  clientProcesses?: number;
  /** Body size in bytes. Default 100. */
  bodyBytes?: number;
  /** A message not done within this time is given up (counted in `timedOut`) so the window keeps moving. */
  messageTimeoutMs?: number;
  /** Budget for starting the server and connecting every subscriber. Default 60 s. */
  connectTimeoutMs?: number;
  /** Subscriber client for the `ws-*` targets: `raw` (default, `connectRawWs`) or the `ws` library. */
  wsClient?: 'raw' | 'ws';
  log?: (line: string) => void;
}

export interface FanoutResult {
  target: string;
  clients: number;
  clientProcesses: number;
  inflight: number;
  /** Target deliveries/s in fixed-rate mode, null when saturating. */
  rate: number | null;
  seconds: number;
  deliveries: number;
  deliveriesPerSec: number;
  messagesPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  timedOut: number;
  connectMs: number;
  /** Server RSS growth per connected subscriber, KB (rough; includes the sender and allocator slack). */
  serverRssPerConnKB: number | null;
  serverRssMB: number | null;
  /** CPU used during the window, in cores (1.0 = one core busy): the bottleneck is the one near 1.0. */
  cpu: { server: number | null; clients: number; coordinator: number };
}

// ---------------------------------------------------------------------------------------------------------------
// Body and token

/**
 * The token is `~B` + 10-digit seq + `.` + 15-digit send time (µs, CLOCK_MONOTONIC) + `~`: fixed width, digits and
 * letters only, so it survives JSON escaping and can be read at fixed offsets without parsing the frame.
 */
const TOKEN_SEQ_DIGITS = 10;
const TOKEN_TS_DIGITS = 15;
const TILDE = 0x7e;
const LETTER_B = 0x42;

export function makeBody(seq: number, sentUs: number, bodyBytes = 100): string {
  const token = `~B${String(seq).padStart(TOKEN_SEQ_DIGITS, '0')}.${String(sentUs).padStart(TOKEN_TS_DIGITS, '0')}~`;
  const head = `{"type":"chat","room":"bench","id":"${token}","text":"`;
  const tail = '"}';
  const fill = Math.max(0, bodyBytes - head.length - tail.length);
  return head + 'lorem ipsum dolor sit amet '.repeat(Math.ceil(fill / 27)).slice(0, fill) + tail;
}

const digitsAt = (frame: Frame, start: number, count: number): number => {
  let n = 0;
  if (typeof frame === 'string') {
    for (let i = start; i < start + count; i++) n = n * 10 + (frame.charCodeAt(i) - 48);
  } else {
    for (let i = start; i < start + count; i++) n = n * 10 + (frame[i]! - 48);
  }
  return n;
};

/** Find the bench token in a text frame (Buffer of UTF-8 bytes, or string). Bounded by the frame length. */
export function findToken(frame: Frame): { seq: number; sentUs: number } | null {
  const isString = typeof frame === 'string';
  let from = 0;
  for (;;) {
    const at = isString ? frame.indexOf('~B', from) : (frame as Buffer).indexOf(TILDE, from);
    if (at < 0 || at + 3 + TOKEN_SEQ_DIGITS + TOKEN_TS_DIGITS >= frame.length) return null;
    if (isString || (frame as Buffer)[at + 1] === LETTER_B) {
      return {
        seq: digitsAt(frame, at + 2, TOKEN_SEQ_DIGITS),
        sentUs: digitsAt(frame, at + 3 + TOKEN_SEQ_DIGITS, TOKEN_TS_DIGITS),
      };
    }
    from = at + 1;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Built-in adapters (exported by name so client processes can build them from an AdapterSpec)

const withTimeout = <T>(what: string, ms: number, promise: Promise<T>): Promise<T> =>
  new Promise<T>((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolvePromise(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });

function openWs(url: string): Promise<WebSocket> {
  return withTimeout(
    `connect ${url}`,
    10_000,
    new Promise<WebSocket>((resolvePromise, reject) => {
      // skipUTF8Validation: the client must not be the bottleneck; the server under test is.
      const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true });
      ws.once('open', () => {
        ws.off('error', reject);
        ws.on('error', () => {});
        resolvePromise(ws);
      });
      ws.once('error', reject);
    }),
  );
}

/**
 * A minimal receive-side WebSocket client on a raw TCP socket, for load clients: HTTP upgrade, then server frames
 * are cut out of the received chunks without copying (a frame split across chunks is joined) and each complete
 * text or binary message goes to `onMessage` as a Buffer view. Pings are answered with a masked pong; fragmented
 * messages are reassembled; a close frame ends the socket. It skips what the `ws` library does per frame (stream
 * machinery, events, UTF-8 validation), which is what makes the client side cheaper than the server under test.
 * `send(text)` sends one masked text frame (the sender path is not hot).
 */
export function connectRawWs(
  url: string,
  onMessage: (payload: Buffer) => void,
  options: { headers?: Record<string, string>; timeoutMs?: number; onClose?: (code: number) => void } = {},
): Promise<{ socket: Socket; send(text: string): void; close(): void }> {
  const target = new URL(url);
  const key = randomBytes(16).toString('base64');
  const socket = netConnect({ host: target.hostname, port: Number(target.port || 80), noDelay: true });
  const extra = Object.entries(options.headers ?? {})
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  socket.write(
    `GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
  );
  const maskedFrame = (opcode: number, payload: Buffer): Buffer => {
    const len = payload.length;
    const headerLen = len < 126 ? 2 : len < 65_536 ? 4 : 10;
    const frame = Buffer.allocUnsafe(headerLen + 4 + len);
    frame[0] = 0x80 | opcode;
    if (len < 126) frame[1] = 0x80 | len;
    else if (len < 65_536) {
      frame[1] = 0x80 | 126;
      frame.writeUInt16BE(len, 2);
    } else {
      frame[1] = 0x80 | 127;
      frame.writeBigUInt64BE(BigInt(len), 2);
    }
    const mask = randomBytes(4);
    mask.copy(frame, headerLen);
    for (let i = 0; i < len; i++) frame[headerLen + 4 + i] = payload[i]! ^ mask[i & 3]!;
    return frame;
  };

  let pending: Buffer | null = null; // bytes of an incomplete frame
  let fragments: Buffer[] | null = null; // a fragmented message being reassembled
  const onData = (chunk: Buffer): void => {
    let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
    pending = null;
    let at = 0;
    const end = buf.length;
    // Bounded by the chunk: every iteration consumes one whole frame or stops.
    while (at < end) {
      if (end - at < 2) break;
      const b0 = buf[at]!;
      let len = buf[at + 1]! & 0x7f;
      let header = 2;
      if (len === 126) {
        if (end - at < 4) break;
        len = buf.readUInt16BE(at + 2);
        header = 4;
      } else if (len === 127) {
        if (end - at < 10) break;
        len = Number(buf.readBigUInt64BE(at + 2));
        header = 10;
      }
      if (end - at < header + len) break;
      const payload = buf.subarray(at + header, at + header + len);
      at += header + len;
      const opcode = b0 & 0x0f;
      const fin = (b0 & 0x80) !== 0;
      if (opcode === 1 || opcode === 2) {
        if (fin) onMessage(payload);
        else fragments = [payload];
      } else if (opcode === 0 && fragments) {
        fragments.push(payload);
        if (fin) {
          const whole = Buffer.concat(fragments);
          fragments = null;
          onMessage(whole);
        }
      } else if (opcode === 9) {
        socket.write(maskedFrame(10, payload));
      } else if (opcode === 8) {
        options.onClose?.(payload.length >= 2 ? payload.readUInt16BE(0) : 1005);
        socket.end();
        return;
      }
    }
    if (at < end) pending = buf.subarray(at);
    buf = chunk; // drop the reference to a joined buffer
  };

  return withTimeout(
    `connect ${url}`,
    options.timeoutMs ?? 10_000,
    new Promise<{ socket: Socket; send(text: string): void; close(): void }>((resolvePromise, reject) => {
      let head = Buffer.alloc(0);
      const onHandshake = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const endOfHead = head.indexOf('\r\n\r\n');
        if (endOfHead < 0) {
          if (head.length > 16_384) reject(new Error(`${url}: oversized handshake response`));
          return;
        }
        const status = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
        socket.off('data', onHandshake);
        if (!/^HTTP\/1\.1 101/.test(status)) {
          socket.destroy();
          reject(new Error(`${url}: upgrade refused: ${status}`));
          return;
        }
        socket.on('data', onData);
        resolvePromise({
          socket,
          send: (text) => void socket.write(maskedFrame(1, Buffer.from(text))),
          close: () => socket.destroy(),
        });
        const rest = head.subarray(endOfHead + 4);
        if (rest.length > 0) onData(rest);
      };
      socket.on('data', onHandshake);
      socket.once('error', reject);
      socket.on('error', () => {});
    }),
  ).catch((error) => {
    socket.destroy();
    throw error;
  });
}

/**
 * Plain WebSocket server: subscribers connect to `url?role=sub`, the sender to `url?role=sender`.
 * `client: 'raw'` (default) receives with `connectRawWs`; `client: 'ws'` with the `ws` library.
 */
export function createWsAdapter(options: { url: string; client?: 'raw' | 'ws' }): FanoutAdapter {
  return {
    async connectSubscriber(_index, onFrame) {
      if (options.client !== 'ws') {
        const conn = await connectRawWs(`${options.url}/?role=sub`, onFrame);
        return { close: conn.close };
      }
      const ws = await openWs(`${options.url}/?role=sub`);
      ws.on('message', (data) => onFrame(data as Buffer));
      return { close: () => ws.terminate() };
    },
    async connectSender() {
      const ws = await openWs(`${options.url}/?role=sender`);
      return { send: (body) => ws.send(body), close: () => ws.terminate() };
    },
  };
}

/** Socket.IO server: subscribers are put in the room by the server; the sender emits `send`, subscribers get `msg`. */
export function createSocketIoAdapter(options: { url: string }): FanoutAdapter {
  const connect = (role: string) => {
    const socket = ioClient(options.url, {
      transports: ['websocket'],
      forceNew: true, // one engine.io connection per client (no multiplexing)
      reconnection: false,
      auth: { role },
      timeout: 10_000,
    });
    return withTimeout(
      `socket.io connect ${options.url}`,
      10_000,
      new Promise<typeof socket>((resolvePromise, reject) => {
        socket.once('connect', () => resolvePromise(socket));
        socket.once('connect_error', reject);
      }),
    ).catch((error) => {
      socket.close();
      throw error;
    });
  };
  return {
    async connectSubscriber(_index, onFrame) {
      const socket = await connect('sub');
      socket.on('msg', (body: string) => onFrame(body));
      return { close: () => socket.close() };
    },
    async connectSender() {
      const socket = await connect('sender');
      return { send: (body) => void socket.emit('send', body), close: () => socket.close() };
    },
  };
}

async function loadAdapter(spec: AdapterSpec): Promise<FanoutAdapter> {
  const mod = (await import(spec.module)) as Record<string, unknown>;
  const factory = mod[spec.exportName];
  if (typeof factory !== 'function') throw new Error(`${spec.module} does not export a function ${spec.exportName}`);
  return (await factory(spec.options)) as FanoutAdapter;
}

// ---------------------------------------------------------------------------------------------------------------
// Child-process management

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..');
const thisModule = import.meta.url;

/** Every child this process started; killed on exit whatever happened. */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

function forkTs(file: string, args: string[]): ChildProcess {
  const child = fork(file, args, {
    cwd: repoRoot,
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'json',
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Wait for the first IPC message of `type` from `child`; rejects if the child exits first or on timeout. */
export function nextMessage<T extends { type: string }>(child: ChildProcess, type: string, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolvePromise, reject) => {
    const onMessage = (msg: T & { message?: string }) => {
      if (msg?.type === type) {
        cleanup();
        resolvePromise(msg);
      } else if (msg?.type === 'error') {
        cleanup();
        reject(new Error(`child ${child.pid}: ${msg.message}`));
      }
    };
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      reject(new Error(`child ${child.pid} exited (${code ?? signal}) while waiting for ${type}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`child ${child.pid}: no ${type} within ${timeoutMs} ms`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** Ask a child to stop, then kill it if it has not exited within `graceMs`. */
async function stopChild(child: ChildProcess, graceMs = 2_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    if (child.connected) child.send({ type: 'stop' });
  } catch {
    // channel already closed
  }
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** The baseline servers as targets: each runs in its own child process. */
function builtinTarget(name: BuiltinTarget, wsClient: 'raw' | 'ws'): CustomTarget {
  const file = name === 'socketio' ? 'baseline-socketio.ts' : 'baseline-ws.ts';
  const args = name === 'ws-naive' ? ['naive'] : name === 'ws-coalesced' ? ['coalesced'] : [];
  const exportName = name === 'socketio' ? 'createSocketIoAdapter' : 'createWsAdapter';
  return {
    name,
    async start({ fail }) {
      const child = forkTs(resolve(here, file), args);
      let stopped = false;
      child.once('exit', (code, signal) => {
        if (!stopped) fail(new Error(`${name} server exited (${code ?? signal})`));
      });
      const { port } = await nextMessage<{ type: 'ready'; port: number }>(child, 'ready', 15_000);
      return {
        adapter: {
          module: thisModule,
          exportName,
          options:
            name === 'socketio' ? { url: `http://127.0.0.1:${port}` } : { url: `ws://127.0.0.1:${port}`, client: wsClient },
        },
        stop: () => {
          stopped = true;
          return stopChild(child);
        },
        async stats() {
          child.send({ type: 'mem' });
          return nextMessage<{ type: 'mem'; rss: number; cpuUs: number }>(child, 'mem', 5_000);
        },
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Coordinator (the calling process): server, client processes, sender

type WorkerMessage =
  | { type: 'ready'; connected: number }
  | { type: 'done'; seqs: number[] }
  | { type: 'result'; deliveries: number; elapsedUs: number; cpuUs: number; histogram: HistogramJSON; unparsed: number }
  | { type: 'error'; message: string };

export async function runFanoutBench(options: FanoutOptions): Promise<FanoutResult> {
  const target =
    typeof options.target === 'string' ? builtinTarget(options.target, options.wsClient ?? 'raw') : options.target;
  const clients = Math.max(1, Math.min(options.clients ?? 1_000, 20_000));
  const seconds = Math.max(0.5, Math.min(options.seconds ?? 8, 60));
  const warmupSeconds = Math.max(0, Math.min(options.warmupSeconds ?? 1, 10));
  const inflight = Math.max(1, Math.min(options.inflight ?? 50, 10_000));
  const messagesPerMs = options.rate !== undefined && options.rate > 0 ? options.rate / clients / 1_000 : null;
  const processes = Math.max(1, Math.min(options.clientProcesses ?? 1, 8, clients));
  const bodyBytes = options.bodyBytes ?? 100;
  const messageTimeoutMs = options.messageTimeoutMs ?? 5_000;
  const connectTimeoutMs = options.connectTimeoutMs ?? 60_000;
  const log = options.log ?? (() => {});

  const workers: ChildProcess[] = [];
  let server: Awaited<ReturnType<CustomTarget['start']>> | undefined;
  let sender: SenderConnection | undefined;
  let stopping = false;
  let failure: ((error: Error) => void) | undefined;
  const failed = new Promise<never>((_, reject) => {
    failure = reject;
  });
  failed.catch(() => {}); // observed through Promise.race below
  const race = <T>(p: Promise<T>): Promise<T> => Promise.race([p, failed]);
  // Hard bound on the whole run, whatever happens.
  const deadline = setTimeout(
    () => failure!(new Error(`${target.name}: run exceeded its time budget`)),
    connectTimeoutMs + (warmupSeconds + seconds) * 1_000 + 20_000,
  );

  try {
    const connectStart = performance.now();
    server = await race(target.start({ fail: (error) => failure!(error) }));
    const serverStats = server.stats?.bind(server);
    const rssBefore = serverStats ? (await race(serverStats())).rss : null;

    // Client processes, each with a contiguous slice of subscriber indices.
    const readies: Promise<{ connected: number }>[] = [];
    for (let w = 0; w < processes; w++) {
      const from = Math.floor((w * clients) / processes);
      const to = Math.floor(((w + 1) * clients) / processes);
      const worker = forkTs(fileURLToPath(thisModule), ['--fanout-worker']);
      workers.push(worker);
      worker.once('exit', (code, signal) => {
        if (!stopping) failure!(new Error(`${target.name}: client process exited early (${code ?? signal})`));
      });
      worker.send({ type: 'init', adapter: server.adapter, from, to });
      readies.push(nextMessage<{ type: 'ready'; connected: number }>(worker, 'ready', connectTimeoutMs));
    }
    await race(Promise.all(readies));
    const adapter = await loadAdapter(server.adapter);
    sender = await race(adapter.connectSender());
    const connectMs = performance.now() - connectStart;
    const rssAfter = serverStats ? (await race(serverStats())).rss : null;
    log(`${target.name}: ${clients} subscribers in ${processes} process(es) connected in ${Math.round(connectMs)} ms`);

    // The in-flight window.
    const outstanding = new Map<number, { sentAt: number; doneIn: number }>();
    let nextSeq = 1;
    let sending = true;
    let completed = 0;
    let timedOut = 0;
    const sendOne = () => {
      const seq = nextSeq++;
      outstanding.set(seq, { sentAt: performance.now(), doneIn: 0 });
      sender!.send(makeBody(seq, monoUs(), bodyBytes));
    };
    let paceStart = 0;
    let paced = 0; // messages the pacer has released
    const refill = () => {
      if (messagesPerMs === null) {
        while (sending && outstanding.size < inflight) sendOne();
        return;
      }
      const due = Math.floor((performance.now() - paceStart) * messagesPerMs);
      while (sending && paced < due && outstanding.size < inflight) {
        paced++;
        sendOne();
      }
      if (due - paced > inflight) paced = due - inflight; // the server cannot keep up: do not build a burst
    };
    const pacer = messagesPerMs === null ? null : setInterval(refill, 1);
    const onWorkerMessage = (msg: WorkerMessage) => {
      if (msg.type !== 'done') return;
      for (const seq of msg.seqs) {
        const entry = outstanding.get(seq);
        if (!entry) continue; // timed out already
        if (++entry.doneIn === processes) {
          outstanding.delete(seq);
          completed++;
        }
      }
      refill();
    };
    for (const worker of workers) worker.on('message', onWorkerMessage);
    const reaper = setInterval(() => {
      const now = performance.now();
      for (const [seq, entry] of outstanding) {
        if (now - entry.sentAt > messageTimeoutMs) {
          outstanding.delete(seq);
          timedOut++;
        }
      }
      refill();
    }, 250);

    try {
      paceStart = performance.now();
      refill();
      await race(new Promise((r) => setTimeout(r, warmupSeconds * 1_000)));
      for (const worker of workers) worker.send({ type: 'start' });
      const completedAtStart = completed;
      const windowStart = performance.now();
      const coordinatorCpuStart = process.cpuUsage();
      const serverCpuStart = serverStats ? (await race(serverStats())).cpuUs : null;
      await race(new Promise((r) => setTimeout(r, seconds * 1_000)));
      const serverCpuEnd = serverStats ? (await race(serverStats())).cpuUs : null;
      const coordinatorCpu = process.cpuUsage(coordinatorCpuStart);
      const results = workers.map((worker) =>
        nextMessage<Extract<WorkerMessage, { type: 'result' }>>(worker, 'result', 10_000),
      );
      for (const worker of workers) worker.send({ type: 'stop' });
      const windowSeconds = (performance.now() - windowStart) / 1_000;
      const messagesInWindow = completed - completedAtStart;
      sending = false;
      const reports = await race(Promise.all(results));

      const histogram = new LatencyHistogram();
      let deliveries = 0;
      let deliveriesPerSec = 0;
      let clientCpuUs = 0;
      for (const report of reports) {
        clientCpuUs += report.cpuUs;
        histogram.merge(report.histogram);
        deliveries += report.deliveries;
        deliveriesPerSec += report.deliveries / (report.elapsedUs / 1e6);
        if (report.unparsed > 0) log(`${target.name}: ${report.unparsed} frames without a bench token`);
      }
      stopping = true;
      return {
        target: target.name,
        clients,
        clientProcesses: processes,
        inflight,
        rate: options.rate ?? null,
        seconds,
        deliveries,
        deliveriesPerSec,
        messagesPerSec: messagesInWindow / windowSeconds,
        p50Ms: histogram.quantileUs(0.5) / 1_000,
        p99Ms: histogram.quantileUs(0.99) / 1_000,
        maxMs: histogram.maxUs / 1_000,
        timedOut,
        connectMs,
        serverRssPerConnKB: rssBefore !== null && rssAfter !== null ? (rssAfter - rssBefore) / 1024 / clients : null,
        serverRssMB: rssAfter !== null ? rssAfter / 1024 / 1024 : null,
        cpu: {
          server: serverCpuStart !== null && serverCpuEnd !== null ? (serverCpuEnd - serverCpuStart) / 1e6 / windowSeconds : null,
          clients: clientCpuUs / 1e6 / windowSeconds,
          coordinator: (coordinatorCpu.user + coordinatorCpu.system) / 1e6 / windowSeconds,
        },
      };
    } finally {
      stopping = true;
      sending = false;
      clearInterval(reaper);
      if (pacer) clearInterval(pacer);
    }
  } finally {
    clearTimeout(deadline);
    try {
      sender?.close();
    } catch {
      // already gone
    }
    await Promise.all(workers.map((worker) => stopChild(worker)));
    await server?.stop().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Client process: a slice of the subscribers

async function workerMain(): Promise<void> {
  const send = (msg: WorkerMessage) => {
    if (process.connected) process.send!(msg);
  };
  const connections: SubscriberConnection[] = [];
  const exit = () => {
    for (const c of connections) {
      try {
        c.close();
      } catch {
        // ignore
      }
    }
    process.exit(0);
  };
  process.on('disconnect', exit); // the coordinator is gone: never outlive it

  const init = await new Promise<{ adapter: AdapterSpec; from: number; to: number }>((r) =>
    process.once('message', (msg: { adapter: AdapterSpec; from: number; to: number }) => r(msg)),
  );
  const local = init.to - init.from;

  // Completion tracking: a ring indexed by seq (far more slots than messages can be outstanding).
  const RING = 1 << 16;
  const ringSeq = new Int32Array(RING).fill(-1);
  const ringCount = new Int32Array(RING);
  let doneBatch: number[] = [];
  let flushScheduled = false;
  const flushDone = () => {
    flushScheduled = false;
    const seqs = doneBatch;
    doneBatch = [];
    send({ type: 'done', seqs });
  };

  let measuring = false;
  let deliveries = 0;
  let unparsed = 0;
  let windowStartUs = 0;
  let cpuAtStart = process.cpuUsage();
  let histogram = new LatencyHistogram();

  let adapter: FanoutAdapter;
  try {
    adapter = await loadAdapter(init.adapter);
  } catch (error) {
    send({ type: 'error', message: String(error) });
    return;
  }
  const extract = adapter.extract ?? findToken;

  const onFrame = (frame: Frame) => {
    const token = extract(frame);
    if (!token) {
      unparsed++;
      return;
    }
    if (measuring) {
      deliveries++;
      histogram.record(monoUs() - token.sentUs);
    }
    const slot = token.seq & (RING - 1);
    if (ringSeq[slot] !== token.seq) {
      ringSeq[slot] = token.seq;
      ringCount[slot] = 0;
    }
    if (++ringCount[slot]! === local) {
      doneBatch.push(token.seq);
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flushDone);
      }
    }
  };

  // Connect with bounded concurrency (the server's listen backlog is finite).
  const CONCURRENCY = 64;
  let next = init.from;
  try {
    await Promise.all(
      Array.from({ length: Math.min(CONCURRENCY, local) }, async () => {
        while (next < init.to) {
          const index = next++;
          connections.push(await adapter.connectSubscriber(index, onFrame));
        }
      }),
    );
  } catch (error) {
    send({ type: 'error', message: `connecting subscribers: ${String(error)}` });
    return;
  }

  process.on('message', (msg: { type: string }) => {
    if (msg.type === 'start') {
      histogram = new LatencyHistogram();
      deliveries = 0;
      windowStartUs = monoUs();
      cpuAtStart = process.cpuUsage();
      measuring = true;
    } else if (msg.type === 'stop') {
      measuring = false;
      const cpu = process.cpuUsage(cpuAtStart);
      send({
        cpuUs: cpu.user + cpu.system,
        type: 'result',
        deliveries,
        elapsedUs: monoUs() - windowStartUs,
        histogram: histogram.toJSON(),
        unparsed,
      });
      setImmediate(exit);
    }
  });
  send({ type: 'ready', connected: connections.length });
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain && process.argv.includes('--fanout-worker')) {
  workerMain().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
