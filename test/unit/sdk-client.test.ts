/**
 * The client's connection logic against a scripted fake WebSocket (no server): subprotocols, welcome, requests,
 * timeouts, ordered delivery with gap fill, sync after reconnect, the outbox's retries, and terminal closes.
 * End-to-end tests against a real server live elsewhere.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Message } from '../../src/protocol/types.js';
import WebSocket from 'ws';
import { ParleyClient, ParleyClientError, type WebSocketConstructor, type WebSocketLike } from '../../packages/sdk/src/index.js';

// Compile-time check: Node passes the `ws` package's class as options.WebSocket.
const wsPackageFits: WebSocketConstructor = WebSocket;
void wsPackageFits;

interface Frame {
  id: number;
  type: string;
  data: Record<string, unknown>;
}

class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = [];
  readyState = 0;
  protocol = '';
  binaryType = 'blob';
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  readonly sent: Frame[] = [];
  closedByClient: { code?: number; reason?: string } | null = null;
  /** Answers requests automatically when set: return a result, or `{ error }`, or undefined for no reply. */
  responder: ((f: Frame) => unknown) | null = null;

  constructor(readonly url: string, readonly protocols?: string | string[]) {
    FakeSocket.all.push(this);
  }
  send(data: string): void {
    const frame = JSON.parse(data) as Frame;
    this.sent.push(frame);
    if (this.responder) {
      const out = this.responder(frame);
      if (out === undefined) return;
      setTimeout(() => {
        if (out && typeof out === 'object' && 'error' in out) this.push({ id: frame.id, ...(out as object) });
        else this.push({ id: frame.id, result: out });
      }, 0);
    }
  }
  close(code?: number, reason?: string): void {
    this.closedByClient = { code, reason };
    this.readyState = 3;
  }
  // ---- driven by the test
  open(welcome = WELCOME): void {
    this.readyState = 1;
    this.protocol = 'parley.v1';
    this.onopen?.({});
    this.push({ event: 'welcome', data: welcome });
  }
  push(frame: unknown): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  serverClose(code: number, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  requests(type: string): Frame[] {
    return this.sent.filter((f) => f.type === type);
  }
}

const WELCOME = {
  version: 1, connectionId: 'conn1', user: { id: 'u1', name: 'Ann' }, heartbeatIntervalMs: 60_000,
  limits: { maxMessageBytes: 4096, maxFrameBytes: 65536 },
};

function msg(conversationId: string, seq: number, key = `k${seq}`): Message {
  return { id: `${conversationId}:${seq}`, conversationId, seq, senderId: 'u2', text: `m${seq}`, meta: null, key, createdAt: seq, editedAt: null, deleted: false };
}

const syncReply = (unknown: Array<{ id: string; lastSeq: number }> = [], conversations: unknown[] = []) => ({
  conversations,
  unknown: unknown.map((u) => ({
    id: u.id, kind: 'group', name: u.id, visibility: 'public', createdAt: 0, createdBy: 'u2', lastSeq: u.lastSeq,
    memberCount: 2, role: 'member', readSeq: 0, unread: 0, peer: null, lastMessageAt: null,
  })),
  removed: [],
});

async function until(pred: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function newClient(extra: Partial<ConstructorParameters<typeof ParleyClient>[0]> = {}) {
  FakeSocket.all = [];
  let n = 0;
  const client = new ParleyClient({
    url: 'http://localhost:8080/ws',
    token: () => `tok${++n}`,
    WebSocket: FakeSocket,
    backoff: { initialMs: 1, maxMs: 5 },
    gapFetchDelayMs: 0,
    requestTimeoutMs: 500,
    ...extra,
  });
  const log = { messages: [] as Message[], raw: [] as number[], states: [] as string[], disconnects: [] as unknown[], errors: [] as Error[] };
  client.on('message', (m) => log.messages.push(m));
  client.on('message.new', (m) => log.raw.push(m.seq));
  client.on('state', (s) => log.states.push(s));
  client.on('disconnect', (d) => log.disconnects.push(d));
  client.on('error', (e) => log.errors.push(e));
  return { client, log };
}

describe('SDK client (fake WebSocket)', () => {
  it('connects with parley.v1 + bearer.<jwt>, resolves with welcome, syncs, delivers in order with gap fill', async () => {
    const { client, log } = newClient();
    const connected = client.connect();
    await until(() => FakeSocket.all.length === 1, 'socket');
    const s = FakeSocket.all[0];
    assert.equal(s.url, 'ws://localhost:8080/ws');
    assert.deepEqual(s.protocols, ['parley.v1', 'bearer.tok1']);
    s.responder = (f) => (f.type === 'sync' ? syncReply([{ id: 'a', lastSeq: 5 }]) : undefined);
    s.open();
    const welcome = await connected;
    assert.equal(welcome.connectionId, 'conn1');
    assert.equal(client.state, 'open');
    const synced = await new Promise((r) => client.once('synced', r));
    assert.deepEqual(s.requests('sync')[0].data, { conversations: [] });
    assert.deepEqual((synced as { unknown: Array<{ id: string }> }).unknown.map((c) => c.id), ['a']);
    assert.equal(client.position('a'), 5);

    s.responder = (f) => {
      if (f.type !== 'history.after') return undefined;
      assert.deepEqual(f.data, { conversationId: 'a', afterSeq: 6 });
      return { messages: [msg('a', 7), msg('a', 8)], more: false };
    };
    s.push({ event: 'message.new', data: msg('a', 6) });
    s.push({ event: 'message.new', data: msg('a', 6) }); // duplicate
    s.push({ event: 'message.new', data: msg('a', 8) }); // gap: 7 missing
    await until(() => log.messages.length === 3, 'gap fill');
    s.push({ event: 'message.new', data: msg('a', 7) }); // late live copy: duplicate
    s.push({ event: 'message.new', data: msg('a', 9) });
    await until(() => log.messages.length === 4, 'message 9');
    // A direct conversation a peer opened: known from its conversation.updated (lastSeq 0), so seq 1 is delivered.
    s.push({ event: 'conversation.updated', data: { ...syncReply([{ id: 'dm', lastSeq: 0 }]).unknown[0], kind: 'direct', name: null } });
    assert.equal(client.position('dm'), 0);
    s.push({ event: 'message.new', data: msg('dm', 1) });
    assert.equal(log.messages.length, 5);
    assert.deepEqual(log.messages.map((m) => m.seq), [6, 7, 8, 9, 1]);
    assert.deepEqual(log.raw, [6, 6, 8, 7, 9, 1], 'message.new is the raw wire event');
    assert.equal(s.requests('history.after').length, 1);
    assert.deepEqual(log.states, ['connecting', 'open']);
    client.close();
    assert.equal(client.state, 'closed');
    assert.equal(s.closedByClient?.code, 1000);
  });

  it('maps error replies and local timeouts to ParleyClientError', async () => {
    const { client } = newClient({ requestTimeoutMs: 30 });
    const connected = client.connect();
    await until(() => FakeSocket.all.length === 1, 'socket');
    const s = FakeSocket.all[0];
    s.responder = (f) => {
      if (f.type === 'sync') return syncReply();
      if (f.type === 'conversation.get') return { error: { code: 'NOT_MEMBER', message: 'nope', temporary: false } };
      return undefined; // never answers anything else
    };
    s.open();
    await connected;
    await assert.rejects(client.request('conversation.get', { conversationId: 'x' }), (e: unknown) => {
      assert.ok(e instanceof ParleyClientError);
      assert.equal(e.code, 'NOT_MEMBER');
      assert.equal(e.temporary, false);
      assert.equal(e.requestType, 'conversation.get');
      return true;
    });
    await assert.rejects(client.ping(), (e: unknown) => e instanceof ParleyClientError && e.code === 'TIMEOUT' && e.temporary);
    const big = 'x'.repeat(70_000);
    await assert.rejects(client.send('c1', big), (e: unknown) => e instanceof ParleyClientError && e.code === 'MESSAGE_TOO_LARGE' && !e.temporary);
    client.close();
    await assert.rejects(client.ping(), (e: unknown) => e instanceof ParleyClientError && e.code === 'CLOSED');
  });

  it('queues sends while disconnected, reconnects with a fresh token, syncs from its position, retries with the same key', async () => {
    const { client, log } = newClient();
    client.track('c1', 10);
    const connected = client.connect();
    await until(() => FakeSocket.all.length === 1, 'socket');
    FakeSocket.all[0].responder = (f) => (f.type === 'sync' ? syncReply() : undefined);
    FakeSocket.all[0].open();
    await connected;
    await new Promise((r) => client.once('synced', r));

    FakeSocket.all[0].serverClose(4000, 'shutdown');
    assert.deepEqual(log.disconnects, [{ code: 4000, reason: 'shutdown', willReconnect: true }]);
    assert.equal(client.state, 'reconnecting');
    const sent = client.send('c1', 'hello', { x: 1 });
    assert.equal(client.pendingSends().length, 1);
    const key = client.pendingSends()[0].key;
    assert.ok(key.length >= 16);

    await until(() => FakeSocket.all.length === 2, 'reconnect');
    const s2 = FakeSocket.all[1];
    assert.deepEqual(s2.protocols, ['parley.v1', 'bearer.tok2'], 'the token function is called again');
    let sendAttempts = 0;
    s2.responder = (f) => {
      if (f.type === 'sync') {
        return syncReply([], [{ conversationId: 'c1', lastSeq: 11, messages: [msg('c1', 11)], more: false }]);
      }
      if (f.type === 'message.send') {
        sendAttempts++;
        assert.equal(f.data.key, key);
        if (sendAttempts === 1) return { error: { code: 'RATE_LIMITED', message: 'slow down', temporary: true } };
        return { message: { ...msg('c1', 12, key), senderId: 'u1', text: 'hello' }, duplicate: false };
      }
      return undefined;
    };
    s2.open();
    const stored = await sent;
    assert.equal(stored.seq, 12);
    assert.equal(stored.key, key);
    assert.equal(sendAttempts, 2);
    assert.deepEqual(s2.requests('sync')[0].data, { conversations: [{ conversationId: 'c1', afterSeq: 10 }] });
    assert.deepEqual(s2.requests('message.send').map((f) => f.data), [
      { key, text: 'hello', conversationId: 'c1', meta: { x: 1 } },
      { key, text: 'hello', conversationId: 'c1', meta: { x: 1 } },
    ]);
    await until(() => log.messages.length === 2, 'delivery');
    assert.deepEqual(log.messages.map((m) => m.seq), [11, 12], 'the acknowledged own message is delivered once, in order');
    s2.push({ event: 'message.new', data: stored });
    assert.equal(log.messages.length, 2);
    assert.deepEqual(client.pendingSends(), []);
    assert.deepEqual(log.states, ['connecting', 'open', 'reconnecting', 'open']);
    client.close();
  });

  it('stops on a 45xx close: disconnect willReconnect false, connect() rejects, queued sends fail', async () => {
    const { client, log } = newClient();
    const connected = client.connect();
    await until(() => FakeSocket.all.length === 1, 'socket');
    const sent = client.send({ to: 'u2' }, 'hi');
    FakeSocket.all[0].serverClose(4500, 'bad token');
    await assert.rejects(connected, (e: unknown) => {
      assert.ok(e instanceof ParleyClientError);
      assert.equal(e.code, 'CLOSED');
      assert.equal(e.closeCode, 4500);
      assert.equal(e.closeName, 'UNAUTHORIZED');
      assert.equal(e.temporary, false);
      return true;
    });
    await assert.rejects(sent, (e: unknown) => e instanceof ParleyClientError && e.closeCode === 4500);
    assert.deepEqual(log.disconnects, [{ code: 4500, reason: 'bad token', willReconnect: false }]);
    assert.equal(client.state, 'closed');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(FakeSocket.all.length, 1, 'no reconnect');
  });

  it('reconnects after 4004 (token expired) and after an abnormal 1006, not after a normal 1000', async () => {
    const { client, log } = newClient();
    void client.connect();
    await until(() => FakeSocket.all.length === 1, 'socket');
    FakeSocket.all[0].responder = (f) => (f.type === 'sync' ? syncReply() : undefined);
    FakeSocket.all[0].open();
    FakeSocket.all[0].serverClose(4004, 'expired');
    await until(() => FakeSocket.all.length === 2, 'reconnect after 4004');
    assert.deepEqual(FakeSocket.all[1].protocols, ['parley.v1', 'bearer.tok2']);
    FakeSocket.all[1].serverClose(1006);
    await until(() => FakeSocket.all.length === 3, 'reconnect after 1006');
    FakeSocket.all[2].responder = (f) => (f.type === 'sync' ? syncReply() : undefined);
    FakeSocket.all[2].open();
    FakeSocket.all[2].serverClose(1000);
    assert.equal(client.state, 'closed');
    assert.deepEqual(log.disconnects.map((d) => (d as { willReconnect: boolean }).willReconnect), [true, true, false]);
  });
});
