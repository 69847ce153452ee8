/**
 * The client SDK (packages/sdk) against a real server process: reconnects, catch-up, gap filling, the outbox, idempotent
 * retries, server crashes and restarts, refused tokens and graceful shutdowns. No fakes: the SDK speaks to `node
 * dist/cli.js serve` through the real `ws` package.
 *
 * To cut a connection from the outside, each client is given a subclass of `ws` (test/helpers/traced-websocket.ts) as
 * its documented `WebSocket` option, so that a test can `terminate()` the current socket (destroys the TCP socket: no
 * close frame, the SDK sees 1006), and it can drop one incoming frame while terminating the socket, which is how an
 * acknowledgement gets lost on a network.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { ParleyClient, ParleyClientError, type DisconnectInfo, type Message, type ParleyClientOptions } from '../../packages/sdk/src/index.js';
import { sleep, until as waitUntil } from '../helpers/raw-client.js';
import { tracedWebSocket, type Trace } from '../helpers/traced-websocket.js';
import { register, startServer, type TestServer } from '../helpers/server.js';

/** Limits high enough that bursts of a few hundred sends are not rate limited (the SDK would retry, only slower). */
const FAST = {
  PARLEY_LIMITS_USER_MESSAGE_RATE_PER_SECOND: '5000',
  PARLEY_LIMITS_USER_MESSAGE_RATE_BURST: '5000',
  PARLEY_LIMITS_CONNECTION_RATE_PER_SECOND: '5000',
  PARLEY_LIMITS_CONNECTION_RATE_BURST: '5000',
  // Tokens that expire in a second are closed (4004) at exp + this tolerance.
  PARLEY_AUTH_JWT_CLOCK_TOLERANCE_SECONDS: '0',
  PARLEY_SHUTDOWN_DRAIN_MS: '2000',
};

interface TestClient {
  client: ParleyClient;
  trace: Trace;
  /** Every `message` event, in delivery order. */
  messages: Message[];
  disconnects: DisconnectInfo[];
  errors: Error[];
  /** The current socket, cut abruptly (TCP destroyed, no close frame). */
  cut(): void;
}

const clients: TestClient[] = [];
/** Reconnect delays of every test client: short, so that tests reconnect quickly. */
const BACKOFF = { initialMs: 10, maxMs: 100 } as const;

function sdk(url: string, token: ParleyClientOptions['token'], extra: Partial<ParleyClientOptions> = {}): TestClient {
  const { WebSocket: WS, trace } = tracedWebSocket();
  const client = new ParleyClient({ url, token, WebSocket: WS, backoff: BACKOFF, requestTimeoutMs: 5000, ...extra });
  const c: TestClient = {
    client, trace, messages: [], disconnects: [], errors: [],
    cut: () => trace.sockets.at(-1)!.terminate(),
  };
  client.on('message', (m) => c.messages.push(m));
  client.on('disconnect', (d) => c.disconnects.push(d));
  client.on('error', (e) => c.errors.push(e));
  clients.push(c);
  return c;
}

const until = (pred: () => boolean, what: string, ms = 10_000): Promise<void> => waitUntil(pred, what, ms, 5);

/**
 * An ordered barrier, to prove that nothing more (no duplicate) will be delivered without waiting for "long enough":
 * `from` sends one more message to the conversation and this waits until every one of `to` has delivered it. The
 * server sends a conversation's events to a socket in seq order, after every frame it queued there before (replies to
 * catch-up requests included), and the SDK delivers in seq order; so whatever was going to be delivered before the
 * barrier has been by then. Returns the barrier message (its seq is the new end of the conversation).
 */
async function deliveryBarrier(from: TestClient, to: TestClient[], conversationId: string): Promise<Message> {
  const barrier = await from.client.send(conversationId, 'barrier');
  await until(() => to.every((c) => c.client.position(conversationId) === barrier.seq), `every client to deliver the barrier (seq ${barrier.seq})`, 20_000);
  return barrier;
}

const seqsOf = (c: TestClient, conversationId: string): number[] => c.messages.filter((m) => m.conversationId === conversationId).map((m) => m.seq);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Every message of a conversation, read through the SDK's own history paging (oldest first). */
async function fullHistory(c: TestClient, conversationId: string): Promise<Message[]> {
  const out: Message[] = [];
  for (let i = 0; i < 1000; i++) {
    const page = await c.client.historyAfter(conversationId, out.at(-1)?.seq ?? 0, 100);
    out.push(...page.messages);
    if (!page.more) return out;
  }
  throw new Error('history did not end within 1000 pages');
}

/** A port that was free a moment ago (listen on 0, read it, close). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** A server on a fixed port and data folder, so that it can be killed and started again at the same URL. */
async function restartableServer(): Promise<{ server: TestServer; port: number; dataDir: string; restart(): Promise<TestServer> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-sdk-'));
  const port = await freePort();
  const holder = {
    server: await startServer(FAST, { dataDir, port }),
    port,
    dataDir,
    async restart() {
      holder.server = await startServer(FAST, { dataDir, port });
      return holder.server;
    },
  };
  return holder;
}

/** alice creates a public group and bob joins it through his SDK client (so his client tracks it from seq 0). */
async function sharedGroup(alice: TestClient, bob: TestClient, name: string): Promise<string> {
  const { conversation } = await alice.client.request('conversation.create', { name, visibility: 'public' });
  await bob.client.request('conversation.join', { conversationId: conversation.id });
  return conversation.id;
}

afterEach(() => {
  for (const c of clients.splice(0)) c.client.close();
});

describe('SDK against a real server', () => {
  let server: TestServer;
  let alice: { id: string; token: string };
  let bob: { id: string; token: string };
  before(async () => {
    server = await startServer(FAST);
    alice = await register(server, 'sdk-alice');
    bob = await register(server, 'sdk-bob');
  });
  after(async () => {
    await server.stop();
  });

  it('after an abrupt disconnect, reconnects by itself and delivers 1..N exactly once, in order (200 messages)', async () => {
    const a = sdk(server.wsUrl, alice.token);
    // Bob's reconnect waits for `away` to be opened (the SDK asks its token function before each connect): without
    // it, a reconnect that wins the race sees welcome's positions equal to its own and rightly skips the sync.
    let away: Promise<void> | null = null;
    let back = (): void => {};
    const b = sdk(server.wsUrl, async () => {
      await away;
      return bob.token;
    });
    await Promise.all([a.client.connect(), b.client.connect()]);
    const conv = await sharedGroup(a, b, 'sdk-sync');

    const sent: Message[] = [];
    for (let batch = 0; batch < 10; batch++) {
      if (batch === 2) {
        away = new Promise((resolve) => (back = resolve));
        b.cut(); // mid-stream: 1..40 arrived live, 41..60 are sent while bob is away, the rest live or while he syncs
        await until(() => b.disconnects.length === 1, 'bob to notice the cut');
      }
      sent.push(...(await Promise.all(range(1, 20).map((i) => a.client.send(conv, `sync ${batch}-${i}`)))));
      if (batch === 2) back();
    }
    assert.deepEqual(sent.map((m) => m.seq).sort((x, y) => x - y), range(1, 200));

    await until(() => seqsOf(b, conv).length >= 200, 'bob to catch up');
    const barrier = await deliveryBarrier(a, [a, b], conv); // anything extra (a duplicate) would have come before it
    assert.deepEqual(seqsOf(b, conv), range(1, 201), 'each of 1..200 once, in order (then the barrier)');
    const bySeq = new Map([...sent, barrier].map((m) => [m.seq, m]));
    for (const m of b.messages) assert.equal(m.id, bySeq.get(m.seq)!.id);
    assert.ok(b.disconnects.length >= 1);
    assert.deepEqual(b.disconnects[0], { code: 1006, reason: '', willReconnect: true });
    assert.ok(b.trace.sockets.length >= 2, 'bob opened a new connection by himself');
    assert.ok(b.trace.sent.some((f) => f.type === 'sync' && f.data.conversations.some((p: any) => p.conversationId === conv && p.afterSeq > 0)),
      'the reconnect synced from the delivered position');
    assert.equal(b.client.state, 'open');
    // alice's own sends reached her `message` event once each, in order, too.
    assert.deepEqual(seqsOf(a, conv), range(1, 201));
  });

  it("skips the reconnect's sync when welcome's positions equal its own, and syncs when something was missed", async () => {
    const a = sdk(server.wsUrl, alice.token);
    const b = sdk(server.wsUrl, bob.token);
    await Promise.all([a.client.connect(), b.client.connect()]);
    const conv = await sharedGroup(a, b, 'sdk-skip');
    await a.client.send(conv, 'before the cut');
    await until(() => seqsOf(b, conv).length === 1, 'bob to receive it');
    await b.client.sync(); // store the current rev
    const syncsOf = () => b.trace.sent.filter((f) => f.type === 'sync').length;

    // 1. Nothing missed: welcome shows bob's own positions, so no sync is sent.
    const quiet = syncsOf();
    const synced = new Promise((r) => b.client.once('synced', r));
    b.cut();
    await until(() => b.trace.sockets.length === 2 && b.client.state === 'open', 'bob to reconnect');
    assert.deepEqual(await synced, { unknown: [], removed: [] });
    assert.equal(syncsOf(), quiet, 'no sync round trip');

    // 2. Something missed: the welcome position is ahead, so the sync runs and delivers it.
    const before = syncsOf();
    b.client.close(); // away for sure while alice sends (the positions stay)
    await a.client.send(conv, 'while bob was away');
    await b.client.connect();
    await until(() => seqsOf(b, conv).length === 2, 'bob to catch up');
    assert.ok(syncsOf() > before, 'the reconnect synced');
    // The sender's own sends reached its `message` event from the receipts (its connection gets no message.new).
    assert.deepEqual(seqsOf(a, conv), [1, 2]);
    assert.equal(a.trace.received.filter((f) => f.event === 'message.new').length, 0);
  });

  it('survives repeated cuts, also in the middle of its catch-up (small sync pages): still 1..N exactly once', async () => {
    const a = sdk(server.wsUrl, alice.token);
    const b = sdk(server.wsUrl, bob.token, { syncPageSize: 7 });
    await Promise.all([a.client.connect(), b.client.connect()]);
    const conv = await sharedGroup(a, b, 'sdk-cuts');
    // Cut bob again whenever a catch-up page request goes out, up to 8 times: the sync or history.after is lost mid-way.
    let cuts = 0;
    const cutOnCatchUp = setInterval(() => {
      const last = b.trace.sent.at(-1);
      if (cuts < 8 && b.client.state === 'open' && (last?.type === 'history.after' || last?.type === 'sync')) {
        cuts++;
        b.cut();
      }
    }, 3);
    try {
      for (let batch = 0; batch < 10; batch++) {
        if (b.client.state === 'open') b.cut();
        await Promise.all(range(1, 30).map((i) => a.client.send(conv, `cuts ${batch}-${i}`)));
      }
      await until(() => b.client.position(conv) === 300, 'bob to catch up', 20_000);
    } finally {
      clearInterval(cutOnCatchUp);
    }
    await deliveryBarrier(a, [b], conv);
    assert.deepEqual(seqsOf(b, conv), range(1, 301));
    assert.ok(b.disconnects.length >= 5, `cut ${b.disconnects.length} times`);
    assert.ok(cuts >= 1, 'at least one cut hit a catch-up request in flight');
  });

  it('fills a live gap: a position behind the server is fetched and delivered in order, exactly once', async () => {
    const a = sdk(server.wsUrl, alice.token);
    const b = sdk(server.wsUrl, bob.token);
    await Promise.all([a.client.connect(), b.client.connect()]);
    const conv = await sharedGroup(a, b, 'sdk-gap');
    for (let i = 1; i <= 10; i++) await a.client.send(conv, `gap ${i}`);
    await until(() => b.client.position(conv) === 10, 'bob at 10');
    const n = 10;

    // As an app restoring an older position would: bob's client now stands at n-5 while the server is at n.
    b.client.forget(conv);
    b.client.track(conv, n - 5);
    b.messages.length = 0;
    const raw: number[] = [];
    b.client.on('message.new', (m) => raw.push(m.seq));
    const requestsBefore = b.trace.sent.length;
    // New messages arrive live: the first one reveals the gap n-4..n; the others race the gap fill.
    await Promise.all(range(1, 5).map((i) => a.client.send(conv, `gap live ${i}`)));
    await until(() => b.client.position(conv) === n + 5, 'bob at n+5');
    await deliveryBarrier(a, [b], conv); // seq n+6, live
    assert.deepEqual(seqsOf(b, conv), range(n - 4, n + 6), 'the gap, then the live messages, each once, in seq order');
    assert.deepEqual(raw.sort((x, y) => x - y), range(n + 1, n + 6), 'message.new is the raw wire event: only the live ones');
    const fills = b.trace.sent.slice(requestsBefore).filter((f) => f.type === 'history.after');
    assert.ok(fills.length >= 1, 'the SDK fetched the gap');
    assert.equal(fills[0].data.afterSeq, n - 5);
    assert.equal(fills[0].data.conversationId, conv);
  });

  it('delivers exactly once while both sides send concurrently (own acks overtaking live events)', async () => {
    const a = sdk(server.wsUrl, alice.token);
    const b = sdk(server.wsUrl, bob.token);
    await Promise.all([a.client.connect(), b.client.connect()]);
    const conv = await sharedGroup(a, b, 'sdk-both');
    const results = await Promise.all([
      ...range(1, 60).map((i) => a.client.send(conv, `a${i}`)),
      ...range(1, 60).map((i) => b.client.send(conv, `b${i}`)),
    ]);
    assert.deepEqual(results.map((m) => m.seq).sort((x, y) => x - y), range(1, 120));
    await until(() => b.client.position(conv) === 120 && a.client.position(conv) === 120, 'both at 120');
    await deliveryBarrier(a, [a, b], conv);
    assert.deepEqual(seqsOf(a, conv), range(1, 121));
    assert.deepEqual(seqsOf(b, conv), range(1, 121));
  });

  it('a direct conversation opened by a peer is delivered from seq 1 (tracked from conversation.updated)', async () => {
    const a = sdk(server.wsUrl, alice.token);
    const carol = await register(server, 'sdk-carol');
    const c = sdk(`${server.url}/ws`, carol.token); // an http:// URL is mapped to ws://
    await Promise.all([a.client.connect(), c.client.connect()]);
    assert.equal(c.trace.sockets[0].url, server.wsUrl);
    await new Promise((r) => c.client.once('synced', r));
    const first = await a.client.send({ to: carol.id }, 'hello carol');
    const second = await a.client.send({ to: carol.id }, 'again');
    assert.equal(first.seq, 1);
    await until(() => c.messages.length === 2, 'carol to receive both');
    assert.deepEqual(c.messages.map((m) => [m.conversationId, m.seq, m.text]), [[first.conversationId, 1, 'hello carol'], [second.conversationId, 2, 'again']]);
  });

  it('a fresh client learns its conversations through sync (unknown), from their lastSeq: nothing older is delivered', async () => {
    const a = sdk(server.wsUrl, alice.token);
    const b = sdk(server.wsUrl, bob.token);
    await Promise.all([a.client.connect(), b.client.connect()]);
    const conv = await sharedGroup(a, b, 'sdk-fresh');
    for (let i = 1; i <= 3; i++) await a.client.send(conv, `old ${i}`);
    b.client.close();

    const fresh = sdk(server.wsUrl, bob.token);
    const synced = new Promise<{ unknown: Array<{ id: string; lastSeq: number }> }>((r) => fresh.client.once('synced', r));
    await fresh.client.connect();
    const info = await synced;
    assert.equal(info.unknown.find((c) => c.id === conv)?.lastSeq, 3);
    assert.equal(fresh.client.position(conv), 3);
    const next = await a.client.send(conv, 'new');
    await until(() => fresh.client.position(conv) === 4, 'the new message');
    assert.deepEqual(fresh.messages.filter((m) => m.conversationId === conv).map((m) => m.id), [next.id]);
  });

  it('a retry with the same idempotency key returns the stored message; a lost ack is retried once and stored once', async () => {
    const a = sdk(server.wsUrl, alice.token);
    const b = sdk(server.wsUrl, bob.token);
    await Promise.all([a.client.connect(), b.client.connect()]);
    const conv = await sharedGroup(a, b, 'sdk-idem');

    // 1. An explicit retry, as an app that persisted the draft's key would make.
    const key = 'sdk-idem-key-1';
    const first = await b.client.send(conv, 'only once', { n: 1 }, { key });
    const again = await b.client.send(conv, 'only once', { n: 1 }, { key });
    assert.equal(again.id, first.id);
    assert.equal(again.seq, first.seq);
    assert.equal(again.key, key);

    // 2. A real lost ack: the server stores the send, its reply is lost with the connection; the outbox resends the
    // same key on the next connection and the promise resolves with the original message.
    let lost = 0;
    b.trace.dropIncoming = (frame, ws) => {
      // The receipt of the next send (it names no key: the sender holds it).
      if (lost === 0 && frame.result?.seq === first.seq + 1 && frame.result?.duplicate === false) {
        lost++;
        ws.terminate();
        return true;
      }
      return false;
    };
    const acked = await b.client.send(conv, 'ack lost', undefined, { key: 'sdk-idem-key-2' });
    b.trace.dropIncoming = null;
    assert.equal(lost, 1);
    const sends = b.trace.sent.filter((f) => f.type === 'message.send' && f.data.key === 'sdk-idem-key-2');
    assert.equal(sends.length, 2, 'sent twice, over two connections');
    assert.equal(acked.seq, first.seq + 1);

    const history = await fullHistory(a, conv);
    assert.deepEqual(history.map((m) => m.text), ['only once', 'ack lost']);
    await until(() => a.messages.length === 2 && b.client.position(conv) === 2, 'delivery');
    await deliveryBarrier(a, [a, b], conv);
    assert.deepEqual(seqsOf(a, conv), [1, 2, 3], 'alice got each once');
    assert.deepEqual(seqsOf(b, conv), [1, 2, 3], 'bob got each once, his retries included');
  });

  it('maps server refusals to ParleyClientError; refuses an oversized frame locally', async () => {
    const b = sdk(server.wsUrl, bob.token);
    await b.client.connect();
    const carol = await register(server, 'sdk-carol-2');
    const c = sdk(server.wsUrl, carol.token);
    await c.client.connect();
    const { conversation } = await c.client.request('conversation.create', { name: 'private', visibility: 'private' });
    await assert.rejects(b.client.request('conversation.get', { conversationId: conversation.id }), (e: unknown) => {
      assert.ok(e instanceof ParleyClientError);
      assert.equal(e.code, 'NOT_MEMBER');
      assert.equal(e.temporary, false);
      assert.equal(e.requestType, 'conversation.get');
      return true;
    });
    await assert.rejects(b.client.send(conversation.id, 'hi'), (e: unknown) => e instanceof ParleyClientError && e.code === 'NOT_MEMBER');
    const big = 'x'.repeat(b.client.welcome!.limits.maxFrameBytes + 10);
    await assert.rejects(b.client.send(conversation.id, big), (e: unknown) => e instanceof ParleyClientError && e.code === 'MESSAGE_TOO_LARGE' && !e.temporary);
    assert.equal(b.client.state, 'open', 'no 1009 close: the frame never left');
    assert.equal(b.trace.sockets.length, 1);
    b.client.close();
    assert.equal(b.client.state, 'closed');
    await assert.rejects(b.client.ping(), (e: unknown) => e instanceof ParleyClientError && e.code === 'CLOSED');
    await assert.rejects(b.client.send(conversation.id, 'after close'), (e: unknown) => e instanceof ParleyClientError && e.code === 'CLOSED');
  });

  it('a refused (garbage) token: connect() rejects with UNAUTHORIZED, queued sends fail, no retry', async () => {
    const x = sdk(server.wsUrl, 'garbage.not-a.jwt');
    const connecting = x.client.connect();
    const queued = x.client.send({ to: bob.id }, 'never');
    await assert.rejects(connecting, (e: unknown) => {
      assert.ok(e instanceof ParleyClientError);
      assert.equal(e.code, 'CLOSED');
      assert.equal(e.closeCode, 4500);
      assert.equal(e.closeName, 'UNAUTHORIZED');
      assert.equal(e.temporary, false);
      return true;
    });
    await assert.rejects(queued, (e: unknown) => e instanceof ParleyClientError && e.closeCode === 4500);
    assert.equal(x.client.state, 'closed');
    assert.equal(x.disconnects.length, 1);
    assert.equal(x.disconnects[0].code, 4500);
    assert.equal(x.disconnects[0].willReconnect, false);
    // Time itself is the condition: a reconnect would be a timer the SDK sets at the close, due within the backoff
    // ceiling (BACKOFF.maxMs). This wait starts after the close and is due later than any such timer; Node runs due
    // timers in order of due time, so however late a loaded machine runs them, a reconnect timer would fire first.
    await sleep(10 * BACKOFF.maxMs);
    assert.equal(x.trace.sockets.length, 1, `no further connection attempt within ${10 * BACKOFF.maxMs} ms`);
    assert.equal(x.client.state, 'closed');
  });

  it('reconnects after 4004 (token expired) with a fresh token from the token function', async () => {
    let calls = 0;
    const tokens: string[] = [];
    const x = sdk(server.wsUrl, async () => {
      calls++;
      // exp is whole seconds (now rounded down + ttl): 2 s leaves at least one to connect in before the 4004.
      const t = await server.token(bob.id, { expiresInSeconds: calls === 1 ? 2 : 3600 });
      tokens.push(t);
      return t;
    });
    await x.client.connect();
    await until(() => x.disconnects.length === 1, 'the 4004 close', 5000);
    assert.deepEqual(x.disconnects[0], { code: 4004, reason: x.disconnects[0].reason, willReconnect: true });
    await until(() => x.client.state === 'open' && x.trace.sockets.length === 2, 'the reconnect');
    assert.equal(calls, 2);
    assert.ok(x.trace.sockets[1].protocol === 'parley.v1');
    assert.equal((await x.client.ping()) !== undefined, true);
  });

  it('stops after 4004 when the token is a fixed string (it cannot be refreshed), and says so', async () => {
    const x = sdk(server.wsUrl, await server.token(bob.id, { expiresInSeconds: 2 }));
    await x.client.connect();
    await until(() => x.disconnects.length === 1, 'the 4004 close', 5000);
    assert.deepEqual(x.disconnects[0], { code: 4004, reason: x.disconnects[0].reason, willReconnect: false });
    assert.equal(x.client.state, 'closed');
    // As for 4500 above: a reconnect timer would fire long before this one.
    await sleep(10 * BACKOFF.maxMs);
    assert.equal(x.trace.sockets.length, 1, 'no attempt with the expired token');
  });
});

describe('SDK across server crashes and restarts', () => {
  let alice: { id: string; token: string };
  let bob: { id: string; token: string };
  let srv: Awaited<ReturnType<typeof restartableServer>>;
  before(async () => {
    srv = await restartableServer();
    alice = await register(srv.server, 'crash-alice');
    bob = await register(srv.server, 'crash-bob');
  });
  after(async () => {
    await srv.server.stop();
    rmSync(srv.dataDir, { recursive: true, force: true });
  });

  it('offline sends queue while the server is down and are stored exactly once after it restarts', async () => {
    const url = srv.server.wsUrl;
    const a = sdk(url, alice.token);
    const b = sdk(url, bob.token);
    await Promise.all([a.client.connect(), b.client.connect()]);
    const conv = await sharedGroup(a, b, 'offline');
    await a.client.send(conv, 'before');

    await srv.server.kill('SIGKILL');
    await until(() => b.client.state === 'reconnecting' && a.client.state === 'reconnecting', 'both to notice the crash');
    const disconnectsAtCrash = b.disconnects.length;
    const texts = range(1, 10).map((i) => `offline ${i}`);
    const promises = texts.map((t) => b.client.send(conv, t));
    assert.equal(b.client.pendingSends().length, 10);
    assert.ok(b.client.pendingSends().every((p) => p.state === 'queued' && p.conversationId === conv));
    await until(() => b.disconnects.length >= disconnectsAtCrash + 3, 'a few failed reconnect attempts');
    assert.equal(b.client.pendingSends().length, 10);
    assert.ok(b.client.pendingSends().every((p) => p.state === 'queued'), 'failed attempts keep the sends queued');

    await srv.restart();
    const stored = await Promise.all(promises);
    assert.deepEqual(stored.map((m) => m.text), texts);
    assert.deepEqual(stored.map((m) => m.seq).sort((x, y) => x - y), range(2, 11));
    assert.ok(stored.every((m) => m.senderId === bob.id && m.conversationId === conv));
    assert.deepEqual(b.client.pendingSends(), []);
    await a.client.connect(); // alice reconnects by herself too; wait for it
    const history = await fullHistory(a, conv);
    assert.deepEqual(history.map((m) => m.text).sort(), ['before', ...texts].sort(), 'each text stored once');
    await until(() => a.client.position(conv) === 11 && b.client.position(conv) === 11, 'delivery to both');
    await deliveryBarrier(a, [a, b], conv);
    assert.deepEqual(seqsOf(a, conv), range(1, 12));
    assert.deepEqual(seqsOf(b, conv), range(1, 12));
  });

  it('SIGKILL with both clients connected and sends in flight: both reconnect by themselves, nothing acknowledged is lost, nothing is stored twice', async () => {
    const url = srv.server.wsUrl;
    const a = sdk(url, alice.token);
    const b = sdk(url, bob.token);
    await Promise.all([a.client.connect(), b.client.connect()]);
    const conv = await sharedGroup(a, b, 'crash');
    const acked = await a.client.send(conv, 'acknowledged before the kill');

    // 40 sends go out; the server is killed once some are acknowledged, so others are cut off mid-flight.
    const ackedBeforeKill: Message[] = [];
    const promises = range(1, 40).map((i) => a.client.send(conv, `in flight ${i}`).then((m) => {
      ackedBeforeKill.push(m);
      return m;
    }));
    await until(() => ackedBeforeKill.length >= 5, 'a few acks');
    await srv.server.kill('SIGKILL');
    const ackedAtKill = [...ackedBeforeKill];
    await until(() => a.client.state !== 'open' && b.client.state !== 'open', 'both to notice the crash');
    await srv.restart();

    const stored = await Promise.all(promises);
    await until(() => a.client.state === 'open' && b.client.state === 'open', 'both reconnected');
    const history = await fullHistory(b, conv);
    assert.ok(history.some((m) => m.id === acked.id && m.text === 'acknowledged before the kill'), 'acknowledged means stored');
    for (const m of ackedAtKill) assert.ok(history.some((h) => h.id === m.id), `acked ${m.text} survived`);
    const texts = history.map((m) => m.text);
    assert.equal(new Set(texts).size, texts.length, 'no text stored twice');
    assert.equal(history.length, 41);
    assert.deepEqual(history.map((m) => m.seq), range(1, 41));
    assert.deepEqual(stored.map((m) => m.text), range(1, 40).map((i) => `in flight ${i}`));

    // Both catch up to the end, each message once, and live delivery works on the new connections.
    const after = await a.client.send(conv, 'after the restart');
    await until(() => b.client.position(conv) === after.seq && a.client.position(conv) === after.seq, 'catch-up');
    const barrier = await deliveryBarrier(a, [a, b], conv);
    assert.deepEqual(seqsOf(a, conv), range(1, barrier.seq));
    assert.deepEqual(seqsOf(b, conv), range(1, barrier.seq));
    assert.ok(a.disconnects.every((d) => d.willReconnect) && b.disconnects.every((d) => d.willReconnect));
  });

  it('a graceful shutdown closes with 4000; the client reconnects when a server is back on that port', async () => {
    const url = srv.server.wsUrl;
    const b = sdk(url, bob.token);
    const first = await b.client.connect();
    const code = await srv.server.stop();
    assert.equal(code, 0);
    assert.deepEqual(b.disconnects[0], { code: 4000, reason: b.disconnects[0].reason, willReconnect: true });
    assert.notEqual(b.client.state, 'closed');
    // While no server listens, attempts are refused: wait for two of them, so the reconnect below follows refusals.
    await until(() => b.disconnects.length >= 3, 'two refused reconnect attempts');
    await srv.restart();
    const welcome = await b.client.connect();
    assert.notEqual(welcome.connectionId, first.connectionId);
    assert.equal(b.client.state, 'open');
    await b.client.ping();
    assert.ok(b.disconnects.every((d) => d.willReconnect), 'every close on the way (4000, then refused connections) was retried');
  });
});

describe('SDK against a frozen server (SIGSTOP)', () => {
  let server: TestServer;
  let bob: { id: string; token: string };
  before(async () => {
    server = await startServer({ ...FAST, PARLEY_HEARTBEAT_INTERVAL_MS: '200' });
    bob = await register(server, 'frozen-bob');
  });
  after(async () => {
    server.process.kill('SIGCONT');
    await server.stop();
  });

  it('a request without a reply times out; the heartbeat watchdog drops the dead connection (4001) and reconnects after SIGCONT', async () => {
    const x = sdk(server.wsUrl, bob.token, { requestTimeoutMs: 300 });
    const first = await x.client.connect();
    assert.equal(first.heartbeatIntervalMs, 200);
    server.process.kill('SIGSTOP');
    try {
      await assert.rejects(x.client.request('ping', {}, { timeoutMs: 100 }), (e: unknown) => {
        assert.ok(e instanceof ParleyClientError);
        assert.equal(e.code, 'TIMEOUT');
        assert.equal(e.temporary, true);
        return true;
      });
      await until(() => x.disconnects.length >= 1, 'the watchdog to drop the connection', 5000);
      assert.deepEqual(x.disconnects[0], { code: 4001, reason: x.disconnects[0].reason, willReconnect: true });
      assert.notEqual(x.client.state, 'open');
      // The frozen server's kernel still accepts TCP connections, so a reconnect attempt hangs in the handshake: the
      // client must give up on it (no welcome within requestTimeoutMs) and try again, not wait forever.
      await until(() => x.disconnects.length >= 3, 'hung connection attempts to be abandoned and retried', 5000);
      for (const d of x.disconnects.slice(1)) assert.deepEqual(d, { code: 1006, reason: d.reason, willReconnect: true });
      assert.ok(x.trace.sockets.length >= 3);
    } finally {
      server.process.kill('SIGCONT');
    }
    const welcome = await x.client.connect();
    assert.notEqual(welcome.connectionId, first.connectionId);
    await x.client.ping();
  });
});

describe('SDK against a rate-limited server', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ PARLEY_LIMITS_USER_MESSAGE_RATE_PER_SECOND: '10', PARLEY_LIMITS_USER_MESSAGE_RATE_BURST: '5' });
  });
  after(async () => {
    await server.stop();
  });

  it('RATE_LIMITED sends are retried with the same key until stored, each exactly once', async () => {
    const alice = await register(server, 'rl-alice');
    const a = sdk(server.wsUrl, alice.token);
    await a.client.connect();
    const { conversation } = await a.client.request('conversation.create', { name: 'rate', visibility: 'public' });
    const texts = range(1, 15).map((i) => `rl ${i}`);
    const stored = await Promise.all(texts.map((t, i) => a.client.send(conversation.id, t, { i })));
    assert.deepEqual(stored.map((m) => m.text), texts);
    assert.deepEqual(stored.map((m) => m.meta), texts.map((_, i) => ({ i })));
    const sends = a.trace.sent.filter((f) => f.type === 'message.send');
    assert.ok(sends.length > 15, `some sends were refused and retried (${sends.length} frames for 15 messages)`);
    const keysByText = new Map<string, Set<string>>();
    for (const f of sends) keysByText.set(f.data.text, (keysByText.get(f.data.text) ?? new Set()).add(f.data.key));
    assert.ok([...keysByText.values()].every((keys) => keys.size === 1), 'every retry used its message\'s key');
    const history = await fullHistory(a, conversation.id);
    assert.deepEqual(history.map((m) => m.text).sort(), [...texts].sort());
    await until(() => a.client.position(conversation.id) === 15, 'delivery');
    assert.deepEqual(seqsOf(a, conversation.id), range(1, 15));
  });

  it('gives a refused request the server\'s retryAfterMs, and the outbox waits at least that long before resending', async () => {
    const bob = await register(server, 'rl-bob');
    const b = sdk(server.wsUrl, bob.token);
    await b.client.connect();
    const { conversation } = await b.client.request('conversation.create', { name: 'rate-after', visibility: 'public' });
    // Spend the burst with raw requests until one is refused (bounded: the burst is 5).
    let refused: any = null;
    for (let i = 0; i < 20 && !refused; i++) {
      await b.client.request('message.send', { conversationId: conversation.id, key: `raw-${i}`, text: 'x' }).catch((err) => (refused = err));
    }
    assert.ok(refused, 'a send was refused for rate');
    assert.equal(refused.code, 'RATE_LIMITED');
    assert.ok(Number.isInteger(refused.retryAfterMs) && refused.retryAfterMs >= 1, `retryAfterMs: ${refused.retryAfterMs}`);
    // Six sends at once against an emptied burst of 5: several are refused. Each refused attempt's next attempt (same
    // key) comes no sooner than the retryAfterMs that refused it.
    const sendsBefore = b.trace.sent.length;
    const texts = range(1, 6).map((i) => `after the wait ${i}`);
    await Promise.all(texts.map((t) => b.client.send(conversation.id, t)));
    const attempts = b.trace.sent.slice(sendsBefore).filter((f) => f.type === 'message.send');
    const refusals = b.trace.received.filter((f) => f.error?.code === 'RATE_LIMITED' && attempts.some((a) => a.id === f.id));
    assert.ok(refusals.length >= 1, 'some outbox sends were refused for rate');
    for (const refusal of refusals) {
      const key = attempts.find((a) => a.id === refusal.id)!.data.key;
      const next = attempts.find((a) => a.data.key === key && a.at! >= refusal.at! && a.id !== refusal.id)!;
      assert.ok(next, 'the refused send was sent again');
      assert.ok(next.at! - refusal.at! >= refusal.error.retryAfterMs - 5, `resent ${next.at! - refusal.at!} ms after a ${refusal.error.retryAfterMs} ms retryAfterMs`);
    }
  });
});
