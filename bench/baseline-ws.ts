/**
 * Baseline server: bare `ws` 8, one room (every subscriber connection), relaying what the sender connection sends.
 *
 * - `coalesced`: the ceiling for a Node fan-out. Each broadcast is framed once (`Sender.frame` from `ws`); the frame
 *   (one shared Buffer) is pushed to each subscriber's pending list; once per event-loop turn (`setImmediate`) each
 *   socket with pending frames gets one `write` of their concatenation. A socket whose kernel-side backlog plus
 *   pending bytes passes `MAX_PENDING_BYTES` is cut off (a slow reader must not grow memory without bound).
 * - `naive`: `ws.send(data)` for each subscriber (ws frames and writes per socket per message).
 *
 * Connections: `ws://host:port/?role=sender` is the sender; any other connection is a subscriber.
 *
 * Run as a child process: `node --import tsx bench/baseline-ws.ts <coalesced|naive>`; it reports
 * `{ type: 'ready', port }` over IPC, answers `{ type: 'mem' }` with `{ type: 'mem', rss, heapUsed, cpuUs, connections }`,
 * and exits on `{ type: 'stop' }`, on SIGTERM, or when the parent goes away.
 */
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { pathToFileURL } from 'node:url';
import * as wsModule from 'ws';
import type WebSocket from 'ws';

const { WebSocketServer } = wsModule;
/**
 * `ws` exports its frame builder as `Sender` (ESM named export; `WebSocket.Sender` only on the CommonJS entry), and
 * @types/ws does not declare it.
 */
const Sender = (wsModule as unknown as {
  Sender: {
    frame(
      data: Buffer,
      options: { fin: boolean; opcode: number; mask: boolean; readOnly: boolean; rsv1: boolean },
    ): Buffer[];
  };
}).Sender;

export type WsBaselineMode = 'coalesced' | 'naive';

export interface RunningServer {
  port: number;
  connections(): number;
  close(): Promise<void>;
}

/** Cut a subscriber off when this much is waiting for it (socket buffer + pending frames). */
const MAX_PENDING_BYTES = 8 * 1024 * 1024;

interface Subscriber {
  ws: WebSocket;
  raw: Socket;
  pending: Buffer[];
  pendingBytes: number;
}

export async function startWsBaseline(options: { mode: WsBaselineMode; host?: string; port?: number }): Promise<RunningServer> {
  const { mode } = options;
  const http: Server = createServer((_req, res) => {
    res.writeHead(426).end();
  });
  const wss = new WebSocketServer({ server: http, perMessageDeflate: false, clientTracking: false, maxPayload: 1 << 20 });
  const subscribers = new Set<Subscriber>();
  let dirty: Subscriber[] = [];
  let flushScheduled = false;

  const flush = (): void => {
    flushScheduled = false;
    const list = dirty;
    dirty = [];
    for (const sub of list) {
      const frames = sub.pending;
      if (frames.length === 0) continue; // cut off meanwhile
      sub.pending = [];
      sub.pendingBytes = 0;
      sub.raw.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
    }
  };

  const broadcastCoalesced = (data: Buffer): void => {
    const parts = Sender.frame(data, { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false });
    const frame = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    for (const sub of subscribers) {
      if (sub.pending.length === 0) dirty.push(sub);
      sub.pending.push(frame);
      sub.pendingBytes += frame.length;
      if (sub.pendingBytes + sub.raw.writableLength > MAX_PENDING_BYTES) {
        subscribers.delete(sub);
        sub.pending = [];
        sub.ws.terminate();
      }
    }
    if (!flushScheduled && dirty.length > 0) {
      flushScheduled = true;
      setImmediate(flush);
    }
  };

  const broadcastNaive = (data: Buffer): void => {
    for (const sub of subscribers) {
      if (sub.raw.writableLength > MAX_PENDING_BYTES) {
        subscribers.delete(sub);
        sub.ws.terminate();
        continue;
      }
      sub.ws.send(data, { binary: false });
    }
  };

  const broadcast = mode === 'coalesced' ? broadcastCoalesced : broadcastNaive;

  wss.on('connection', (ws, req) => {
    const role = new URL(req.url ?? '/', 'http://x').searchParams.get('role');
    const raw = (ws as unknown as { _socket: Socket })._socket;
    raw.setNoDelay(true);
    if (role === 'sender') {
      ws.on('message', (data, isBinary) => {
        if (!isBinary) broadcast(data as Buffer);
      });
      return;
    }
    const sub: Subscriber = { ws, raw, pending: [], pendingBytes: 0 };
    subscribers.add(sub);
    ws.on('close', () => subscribers.delete(sub));
    ws.on('error', () => subscribers.delete(sub));
  });

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = http.address();
  if (!address || typeof address === 'string') throw new Error('no port');

  return {
    port: address.port,
    connections: () => subscribers.size,
    async close() {
      for (const sub of subscribers) sub.ws.terminate();
      subscribers.clear();
      wss.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

/** Shared child-process plumbing for the baseline servers (IPC: ready / mem / stop). */
export function serveAsChild(start: () => Promise<RunningServer>): void {
  if (!process.send) {
    console.error('run me with an IPC channel (child_process.fork)');
    process.exit(2);
  }
  let server: RunningServer | undefined;
  const exit = async (code: number) => {
    const hardExit = setTimeout(() => process.exit(code), 1_000);
    hardExit.unref();
    try {
      await server?.close();
    } finally {
      process.exit(code);
    }
  };
  process.on('disconnect', () => void exit(0)); // parent gone: never outlive it
  process.on('SIGTERM', () => void exit(0));
  process.on('message', (msg: { type?: string }) => {
    if (msg?.type === 'stop') void exit(0);
    if (msg?.type === 'mem') {
      const m = process.memoryUsage();
      const cpu = process.cpuUsage();
      process.send!({
        type: 'mem',
        rss: m.rss,
        heapUsed: m.heapUsed,
        cpuUs: cpu.user + cpu.system,
        connections: server?.connections() ?? 0,
      });
    }
  });
  start().then(
    (s) => {
      server = s;
      process.send!({ type: 'ready', port: s.port });
    },
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  const mode = process.argv[2] === 'naive' ? 'naive' : 'coalesced';
  serveAsChild(() => startWsBaseline({ mode }));
}
