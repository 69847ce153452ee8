/**
 * Exactly-once across clients, against a real server process: a client that starts from the position store an earlier
 * client saved (a page reload, a process restart) delivers nothing that one delivered and catches up what it missed,
 * edits included; and the browser hooks: a tab that becomes visible again, or a browser that comes back online,
 * re-syncs and so finds a lost last message without waiting for the periodic head check.
 *
 * Frames are dropped and requests observed through the real `ws` class, subclassed (test/helpers/traced-websocket.ts).
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  localStoragePositions, memoryPositions, ParleyClient, type Message, type ParleyClientOptions, type StorageLike,
} from '../../packages/sdk/src/index.js';
import { until } from '../helpers/raw-client.js';
import { register, startServer, type TestServer } from '../helpers/server.js';
import { tracedWebSocket, type Trace } from '../helpers/traced-websocket.js';

interface TestClient {
  client: ParleyClient;
  trace: Trace;
  messages: Message[];
  updated: Message[];
  errors: Error[];
}

const clients: ParleyClient[] = [];

function sdk(server: TestServer, token: string, extra: Partial<ParleyClientOptions> = {}): TestClient {
  const { WebSocket, trace } = tracedWebSocket();
  // No periodic head check: a test that needs a sync makes it happen.
  const client = new ParleyClient({ url: server.wsUrl, token, WebSocket, backoff: { initialMs: 10, maxMs: 100 }, headCheckIntervalMs: 0, ...extra });
  const c: TestClient = { client, trace, messages: [], updated: [], errors: [] };
  client.on('message', (m) => c.messages.push(m));
  client.on('message.updated', (m) => c.updated.push(m));
  client.on('error', (e) => c.errors.push(e));
  clients.push(client);
  return c;
}

/** Connects and waits for the end of the catch-up that follows `welcome`. */
async function connected(c: TestClient): Promise<void> {
  const synced = new Promise((resolve) => c.client.once('synced', resolve));
  await c.client.connect();
  await synced;
}

const seqs = (c: TestClient, conversationId: string): number[] => c.messages.filter((m) => m.conversationId === conversationId).map((m) => m.seq);

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

describe('SDK delivery positions across clients', () => {
  let server: TestServer;
  let alice: { id: string; token: string };
  let bob: { id: string; token: string };
  before(async () => {
    server = await startServer();
    alice = await register(server, 'pos-alice');
    bob = await register(server, 'pos-bob');
  });
  after(async () => {
    await server.stop();
  });

  it('a new client with the same store delivers nothing already delivered, and catches up messages and edits it missed', async () => {
    const a = sdk(server, alice.token);
    await connected(a);
    const { conversation } = await a.client.request('conversation.create', { name: 'positions', visibility: 'public' });
    const conv = conversation.id;

    const store = memoryPositions();
    const first = sdk(server, bob.token, { positions: store });
    await connected(first);
    await first.client.request('conversation.join', { conversationId: conv });
    for (let i = 1; i <= 5; i++) await a.client.send(conv, `m${i}`);
    await until(() => first.client.position(conv) === 5, 'the first client to deliver 1..5');
    assert.deepEqual(seqs(first, conv), [1, 2, 3, 4, 5]);
    first.client.close(); // the page goes away

    for (let i = 6; i <= 8; i++) await a.client.send(conv, `m${i}`);
    await a.client.edit(conv, 3, 'm3, edited');

    const second = sdk(server, bob.token, { positions: store });
    await connected(second);
    assert.deepEqual(seqs(second, conv), [6, 7, 8], 'only what the first client did not deliver');
    assert.deepEqual(second.messages.map((m) => m.text), ['m6', 'm7', 'm8']);
    assert.deepEqual(second.updated.map((m) => [m.seq, m.text]), [[3, 'm3, edited']], 'the edit made while away');
    assert.deepEqual(second.errors, []);

    // A third client with the same store, nothing having happened since: welcome shows nothing was missed, so it does
    // not even sync; and it delivers nothing.
    second.client.close();
    const third = sdk(server, bob.token, { positions: store });
    await connected(third);
    assert.deepEqual(third.messages, []);
    assert.deepEqual(third.trace.sent.filter((f) => f.type === 'sync'), [], 'no sync: the stored positions equal welcome');

    // Without the store (a fresh client) it starts from the newest message: nothing old is delivered either, but
    // only because it knew nothing; messages from now on are delivered.
    const fresh = sdk(server, bob.token);
    await connected(fresh);
    await a.client.send(conv, 'm9');
    await until(() => fresh.client.position(conv) === 9, 'the fresh client to deliver 9');
    assert.deepEqual(seqs(fresh, conv), [9]);
  });

  it('keeps positions in Web Storage per user, and survives a storage that holds garbage or refuses to save', async () => {
    const items = new Map<string, string>();
    let refuse = false;
    const storage: StorageLike = {
      getItem: (key) => items.get(key) ?? null,
      setItem: (key, value) => {
        if (refuse) throw new Error('QuotaExceededError');
        items.set(key, value);
      },
    };
    const a = sdk(server, alice.token);
    await connected(a);
    const { conversation } = await a.client.request('conversation.create', { name: 'web storage', visibility: 'public' });
    const conv = conversation.id;

    const first = sdk(server, bob.token, { positions: localStoragePositions({ storage, prefix: 'p.' }) });
    await connected(first);
    await first.client.request('conversation.join', { conversationId: conv });
    await a.client.send(conv, 'one');
    await until(() => first.client.position(conv) === 1, 'delivery of 1');
    await until(() => (JSON.parse(items.get(`p.${bob.id}`) ?? '[]') as Array<{ conversationId: string; afterSeq: number }>)
      .some((p) => p.conversationId === conv && p.afterSeq === 1), 'the position saved under p.<bob>');
    assert.deepEqual([...items.keys()], [`p.${bob.id}`]);

    refuse = true;
    await a.client.send(conv, 'two');
    await until(() => first.errors.some((e) => /QuotaExceeded/.test(e.message)), 'the failed save reported as error');
    assert.equal(first.client.position(conv), 2, 'delivery goes on');
    first.client.close();
    refuse = false;

    // The store still says 1 (saving 2 failed): the next client delivers 2 again — at least once, never lost.
    const second = sdk(server, bob.token, { positions: localStoragePositions({ storage, prefix: 'p.' }) });
    await connected(second);
    assert.deepEqual(seqs(second, conv), [2]);
    second.client.close();

    // Garbage loads as nothing: the client starts from the newest message, as on a first visit.
    items.set(`p.${bob.id}`, '{not json');
    const third = sdk(server, bob.token, { positions: localStoragePositions({ storage, prefix: 'p.' }) });
    await connected(third);
    assert.deepEqual(third.messages, []);
    await a.client.send(conv, 'three');
    await until(() => third.client.position(conv) === 3, 'delivery of 3');
    assert.deepEqual(seqs(third, conv), [3]);
  });
});

describe('SDK re-sync when a browser tab becomes visible or the browser comes back online', () => {
  let server: TestServer;
  let alice: { id: string; token: string };
  let bob: { id: string; token: string };
  /** Stand-ins for a page's `document` and `window` (Node has neither); the client looks for them at connect(). */
  const doc = Object.assign(new EventTarget(), { visibilityState: 'visible' as 'visible' | 'hidden' });
  const win = new EventTarget();
  const g = globalThis as unknown as Record<string, unknown>;

  before(async () => {
    server = await startServer();
    alice = await register(server, 'vis-alice');
    bob = await register(server, 'vis-bob');
    g.document = doc;
    g.addEventListener = win.addEventListener.bind(win);
    g.removeEventListener = win.removeEventListener.bind(win);
  });
  after(async () => {
    delete g.document;
    delete g.addEventListener;
    delete g.removeEventListener;
    await server.stop();
  });

  it('finds a lost last message on visibilitychange to visible and on online, not while hidden', async () => {
    const a = sdk(server, alice.token);
    const b = sdk(server, bob.token);
    await Promise.all([connected(a), connected(b)]);
    const { conversation } = await a.client.request('conversation.create', { name: 'visibility', visibility: 'public' });
    const conv = conversation.id;
    await b.client.request('conversation.join', { conversationId: conv });

    /** alice sends; bob's copy is lost on the way (and nothing follows it that would reveal a gap). */
    const sendLost = async (text: string): Promise<number> => {
      b.trace.dropIncoming = (f) => f.event === 'message.new' && f.data?.text === text;
      const m = await a.client.send(conv, text);
      await until(() => b.trace.received.some((f) => f.event === 'message.new' && f.data?.seq === m.seq), `bob's copy of ${m.seq} to arrive (and be dropped)`);
      b.trace.dropIncoming = null;
      assert.equal(b.client.position(conv), m.seq - 1, 'the lost message is not delivered');
      return m.seq;
    };
    const syncs = (): number => b.trace.sent.filter((f) => f.type === 'sync').length;

    const first = await sendLost('lost while the tab was hidden');
    doc.visibilityState = 'hidden';
    const before = syncs();
    doc.dispatchEvent(new Event('visibilitychange'));
    await b.client.ping(); // the reply comes after anything the client sent before it
    assert.equal(syncs(), before, 'a tab that becomes hidden does not sync');
    assert.equal(b.client.position(conv), first - 1);

    doc.visibilityState = 'visible';
    doc.dispatchEvent(new Event('visibilitychange'));
    await until(() => b.client.position(conv) === first, 'the tab made visible to deliver the lost message');
    assert.deepEqual(seqs(b, conv).slice(-1), [first]);

    const second = await sendLost('lost before the network came back');
    win.dispatchEvent(new Event('online'));
    await until(() => b.client.position(conv) === second, 'coming back online to deliver the lost message');
    assert.deepEqual(seqs(b, conv), [first, second], 'each once, in order');
  });

  it('gives the connection up at once when the browser goes offline, and tries again at once when it is back', async () => {
    // A backoff of a whole minute (the jitter pinned to its top): only the online event can bring it back in time.
    const c = sdk(server, bob.token, { backoff: { initialMs: 60_000, maxMs: 60_000 }, random: () => 0.999 });
    const disconnects: Array<{ code: number; willReconnect: boolean }> = [];
    c.client.on('disconnect', ({ code, willReconnect }) => disconnects.push({ code, willReconnect }));
    await connected(c);
    win.dispatchEvent(new Event('offline'));
    // Synchronous: the user sees "reconnecting" without waiting for a heartbeat to time out.
    assert.equal(c.client.state, 'reconnecting');
    assert.deepEqual(disconnects, [{ code: 1006, willReconnect: true }]);
    win.dispatchEvent(new Event('online'));
    await until(() => c.client.state === 'open', 'reconnected on online, not after the backoff delay');
    assert.equal(c.trace.sockets.length, 2);
  });
});
