/**
 * Bytes on the wire per message and the reconnect path (bench/README.md, "Lean events and reconnect"). Run alone with
 * `node --import tsx bench/lean.ts` (after `npm run build`), or as part of `npm run bench`. Protocol-agnostic on
 * purpose (it reads whatever the server sends), so the same file measures an older build for a before/after.
 *
 * One group: the owner sends from connection A1 while its second connection A2 and a member B listen. Measured:
 * 1. bytes per delivered `message.new` (the frame's payload, at B) for a 100-byte text;
 * 2. bytes per send round trip at the sending connection: the request, its reply, and any `message.new` of its own
 *    message that comes back to it (A2 must still receive it: counted, and printed when missing);
 * 3. the reconnect path: B drops, the owner sends BENCH_LEAN_MISSED messages, B reconnects and catches up:
 *    WebSocket connect → `welcome` → `sync` naming its position → the reply holding the missed messages; p50/p99 over
 *    BENCH_LEAN_RECONNECTS rounds, with B a member of BENCH_LEAN_CONVERSATIONS conversations (the others quiet);
 * 4. the same with nothing missed: connect → `welcome`, then `sync` only if welcome does not show (with its
 *    `conversations` positions, when the server sends them) that B already holds everything, as the SDK does.
 */
import WebSocket from 'ws';
import { OWN_SECRET, signToken, type TestServer } from '../test/helpers/server.js';
import { rest, startParley } from './parley.js';
import { LatencyHistogram } from './stats.js';

export interface LeanOptions {
  /** Messages measured for bytes. @default 200 */
  messages?: number;
  /** Reconnect rounds. @default 200 */
  reconnects?: number;
  /** Messages missed while B is away, per round. @default 5 */
  missed?: number;
  /** Conversations B belongs to (one active, the rest quiet). @default 10 */
  conversations?: number;
  log?: (line: string) => void;
}

export interface LeanResult {
  textBytes: number;
  /** Mean payload bytes of one `message.new` as a receiver gets it. */
  deliveredBytes: number;
  /** Mean bytes one send costs its sending connection: request + reply + its own echo, if any. */
  sendRoundTripBytes: number;
  /** The parts of sendRoundTripBytes. */
  requestBytes: number;
  replyBytes: number;
  echoBytes: number;
  /** Whether the sender's other connection received every message. */
  otherDeviceReceivedAll: boolean;
  reconnectP50Ms: number;
  reconnectP99Ms: number;
  /** connect → welcome part of the path. */
  welcomeP50Ms: number;
  /** sync sent → reply part of the path. */
  syncP50Ms: number;
  /** Bytes of welcome + sync reply per round. */
  reconnectBytes: number;
  /** Reconnect with nothing missed: connect → welcome (→ sync → reply, unless welcome shows nothing was missed). */
  idleP50Ms: number;
  idleP99Ms: number;
  /** How many idle rounds still needed a sync. */
  idleSyncs: number;
  rounds: number;
}

const TEXT = 'lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore'.padEnd(100, '.');

interface Conn {
  ws: WebSocket;
  frames: string[];
  /** Resolves with the first frame (already received or later) that `match` accepts, removing it. */
  next(match: (frame: string, parsed: any) => boolean, timeoutMs?: number): Promise<{ frame: string; parsed: any }>;
  request(type: string, data: unknown): Promise<{ frame: string; parsed: any; requestBytes: number }>;
  close(): Promise<void>;
}

let requestIds = 0;

function open(server: TestServer, token: string): Promise<Conn> {
  const ws = new WebSocket(server.wsUrl, { headers: { authorization: `Bearer ${token}` } });
  const frames: string[] = [];
  let waiter: (() => void) | null = null;
  ws.on('message', (data) => {
    frames.push(data.toString());
    waiter?.();
  });
  const conn: Conn = {
    ws,
    frames,
    async next(match, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        for (let i = 0; i < frames.length; i++) {
          const parsed = JSON.parse(frames[i]!);
          if (match(frames[i]!, parsed)) return { frame: frames.splice(i, 1)[0]!, parsed };
        }
        if (Date.now() > deadline) throw new Error('lean bench: expected frame did not arrive');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, deadline - Date.now());
          waiter = () => {
            clearTimeout(timer);
            waiter = null;
            resolve();
          };
        });
      }
    },
    async request(type, data) {
      const id = ++requestIds;
      const text = JSON.stringify({ id, type, data });
      ws.send(text);
      const reply = await conn.next((_, p) => p.id === id);
      if (reply.parsed.error) throw new Error(`${type}: ${JSON.stringify(reply.parsed.error)}`);
      return { ...reply, requestBytes: Buffer.byteLength(text) };
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve();
        ws.once('close', () => resolve());
        ws.close();
      }),
  };
  return new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.once('open', () => resolve(conn));
  });
}

async function welcomed(server: TestServer, token: string): Promise<{ conn: Conn; welcomeBytes: number }> {
  const conn = await open(server, token);
  const welcome = await conn.next((_, p) => p.event === 'welcome');
  return { conn, welcomeBytes: Buffer.byteLength(welcome.frame) };
}

/** Whether a `welcome` lists exactly the held conversations at the held positions (a server without positions: no). */
function holdsEverything(welcome: any, held: Map<string, { afterSeq: number; rev: number }>): boolean {
  const listed = welcome?.conversations;
  if (!Array.isArray(listed) || welcome.conversationsMore !== false || listed.length !== held.size) return false;
  return listed.every((c: any) => held.get(c.id)?.afterSeq === c.lastSeq && held.get(c.id)?.rev === c.rev);
}

const isNew = (seq: number) => (_: string, p: any) => p.event === 'message.new' && p.data?.seq === seq;

export async function runLeanBench(options: LeanOptions = {}): Promise<LeanResult> {
  const messages = options.messages ?? 200;
  const rounds = options.reconnects ?? 200;
  const missed = options.missed ?? 5;
  const conversations = Math.max(1, options.conversations ?? 10);
  const server = await startParley();
  try {
    const ownerToken = await signToken(OWN_SECRET, 'parley', 'lean-owner');
    const memberToken = await signToken(OWN_SECRET, 'parley', 'lean-member');
    const groups: string[] = [];
    for (let i = 0; i < conversations; i++) {
      const { conversation } = await rest(server, ownerToken, 'POST', '/api/v1/conversations', { name: `lean ${i}`, visibility: 'public' });
      await rest(server, memberToken, 'POST', `/api/v1/conversations/${conversation.id}/join`);
      groups.push(conversation.id);
    }
    const group = groups[0]!;
    const a1 = (await welcomed(server, ownerToken)).conn;
    const a2 = (await welcomed(server, ownerToken)).conn;
    let b = (await welcomed(server, memberToken)).conn;

    // 1 and 2: bytes, one send at a time so that each frame is attributed to its send.
    let delivered = 0;
    let request = 0;
    let reply = 0;
    let echo = 0;
    let otherDevice = 0;
    let seq = 0;
    for (let i = 0; i < messages; i++) {
      const sent = await a1.request('message.send', { conversationId: group, key: `lean-${i}-${Date.now()}`, text: TEXT });
      seq = sent.parsed.result.seq ?? sent.parsed.result.message.seq;
      request += sent.requestBytes;
      reply += Buffer.byteLength(sent.frame);
      const atB = await b.next(isNew(seq));
      delivered += Buffer.byteLength(atB.frame);
      if (await a2.next(isNew(seq)).then(() => true, () => false)) otherDevice++;
      // The sender's own copy, when the server sends one: it was written before the reply (or with it).
      await new Promise((r) => setImmediate(r));
      const own = a1.frames.findIndex((f) => { const p = JSON.parse(f); return p.event === 'message.new' && p.data?.seq === seq; });
      if (own >= 0) echo += Buffer.byteLength(a1.frames.splice(own, 1)[0]!);
    }
    a1.frames.length = 0;
    a2.frames.length = 0;

    // 3: the reconnect path.
    const total = new LatencyHistogram();
    const toWelcome = new LatencyHistogram();
    const syncing = new LatencyHistogram();
    let reconnectBytes = 0;
    const positions = new Map<string, { afterSeq: number; rev: number }>();
    const first = await b.request('sync', { conversations: [] });
    for (const c of first.parsed.result.unknown) positions.set(c.id, { afterSeq: c.lastSeq, rev: c.rev });
    for (let round = 0; round < rounds; round++) {
      await b.close();
      for (let i = 0; i < missed; i++) {
        const sent = await a1.request('message.send', { conversationId: group, key: `miss-${round}-${i}-${Date.now()}`, text: TEXT });
        seq = sent.parsed.result.seq ?? sent.parsed.result.message.seq;
      }
      a1.frames.length = 0;
      a2.frames.length = 0;
      const t0 = performance.now();
      const back = await welcomed(server, memberToken);
      const t1 = performance.now();
      b = back.conn;
      const names = [...positions].map(([conversationId, p]) => ({ conversationId, afterSeq: p.afterSeq, rev: p.rev }));
      const sync = await b.request('sync', { conversations: names });
      const t2 = performance.now();
      const entry = sync.parsed.result.conversations.find((c: any) => c.conversationId === group);
      const got = entry?.messages?.length ?? 0;
      if (got !== missed) throw new Error(`lean bench: sync returned ${got} messages, expected ${missed}`);
      for (const c of sync.parsed.result.conversations) positions.set(c.conversationId, { afterSeq: c.lastSeq, rev: c.rev });
      total.record((t2 - t0) * 1000);
      toWelcome.record((t1 - t0) * 1000);
      syncing.record((t2 - t1) * 1000);
      reconnectBytes += back.welcomeBytes + Buffer.byteLength(sync.frame);
      b.frames.length = 0;
    }
    // 4: the reconnect with nothing missed.
    const idle = new LatencyHistogram();
    let idleSyncs = 0;
    for (let round = 0; round < rounds; round++) {
      await b.close();
      const t0 = performance.now();
      b = await open(server, memberToken);
      const welcome = (await b.next((_, p) => p.event === 'welcome')).parsed.data;
      if (!holdsEverything(welcome, positions)) {
        idleSyncs++;
        const names = [...positions].map(([conversationId, p]) => ({ conversationId, afterSeq: p.afterSeq, rev: p.rev }));
        await b.request('sync', { conversations: names });
      }
      idle.record((performance.now() - t0) * 1000);
      b.frames.length = 0;
    }
    await Promise.all([a1.close(), a2.close(), b.close()]);
    const ms = (h: LatencyHistogram, q: number) => h.quantileUs(q / 100) / 1000;
    return {
      textBytes: TEXT.length,
      deliveredBytes: delivered / messages,
      sendRoundTripBytes: (request + reply + echo) / messages,
      requestBytes: request / messages,
      replyBytes: reply / messages,
      echoBytes: echo / messages,
      otherDeviceReceivedAll: otherDevice === messages,
      reconnectP50Ms: ms(total, 50),
      reconnectP99Ms: ms(total, 99),
      welcomeP50Ms: ms(toWelcome, 50),
      syncP50Ms: ms(syncing, 50),
      reconnectBytes: reconnectBytes / Math.max(1, rounds),
      rounds,
      idleP50Ms: ms(idle, 50),
      idleP99Ms: ms(idle, 99),
      idleSyncs,
    };
  } finally {
    const timer = setTimeout(() => server.process.kill('SIGKILL'), 8_000);
    await server.stop().catch(() => {});
    clearTimeout(timer);
  }
}

/** One printed block (used by run.ts and when this file runs alone). */
export function formatLean(r: LeanResult): string {
  return [
    `  message.new delivered: ${r.deliveredBytes.toFixed(0)} B for a ${r.textBytes}-byte text`,
    `  send round trip at the sending connection: ${r.sendRoundTripBytes.toFixed(0)} B ` +
      `(request ${r.requestBytes.toFixed(0)} + reply ${r.replyBytes.toFixed(0)} + own message.new ${r.echoBytes.toFixed(0)}); ` +
      `sender's other connection received every message: ${r.otherDeviceReceivedAll ? 'yes' : 'NO'}`,
    `  reconnect (connect → welcome → sync → reply with the missed messages), ${r.rounds} rounds: ` +
      `p50 ${r.reconnectP50Ms.toFixed(2)} ms, p99 ${r.reconnectP99Ms.toFixed(2)} ms ` +
      `(to welcome p50 ${r.welcomeP50Ms.toFixed(2)} ms, sync p50 ${r.syncP50Ms.toFixed(2)} ms); ${r.reconnectBytes.toFixed(0)} B per round`,
    `  reconnect with nothing missed (connect → welcome, then sync unless welcome shows nothing was missed): ` +
      `p50 ${r.idleP50Ms.toFixed(2)} ms, p99 ${r.idleP99Ms.toFixed(2)} ms; ${r.idleSyncs} of ${r.rounds} rounds needed a sync`,
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const n = (name: string) => (process.env[name] === undefined ? undefined : Number(process.env[name]));
  const result = await runLeanBench({
    messages: n('BENCH_LEAN_MESSAGES'), reconnects: n('BENCH_LEAN_RECONNECTS'), missed: n('BENCH_LEAN_MISSED'),
    conversations: n('BENCH_LEAN_CONVERSATIONS'),
  });
  console.log(formatLean(result));
  process.exit(0);
}
