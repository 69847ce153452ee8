/**
 * The SDK's catch-up against a real server (issue 8, sections 1 and 2): a large backlog is caught up without a
 * reconnect loop, changes made while away (edits, deletes, read cursors, members, renames) arrive as events, and a lost
 * last message is found by the head check without any later traffic.
 *
 * To lose a frame, the client is given a subclass of the real `ws` class (its documented `WebSocket` option) that can
 * drop chosen incoming frames before the SDK sees them.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ParleyClient, type Message, type ParleyClientOptions } from '../../packages/sdk/src/index.js';
import { until as waitUntil } from '../helpers/raw-client.js';
import { register, startServer, type TestServer } from '../helpers/server.js';

const FAST = {
  PARLEY_LIMITS_USER_MESSAGE_RATE_PER_SECOND: '100000',
  PARLEY_LIMITS_USER_MESSAGE_RATE_BURST: '100000',
  PARLEY_LIMITS_CONNECTION_RATE_PER_SECOND: '100000',
  PARLEY_LIMITS_CONNECTION_RATE_BURST: '100000',
};

type Frame = { event?: string; data?: any };

interface TestClient {
  client: ParleyClient;
  messages: Message[];
  events: Array<{ event: string; data: any }>;
  disconnects: number;
  /** When set and returning true for an incoming frame, the SDK never sees it. */
  drop: ((frame: Frame) => boolean) | null;
}

const clients: TestClient[] = [];

function sdk(url: string, token: string, extra: Partial<ParleyClientOptions> = {}): TestClient {
  const c: TestClient = { client: null as unknown as ParleyClient, messages: [], events: [], disconnects: 0, drop: null };
  const onmessage = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'onmessage')!;
  class Dropping extends WebSocket {
    constructor(address: string, protocols?: string | string[]) {
      super(address, protocols);
      Object.defineProperty(this, 'onmessage', {
        configurable: true,
        get: () => onmessage.get!.call(this),
        set: (handler: unknown) => onmessage.set!.call(this, typeof handler !== 'function' ? handler : (ev: { data: unknown }) => {
          if (c.drop?.(JSON.parse(String(ev.data)) as Frame)) return;
          (handler as (ev: unknown) => void)(ev);
        }),
      });
    }
  }
  c.client = new ParleyClient({ url, token, WebSocket: Dropping, backoff: { initialMs: 10, maxMs: 100 }, requestTimeoutMs: 10_000, ...extra });
  c.client.on('message', (m) => c.messages.push(m));
  c.client.on('disconnect', () => c.disconnects++);
  for (const event of ['message.updated', 'member.changed', 'member.left', 'read', 'conversation.updated'] as const) {
    c.client.on(event, (data: any) => c.events.push({ event, data }));
  }
  clients.push(c);
  return c;
}

const until = (pred: () => boolean, what: string, ms = 15_000): Promise<void> => waitUntil(pred, what, ms);

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const seqsOf = (c: TestClient, conversationId: string): number[] => c.messages.filter((m) => m.conversationId === conversationId).map((m) => m.seq);

afterEach(() => {
  for (const c of clients.splice(0)) c.client.close();
});

describe('SDK catch-up', () => {
  let server: TestServer;
  let alice: { id: string; token: string };
  let bob: { id: string; token: string };
  let carol: { id: string; token: string };
  let dave: { id: string; token: string };
  before(async () => {
    server = await startServer(FAST);
    [alice, bob, carol, dave] = await Promise.all(['sdk-cu-alice', 'sdk-cu-bob', 'sdk-cu-carol', 'sdk-cu-dave'].map((n) => register(server, n)));
  });
  after(async () => {
    await server.stop();
  });

  async function sharedGroup(a: TestClient, b: TestClient, name: string): Promise<string> {
    const { conversation } = await a.client.request('conversation.create', { name, visibility: 'public' });
    await b.client.request('conversation.join', { conversationId: conversation.id });
    return conversation.id;
  }

  it('catches up 3 groups of 100 messages of ~4 KB after an absence: all delivered, no disconnect', async () => {
    const a = sdk(server.wsUrl, alice.token);
    const b = sdk(server.wsUrl, bob.token);
    await Promise.all([a.client.connect(), b.client.connect()]);
    const groups: string[] = [];
    for (let g = 0; g < 3; g++) groups.push(await sharedGroup(a, b, `sdk-big-${g}`));
    b.client.close();
    for (const id of groups) {
      for (let start = 1; start <= 100; start += 50) {
        await Promise.all(range(start, start + 49).map((i) => a.client.send(id, `${i} `.padEnd(4000, 'x'))));
      }
    }
    await b.client.connect();
    await until(() => groups.every((id) => b.client.position(id) === 100), 'bob caught up on every group');
    for (const id of groups) assert.deepEqual(seqsOf(b, id), range(1, 100));
    assert.equal(b.disconnects, 1, 'only the close made by the test');
    assert.equal(b.client.state, 'open');
  });

  it('applies what changed while away: edits and deletes, read cursors, joins, roles, departures, a rename', async () => {
    const a = sdk(server.wsUrl, alice.token);
    const b = sdk(server.wsUrl, bob.token);
    const c = sdk(server.wsUrl, carol.token);
    await Promise.all([a.client.connect(), b.client.connect(), c.client.connect()]);
    const conv = await sharedGroup(a, b, 'sdk-changes');
    await c.client.request('conversation.join', { conversationId: conv });
    await c.client.send(conv, 'one');
    await c.client.send(conv, 'two');
    await until(() => b.client.position(conv) === 2, 'bob at 2');
    // The first sync gave bob the conversation's rev; a head check makes sure he stored the newest.
    await b.client.sync();
    b.client.close();
    b.events.length = 0;

    await c.client.edit(conv, 1, 'one, edited');
    await c.client.deleteMessage(conv, 2);
    await a.client.markRead(conv, 2);
    await c.client.request('conversation.leave', { conversationId: conv });
    const d = sdk(server.wsUrl, dave.token);
    await d.client.connect();
    await d.client.request('conversation.join', { conversationId: conv });
    await a.client.request('member.role', { conversationId: conv, userId: dave.id, role: 'admin' });
    await a.client.request('conversation.rename', { conversationId: conv, name: 'renamed while bob was away' });

    await b.client.connect();
    await until(() => b.events.some((e) => e.event === 'conversation.updated'), 'the renamed conversation');
    await until(() => b.events.filter((e) => e.event === 'message.updated').length >= 2, 'the edit and the delete');
    const updated = b.events.filter((e) => e.event === 'message.updated').map((e) => [e.data.seq, e.data.text, e.data.deleted]);
    assert.deepEqual(updated, [[1, 'one, edited', undefined], [2, '', true]]);
    const renamed = b.events.find((e) => e.event === 'conversation.updated')!.data;
    assert.equal(renamed.name, 'renamed while bob was away');
    assert.ok(b.events.some((e) => e.event === 'read' && e.data.userId === alice.id && e.data.seq === 2), "alice's read cursor");
    assert.ok(b.events.some((e) => e.event === 'member.left' && e.data.userId === carol.id), "carol's departure");
    const daveNow = b.events.find((e) => e.event === 'member.changed' && e.data.member.userId === dave.id);
    assert.equal(daveNow?.data.member.role, 'admin', 'dave joined and was made admin: the member as he is now');
    assert.deepEqual(seqsOf(b, conv), [1, 2], 'no message delivered twice');

    // Converged: the next check brings nothing new.
    const before = b.events.length;
    await b.client.sync();
    assert.equal(b.events.length, before);
  });

  it('finds a lost last message by the periodic head check, with no later traffic', async () => {
    const a = sdk(server.wsUrl, alice.token);
    const b = sdk(server.wsUrl, bob.token, { headCheckIntervalMs: 200 });
    await Promise.all([a.client.connect(), b.client.connect()]);
    const conv = await sharedGroup(a, b, 'sdk-lost-last');
    await a.client.send(conv, 'first');
    await until(() => b.client.position(conv) === 1, 'bob at 1');
    let dropped = 0;
    b.drop = (f) => f.event === 'message.new' && f.data?.conversationId === conv && f.data.seq === 2 && ++dropped > 0;
    await a.client.send(conv, 'the last one before a quiet period');
    await until(() => dropped === 1, 'the live event was lost');
    b.drop = null;
    await until(() => b.client.position(conv) === 2, 'bob found seq 2 by himself', 10_000);
    assert.deepEqual(seqsOf(b, conv), [1, 2]);
    assert.equal(b.messages.at(-1)!.text, 'the last one before a quiet period');
  });

  it('in a browser, a tab becoming visible or the network coming back checks heads (no timer)', async () => {
    // The browser's two EventTargets, as the SDK looks for them; installed for this test only.
    const doc = Object.assign(new EventTarget(), { visibilityState: 'hidden' });
    const win = new EventTarget();
    const g = globalThis as Record<string, unknown>;
    g.document = doc;
    g.addEventListener = win.addEventListener.bind(win);
    g.removeEventListener = win.removeEventListener.bind(win);
    try {
      const a = sdk(server.wsUrl, alice.token);
      const b = sdk(server.wsUrl, bob.token, { headCheckIntervalMs: 0 });
      await Promise.all([a.client.connect(), b.client.connect()]);
      const conv = await sharedGroup(a, b, 'sdk-visible');
      await a.client.send(conv, 'first');
      await until(() => b.client.position(conv) === 1, 'bob at 1');
      let dropped = 0;
      b.drop = (f) => f.event === 'message.new' && f.data?.conversationId === conv && ++dropped > 0;
      await a.client.send(conv, 'lost while the tab was hidden');
      await until(() => dropped === 1, 'the live event was lost');
      doc.dispatchEvent(new Event('visibilitychange')); // still hidden: nothing to do
      doc.visibilityState = 'visible';
      doc.dispatchEvent(new Event('visibilitychange'));
      await until(() => b.client.position(conv) === 2, 'found when the tab became visible', 5000);

      await a.client.send(conv, 'lost while offline');
      await until(() => dropped === 2, 'the live event was lost');
      win.dispatchEvent(new Event('online'));
      await until(() => b.client.position(conv) === 3, 'found when the network came back', 5000);
      assert.deepEqual(seqsOf(b, conv), [1, 2, 3]);
    } finally {
      delete g.document;
      delete g.addEventListener;
      delete g.removeEventListener;
    }
  });

  it('a lost edit is found by the head check too', async () => {
    const a = sdk(server.wsUrl, alice.token);
    const b = sdk(server.wsUrl, bob.token, { headCheckIntervalMs: 200 });
    await Promise.all([a.client.connect(), b.client.connect()]);
    const conv = await sharedGroup(a, b, 'sdk-lost-edit');
    await a.client.send(conv, 'typo');
    await until(() => b.client.position(conv) === 1, 'bob at 1');
    await b.client.sync();
    let dropped = 0;
    b.drop = (f) => f.event === 'message.updated' && f.data?.conversationId === conv && ++dropped > 0;
    b.events.length = 0;
    await a.client.edit(conv, 1, 'fixed');
    await until(() => dropped === 1, 'the live event was lost');
    b.drop = null;
    await until(() => b.events.some((e) => e.event === 'message.updated' && e.data.text === 'fixed'), 'the edit, caught up', 10_000);
  });
});

describe('SDK catch-up against a small reply budget', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ ...FAST, PARLEY_LIMITS_MAX_REPLY_BYTES: '4096' });
  });
  after(async () => {
    await server.stop();
  });

  it('a fresh client learns every conversation although unknown takes several replies; conversations() pages too', async () => {
    const owner = await register(server, 'sdk-small-owner');
    const a = sdk(server.wsUrl, owner.token);
    await a.client.connect();
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push((await a.client.request('conversation.create', { name: `small ${i} `.padEnd(150, 's') })).conversation.id);
    a.client.close();

    const fresh = sdk(server.wsUrl, owner.token);
    const synced = new Promise<{ unknown: Array<{ id: string }> }>((resolve) => fresh.client.once('synced', resolve));
    await fresh.client.connect();
    const outcome = await synced;
    assert.deepEqual(new Set(outcome.unknown.map((c) => c.id)), new Set(ids));
    assert.deepEqual(new Set(fresh.client.positions().map((p) => p.conversationId)), new Set(ids));
    assert.ok(fresh.client.positions().every((p) => p.rev === 0));
    assert.deepEqual(new Set((await fresh.client.conversations()).map((c) => c.id)), new Set(ids));
  });
});

describe('SDK catch-up against a small frame limit', () => {
  const MAX_FRAME = 4096;
  let server: TestServer;
  before(async () => {
    // 100 conversations with UUID ids name ~7 KB of sync entries: one sync of all of them would not fit a frame.
    server = await startServer({ ...FAST, PARLEY_LIMITS_MAX_FRAME_BYTES: String(MAX_FRAME) });
  });
  after(async () => {
    await server.stop();
  });

  it('splits sync into frames that fit maxFrameBytes: 100 conversations caught up, every message once, no 1009', async () => {
    const [alice, bob] = await Promise.all([register(server, 'sdk-frame-alice'), register(server, 'sdk-frame-bob')]);
    const syncFrames: number[] = [];
    class Recording extends WebSocket {
      override send(data: any, ...rest: any[]): void {
        const text = String(data);
        if (text.includes('"type":"sync"')) syncFrames.push(Buffer.byteLength(text));
        (super.send as (...args: any[]) => void)(data, ...rest);
      }
    }
    const a = sdk(server.wsUrl, alice.token);
    const b = sdk(server.wsUrl, bob.token, { WebSocket: Recording as unknown as ParleyClientOptions['WebSocket'] });
    const errors: string[] = [];
    b.client.on('error', (e: any) => errors.push(String(e?.code ?? e)));
    await Promise.all([a.client.connect(), b.client.connect()]);
    const groups: string[] = [];
    for (let g = 0; g < 100; g++) {
      const { conversation } = await a.client.request('conversation.create', { name: `frame ${g}`, visibility: 'public' });
      await b.client.request('conversation.join', { conversationId: conversation.id });
      groups.push(conversation.id);
    }
    const entryBytes = Buffer.byteLength(JSON.stringify(b.client.positions()));
    assert.ok(entryBytes > MAX_FRAME, `one sync of all would be ${entryBytes} B`);
    b.client.close();
    syncFrames.length = 0;
    // Two messages in each group while Bob is away.
    for (const id of groups) await Promise.all([a.client.send(id, `one ${id}`), a.client.send(id, `two ${id}`)]);

    await b.client.connect();
    await until(() => groups.every((id) => b.client.position(id) === 2), 'bob caught up on every group', 30_000);
    for (const id of groups) assert.deepEqual(seqsOf(b, id), [1, 2], `each message of ${id} once`);
    assert.ok(syncFrames.length >= 2, `${syncFrames.length} sync frames`);
    assert.ok(syncFrames.every((n) => n <= MAX_FRAME), `sync frames of ${syncFrames.join(', ')} B`);
    assert.deepEqual(errors, []);
    assert.equal(b.disconnects, 1, 'only the close made by the test');
    assert.equal(b.client.state, 'open');

    // presence() splits its ids the same way: 300 ids of 30 characters (~10 KB) in frames of 4 KiB.
    const asked = [alice.id, ...Array.from({ length: 299 }, (_, i) => `sdk-frame-nobody-${i}`.padEnd(30, 'n'))];
    const presence = await b.client.presence(asked);
    assert.deepEqual(presence.map((p) => p.userId), [alice.id], 'only the user who shares a conversation, once');
    assert.equal(presence[0].online, true);
    assert.equal(b.client.state, 'open');

    // bans() reads every page of member.bans.
    await a.client.ban(groups[0], bob.id);
    assert.deepEqual((await a.client.bans(groups[0])).map((x) => x.userId), [bob.id]);
  });
});
