import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Socket } from 'node:net';
import { RawClient, readAtMost, sleep, until } from '../helpers/raw-client.js';
import { api, metric, register, startServer, type TestServer } from '../helpers/server.js';


const socketOf = (client: RawClient): Socket => (client.ws as unknown as { _socket: Socket })._socket;

const BUDGET = 256 * 1024;
/** Per-user and per-connection rates out of the way, for tests about what the outgoing and store limits do. */
const RAISED_RATES = {
  PARLEY_LIMITS_USER_MESSAGE_RATE_PER_SECOND: '100000',
  PARLEY_LIMITS_USER_MESSAGE_RATE_BURST: '100000',
  PARLEY_LIMITS_CONNECTION_RATE_PER_SECOND: '100000',
  PARLEY_LIMITS_CONNECTION_RATE_BURST: '100000',
};
const TEXT_BYTES = 2000;
const IN_FLIGHT = 8;

/**
 * Keep `IN_FLIGHT` sends outstanding until `count` were acknowledged or `stop()` says so; returns every reply. Bounded
 * by `count` and by `timeoutMs`.
 */
async function flood(
  client: RawClient,
  conversationId: string,
  count: number,
  stop: () => boolean,
  { timeoutMs = 30_000, inFlight = IN_FLIGHT, text = 'x'.repeat(TEXT_BYTES) } = {},
): Promise<any[]> {
  const replies: any[] = [];
  const deadline = Date.now() + timeoutMs;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count && !stop() && Date.now() < deadline) {
      const i = next++;
      replies.push(await client.request('message.send', { conversationId, key: `flood-${i}`, text }, timeoutMs));
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return replies;
}

describe('overload: readers that fall behind, publishers that go faster than fan-out', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({
      PARLEY_LIMITS_MAX_OUTGOING_TOTAL_BYTES: String(BUDGET),
      PARLEY_LIMITS_MAX_REPLY_BYTES: String(128 * 1024), // the budget holds two pages (the least it may)
      PARLEY_LIMITS_MAX_OUTGOING_BYTES: '131072',
      PARLEY_LIMITS_MAX_OUTGOING_HARD_BYTES: String(8 * 1024 * 1024),
      PARLEY_LIMITS_SLOW_CONSUMER_MS: '1000',
      ...RAISED_RATES,
    });
  });
  after(async () => {
    await server.stop();
  });

  it('pauses the publisher instead of buffering, keeps the backlog near the budget, and closes the non-readers (4002)', async () => {
    const names = ['ovl-pub', 'ovl-reader', 'ovl-stuck-1', 'ovl-stuck-2', 'ovl-stuck-3', 'ovl-stuck-4'];
    const accounts = await Promise.all(names.map((n) => register(server, n)));
    const clients = await Promise.all(accounts.map((a) => RawClient.connect(server.wsUrl, a.token)));
    const [publisher, reader, ...stuck] = clients;
    const conversationId = (await publisher!.ok('conversation.create', { name: 'overload' })).conversation.id;
    for (const c of [reader!, ...stuck]) await c.ok('conversation.join', { conversationId });
    // The stuck members stop reading: what is written to them stays unconfirmed (their kernel buffers fill, then ours).
    for (const c of stuck) socketOf(c).pause();

    let maxUnconfirmed = 0;
    let sampling = true;
    const sampler = (async () => {
      for (let i = 0; i < 2000 && sampling; i++) {
        maxUnconfirmed = Math.max(maxUnconfirmed, await metric(server, 'parley_outgoing_bytes{where="backlog"}'));
      }
    })();
    const slowClosed = () => metric(server, 'parley_closes_total{reason="SLOW_CONSUMER"}');
    let closedAll = false;
    const probe = setInterval(async () => (closedAll = (await slowClosed()) === stuck.length), 100);
    // Publish until every non-reader was closed (bounded: at most 6,000 sends, each flood() at most 30 s).
    const all: any[] = [];
    try {
      for (let round = 0; round < 2 && !closedAll; round++) all.push(...(await flood(publisher!, conversationId, 3000, () => closedAll)));
    } finally {
      clearInterval(probe);
      sampling = false;
      await sampler;
    }
    await until(async () => (await slowClosed()) === stuck.length, 'every non-reader closed as a slow consumer', 20_000, 100);

    // The publisher was slowed by not being read (TCP backpressure), never refused: every send was acknowledged.
    assert.deepEqual(all.filter((r) => r.error), [], 'no send was refused');
    assert.ok((await metric(server, 'parley_backpressure_pauses_total')) > 0, 'the publisher was paused at least once');
    // Unconfirmed bytes never went far past the budget: at most the fan-out of the sends already read when it was
    // passed (IN_FLIGHT sends × 6 recipients × a frame), never the backlog of four stuck readers (8 MiB each allowed).
    const frameBound = TEXT_BYTES + 1024;
    assert.ok(maxUnconfirmed > 0, 'unconfirmed bytes were measured');
    assert.ok(maxUnconfirmed <= BUDGET + IN_FLIGHT * 2 * clients.length * frameBound, `unconfirmed peaked at ${maxUnconfirmed} bytes`);
    // The reader got everything, in order.
    const last = all.length;
    await reader!.waitFor('message.new', (m) => m.seq === last, 20_000);
    assert.equal(reader!.eventsOf('message.new').length, last);
    assert.equal(publisher!.closed, null);
    assert.equal(reader!.closed, null);
    for (const c of stuck) socketOf(c).resume();
    for (const c of stuck) {
      const { code } = await c.waitClose(10_000);
      assert.ok(code === 4002 || code === 1006, `a stuck reader closed with ${code}`);
    }
    await until(async () => (await metric(server, 'parley_paused_connections')) === 0, 'no connection left paused', 5000, 50);
    publisher!.close();
    reader!.close();
  });

  it('keeps a member that reads a large burst slowly but steadily: pings along the burst confirm its progress', async () => {
    const [alice, slow] = await Promise.all(['ovl-steady-pub', 'ovl-steady'].map((n) => register(server, n)));
    const a = await RawClient.connect(server.wsUrl, alice.token);
    const b = await RawClient.connect(server.wsUrl, slow.token);
    const conversationId = (await a.ok('conversation.create', { name: 'steady' })).conversation.id;
    await b.ok('conversation.join', { conversationId });
    // At most one socket read (≤ 64 KiB) every 100 ms: ≤ 640 KB/s, so the ~2.5 MB burst takes seconds to read, many
    // times slowConsumerMs (1 s), and the backlog stays far above maxOutgoingBytes (128 KiB) all along.
    const socket = socketOf(b);
    const onData = (): void => {
      socket.pause();
      setTimeout(() => socket.resume(), 100);
    };
    socket.on('data', onData);
    try {
      const text = '\u0001'.repeat(4096); // ~24.6 KB once JSON-escaped
      const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => a.request('message.send', { conversationId, key: `steady-${i}`, text }, 60_000)));
      assert.deepEqual(replies.filter((r) => !r.result), []);
      await until(() => b.eventsOf('message.new').length === 100 || b.closed !== null, 'the slow reader gets the whole burst', 60_000, 50);
      assert.equal(b.closed, null, `the steady reader was closed: ${JSON.stringify(b.closed)}`);
    } finally {
      socket.off('data', onData);
      socket.resume();
      a.close();
      b.close();
    }
  });

  it('closes a member that stops reading however it fakes pongs: unsolicited, made-up positions, replayed payloads', async () => {
    const [alice, liar] = await Promise.all(['ovl-liar-pub', 'ovl-liar'].map((n) => register(server, n)));
    const a = await RawClient.connect(server.wsUrl, alice.token);
    const b = await RawClient.connect(server.wsUrl, liar.token);
    const conversationId = (await a.ok('conversation.create', { name: 'liar' })).conversation.id;
    await b.ok('conversation.join', { conversationId });
    const before = await metric(server, 'parley_closes_total{reason="SLOW_CONSUMER"}');
    // It reads nothing more, but keeps answering: growing byte counts, huge numbers, the old `<position>` form, and
    // the payload of a real ping replayed (the last one it saw before it stopped reading).
    let seen = '';
    b.ws.on('ping', (payload: Buffer) => (seen = payload.toString('latin1')));
    socketOf(b).pause();
    let claim = 0;
    const liarTimer = setInterval(() => {
      claim += 200_000;
      for (const payload of [String(claim), `${claim}.AAAAAAAA`, '99999999999999', seen]) if (payload) b.ws.pong(payload);
    }, 50);
    let closed = false;
    const probe = setInterval(async () => (closed = (await metric(server, 'parley_closes_total{reason="SLOW_CONSUMER"}')) > before), 100);
    const replies: any[] = [];
    try {
      for (let i = 0; i < 100 && !closed; i++) replies.push(...(await flood(a, conversationId, 20, () => closed)));
    } finally {
      clearInterval(probe);
      clearInterval(liarTimer);
    }
    assert.ok(closed, 'the member that stopped reading was closed as a slow consumer despite its pongs');
    assert.deepEqual(replies.filter((r) => r.error), []);
    socketOf(b).resume();
    const { code } = await b.waitClose(10_000);
    assert.ok(code === 4002 || code === 1006, `closed with ${code}`);
    assert.equal(a.closed, null);
    a.close();
  });

  it('closes one member that stops reading (4002) even while its backlog sits in the kernel, not in server memory', async () => {
    const [alice, bob] = await Promise.all(['ovl-one-pub', 'ovl-one-stuck'].map((n) => register(server, n)));
    const a = await RawClient.connect(server.wsUrl, alice.token);
    const b = await RawClient.connect(server.wsUrl, bob.token);
    const conversationId = (await a.ok('conversation.create', { name: 'one stuck' })).conversation.id;
    await b.ok('conversation.join', { conversationId });
    const before = await metric(server, 'parley_closes_total{reason="SLOW_CONSUMER"}');
    socketOf(b).pause();
    let closed = false;
    // Well below the budget and the hard cap: only the slow-consumer rule (backlog not shrinking) can close it.
    const replies: any[] = [];
    const probe = setInterval(async () => (closed = (await metric(server, 'parley_closes_total{reason="SLOW_CONSUMER"}')) > before), 100);
    try {
      for (let i = 0; i < 100 && !closed; i++) replies.push(...(await flood(a, conversationId, 20, () => closed)));
    } finally {
      clearInterval(probe);
    }
    assert.ok(closed, 'the member that stopped reading was closed as a slow consumer');
    assert.deepEqual(replies.filter((r) => r.error), []);
    socketOf(b).resume();
    const { code } = await b.waitClose(10_000);
    assert.ok(code === 4002 || code === 1006, `closed with ${code}`);
    assert.equal(a.closed, null);
    a.close();
  });
});

describe('overload: the store refuses work past its queue bound, and loses nothing it acknowledged', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({
      PARLEY_STORE_SQLITE_MAX_PENDING_CALLS: '4',
      ...RAISED_RATES,
    });
  });
  after(async () => {
    await server.stop();
  });

  it('answers RATE_LIMITED with retryAfterMs when the store thread has maxPendingCalls waiting; a retry succeeds', async () => {
    const owner = await register(server, 'ovl-store-owner');
    const a = await RawClient.connect(server.wsUrl, owner.token);
    const conversationId = (await a.ok('conversation.create', { name: 'store queue' })).conversation.id;
    const count = 40;
    // One burst, sent in one event-loop turn of the server: more sends than the store thread may have waiting.
    const replies = await Promise.all(Array.from({ length: count }, (_, i) => a.request('message.send', { conversationId, key: `q-${i}`, text: `m${i}` })));
    const refused = replies.map((r, i) => ({ r, i })).filter(({ r }) => r.error);
    assert.ok(refused.length > 0, 'some sends were refused');
    for (const { r } of refused) {
      assert.equal(r.error.code, 'RATE_LIMITED');
      assert.equal(r.error.temporary, true);
      assert.ok(Number.isInteger(r.error.retryAfterMs) && r.error.retryAfterMs >= 1, JSON.stringify(r.error));
    }
    // Retried one at a time after retryAfterMs, with the same key: each succeeds.
    for (const { r, i } of refused) {
      await sleep(r.error.retryAfterMs);
      await a.ok('message.send', { conversationId, key: `q-${i}`, text: `m${i}` });
    }
    // Every message is stored once: nothing acknowledged was lost, nothing refused was half-written.
    const { messages } = await a.ok('history.after', { conversationId, afterSeq: 0, limit: 100 });
    assert.deepEqual(messages.map((m: any) => m.text).sort(), Array.from({ length: count }, (_, i) => `m${i}`).sort());
    assert.deepEqual(messages.map((m: any) => m.seq).sort((x: number, y: number) => x - y), Array.from({ length: count }, (_, i) => i + 1));
    a.close();
  });
});

describe('overload: a send the store refused costs no rate budget', () => {
  let server: TestServer;
  before(async () => {
    // The default per-user message budget (burst 50) and per-connection rate; a store thread that takes 4 calls.
    server = await startServer({ PARLEY_STORE_SQLITE_MAX_PENDING_CALLS: '4' });
  });
  after(async () => {
    await server.stop();
  });

  it('gives back the tokens of a send refused because the store is busy, so its retries are not refused for rate', async () => {
    const owner = await register(server, 'ovl-refund');
    const a = await RawClient.connect(server.wsUrl, owner.token);
    const conversationId = (await a.ok('conversation.create', { name: 'refund' })).conversation.id;
    const count = 45; // within the burst of 50, with room for a few refusals but not for paying each retry again
    const replies = await Promise.all(Array.from({ length: count }, (_, i) => a.request('message.send', { conversationId, key: `r-${i}`, text: `m${i}` })));
    const refused = replies.map((r, i) => ({ r, i })).filter(({ r }) => r.error);
    assert.ok(refused.length > 5, `enough sends were refused by the busy store (${refused.length})`);
    for (const { r, i } of refused) {
      assert.equal(r.error.code, 'RATE_LIMITED');
      let reply = r;
      // Each refusal retried after its retryAfterMs, as the docs say, until it is stored (bounded).
      for (let attempt = 0; attempt < 20 && reply.error; attempt++) {
        assert.notEqual(reply.error.message, 'too many messages; slow down', `send ${i} was charged again for its retry`);
        await sleep(reply.error.retryAfterMs);
        reply = await a.request('message.send', { conversationId, key: `r-${i}`, text: `m${i}` });
      }
      assert.ok(reply.result, JSON.stringify(reply));
    }
    const { messages } = await a.ok('history.after', { conversationId, afterSeq: 0, limit: 100 });
    assert.equal(messages.length, count);
    a.close();
  });
});

describe('overload: a legal burst to members who keep reading', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(); // the default limits: the burst below is what they allow
  });
  after(async () => {
    await server.stop();
  });

  it('sends position pings only once outgoingProbeBytes (128 KiB) are unconfirmed, at most one per 64 KiB read, and confirms a burst to within 128 KiB', async () => {
    const [sender, reader] = await Promise.all(['probe-sender', 'probe-reader'].map((n) => register(server, n)));
    const a = await RawClient.connect(server.wsUrl, sender.token);
    const r = await RawClient.connect(server.wsUrl, reader.token);
    try {
      const { conversation } = await a.ok('conversation.create', { name: 'probes' });
      await r.ok('conversation.join', { conversationId: conversation.id });
      const positions: number[] = [];
      let received = 0;
      // A position ping's payload is `<position>.<random suffix>` (docs/protocol.md, Heartbeats).
      r.ws.on('ping', (payload: Buffer) => payload.length > 0 && positions.push(Number(payload.toString('latin1').split('.')[0])));
      // Bytes on the wire as the server counts them: each frame's payload and its header (unmasked, server to client).
      let newMessages = 0;
      let receivedAtBurstEnd = Number.POSITIVE_INFINITY;
      r.ws.on('message', (data: Buffer) => {
        received += data.length + (data.length < 126 ? 2 : data.length < 65_536 ? 4 : 10);
        // Other small events (presence, read) may follow the burst without a ping of their own: the burst is what counts.
        if (data.subarray(0, 22).toString() === '{"event":"message.new"' && ++newMessages === 50) receivedAtBurstEnd = received;
      });
      // 20 events of ~1 KB, one at a time: less than 128 KiB in flight, so a reader that keeps up answers no ping.
      for (let i = 0; i < 20; i++) await a.ok('message.send', { conversationId: conversation.id, key: `small-${i}`, text: 's'.repeat(1000) });
      await until(() => r.eventsOf('message.new').length === 20, 'the reader gets the small messages', 10_000, 20);
      assert.deepEqual(positions, [], 'no position ping below outgoingProbeBytes');
      // Then a burst of ~740 KB (30 events of ~24.6 KB once JSON-escaped; the rest of the sender's burst allowance):
      // pings past 128 KiB (the first threshold is drawn between half and all of it, later ones are 90% of it), at most
      // one per 64 KiB read, plus the one after the burst.
      await Promise.all(Array.from({ length: 30 }, (_, i) => a.ok('message.send', { conversationId: conversation.id, key: `big-${i}`, text: '\u0001'.repeat(4096) })));
      await until(() => r.eventsOf('message.new').length === 50, 'the reader gets the burst', 10_000, 20);
      // The end of the burst is confirmed to within outgoingProbeBytes: after the last write a ping follows (at once, or
      // from the sweep once the time spacing allows) unless what is still unconfirmed by then is under the allowance.
      await until(() => positions.length > 0 && positions.at(-1)! >= receivedAtBurstEnd - 131_072, 'a ping covering the burst but its last 128 KiB', 10_000, 20);
      assert.ok(positions.length > 0 && positions.length <= Math.ceil(received / 65536) + 2, `${positions.length} pings for ${received} bytes`);
      await until(async () => (await metric(server, 'parley_outgoing_bytes{where="backlog"}')) === 0, 'no backlog left', 10_000, 50);
    } finally {
      a.close();
      r.close();
    }
  });

  it('delivers every message of 6 members each sending their whole burst of 4,096 control characters, closing nobody', async () => {
    const SENDERS = 6;
    const BURST = 50; // limits.userMessageRate burst
    const members = await Promise.all(Array.from({ length: SENDERS + 1 }, (_, i) => register(server, `burst-${i}`)));
    const clients = await Promise.all(members.map((m) => RawClient.connect(server.wsUrl, m.token)));
    try {
      const { conversation } = await clients[0]!.ok('conversation.create', { name: 'burst' });
      for (const c of clients.slice(1)) await c.ok('conversation.join', { conversationId: conversation.id });
      // Each event is ~24.6 KB once JSON-escaped: 7.4 MB on the way to every member within about a second.
      const text = '\u0001'.repeat(4096);
      const replies = await Promise.all(clients.slice(0, SENDERS).map((c, s) =>
        Promise.all(Array.from({ length: BURST }, (_, i) => c.request('message.send', { conversationId: conversation.id, key: `b${s}-${i}`, text }, 60_000)))));
      assert.ok(replies.flat().every((r) => r.result), JSON.stringify(replies.flat().find((r) => !r.result)));
      const reader = clients[SENDERS]!;
      const total = SENDERS * BURST;
      await until(() => reader.eventsOf('message.new').length === total || reader.closed !== null, `the reading member gets all ${total}`, 60_000, 50);
      assert.equal(reader.closed, null, `the reader was closed: ${JSON.stringify(reader.closed)}`);
      assert.equal(new Set(reader.eventsOf('message.new').map((e: any) => e.seq)).size, total, 'each once');
      for (const c of clients) assert.equal(c.closed, null, 'no member was closed');
    } finally {
      for (const c of clients) c.close();
    }
  });
});

describe('overload: members who send and read at once', () => {
  let server: TestServer;
  before(async () => {
    // The limits scaled down 16-fold (hard cap 1 MiB instead of 16, 2 requests in flight instead of 32), so that the
    // shape of a burst from 20 members of one group, each also reading, fits in a test: every member receives ~3.9 MB,
    // four times the hard cap, and reads more slowly than the server could send. The budget is a quarter of the hard
    // cap: the worst reader's backlog is at most the budget, its own allowance and what the members' requests in
    // flight fan out (8 × 2 × 24.6 KB) after it was passed.
    server = await startServer({
      PARLEY_LIMITS_MAX_OUTGOING_TOTAL_BYTES: String(256 * 1024),
      PARLEY_LIMITS_MAX_REPLY_BYTES: String(128 * 1024), // the budget holds two pages (the least it may)
      PARLEY_LIMITS_MAX_OUTGOING_BYTES: String(512 * 1024),
      PARLEY_LIMITS_MAX_OUTGOING_HARD_BYTES: String(1024 * 1024),
      PARLEY_LIMITS_MAX_INFLIGHT_REQUESTS: '2',
    });
  });
  after(async () => {
    await server.stop();
  });

  it('closes none of 8 members who each send their whole burst (2 requests in flight) while reading everyone else\'s', async () => {
    const MEMBERS = 8;
    const BURST = 20;
    const members = await Promise.all(Array.from({ length: MEMBERS }, (_, i) => register(server, `both-${i}`)));
    const clients = await Promise.all(members.map((m) => RawClient.connect(server.wsUrl, m.token)));
    try {
      const { conversation } = await clients[0]!.ok('conversation.create', { name: 'send and read' });
      for (const c of clients.slice(1)) await c.ok('conversation.join', { conversationId: conversation.id });
      const text = '\u0001'.repeat(4096); // ~24.6 KB once JSON-escaped
      // Each member keeps as many requests outstanding as the server serves at once (docs/protocol.md: keep a bounded
      // number of requests in flight), so its socket stays read and its pongs confirm what it took.
      const replies = await Promise.all(clients.map((c) => flood(c, conversation.id, BURST, () => false, { timeoutMs: 60_000, inFlight: 2, text })));
      assert.equal(replies.flat().length, MEMBERS * BURST, 'every send was answered');
      assert.deepEqual(replies.flat().filter((r) => !r.result), [], 'every send was acknowledged');
      const total = MEMBERS * BURST;
      // Each member gets the others' messages as events (its own sends are answered by receipts).
      for (const c of clients) {
        await until(() => c.eventsOf('message.new').length === total - BURST || c.closed !== null, 'every member gets every other member\'s burst', 60_000, 50);
        assert.equal(c.closed, null, `a member was closed: ${JSON.stringify(c.closed)}`);
      }
      assert.ok((await metric(server, 'parley_backpressure_pauses_total')) > 0, 'the senders were held at least once');
    } finally {
      for (const c of clients) c.close();
    }
  });
});

describe('overload: many requests in flight from members who send and read', () => {
  let server: TestServer;
  const BUDGET_BYTES = 256 * 1024;
  before(async () => {
    // maxInflightRequests at its default (32): what it lets through is what the budget must still bound.
    server = await startServer({
      PARLEY_LIMITS_MAX_OUTGOING_TOTAL_BYTES: String(BUDGET_BYTES),
      PARLEY_LIMITS_MAX_REPLY_BYTES: String(128 * 1024), // the budget holds two pages (the least it may)
      PARLEY_LIMITS_MAX_OUTGOING_BYTES: String(512 * 1024),
      ...RAISED_RATES,
    });
  });
  after(async () => {
    await server.stop();
  });

  it('keeps the backlog near the budget however many sends the members keep in flight', async (test) => {
    const MEMBERS = 8;
    const BURST = 40;
    const members = await Promise.all(Array.from({ length: MEMBERS }, (_, i) => register(server, `inflight-${i}`)));
    const clients = await Promise.all(members.map((m) => RawClient.connect(server.wsUrl, m.token)));
    const text = '\u0001'.repeat(4096); // ~24.6 KB once JSON-escaped
    try {
      const { conversation } = await clients[0]!.ok('conversation.create', { name: 'in flight' });
      for (const c of clients.slice(1)) await c.ok('conversation.join', { conversationId: conversation.id });
      // Half the members read in small sips (their backlog drains slowly), so that what is in motion stays counted.
      const sippers = clients.slice(MEMBERS / 2).map(socketOf);
      const sip = function (this: Socket): void {
        this.pause();
      };
      for (const socket of sippers) socket.pause().on('data', sip);
      const sipping = setInterval(() => {
        for (const socket of sippers) socket.resume();
      }, 20);
      let peak = 0;
      let sampling = true;
      const sampler = (async () => {
        for (let i = 0; i < 5000 && sampling; i++) peak = Math.max(peak, await metric(server, 'parley_outgoing_bytes{where="backlog"}'));
      })();
      let replies: any[][];
      try {
        replies = await Promise.all(clients.map((c) => flood(c, conversation.id, BURST, () => false, { timeoutMs: 60_000, inFlight: BURST, text })));
      } finally {
        sampling = false;
        await sampler;
        clearInterval(sipping);
        for (const socket of sippers) socket.off('data', sip).resume();
      }
      assert.deepEqual(replies.flat().filter((r) => !r.result), [], 'every send was acknowledged');
      // The budget admits a request while under it (with what requests being served will add), so the backlog may
      // pass it by what the last requests admitted put in motion: bounded here by one send per member (each send fans
      // out to the whole group). Counting requests only (32 in flight each) lets 40 × 8 sends through: ~40 MB.
      const oneFanOut = MEMBERS * (JSON.stringify(text).length + 256);
      assert.ok(peak <= BUDGET_BYTES + MEMBERS * oneFanOut, `the backlog peaked at ${peak} bytes (budget ${BUDGET_BYTES})`);
      test.diagnostic(`backlog peak ${peak} bytes, budget ${BUDGET_BYTES}, one send's fan-out ${oneFanOut}`);
      assert.ok((await metric(server, 'parley_backpressure_pauses_total')) > 0, 'the senders were held at least once');
      for (const c of clients) assert.equal(c.closed, null, `a member was closed: ${JSON.stringify(c.closed)}`);
    } finally {
      for (const c of clients) c.close();
    }
  });
});

describe('overload: connections that ask for large replies and do not read them', () => {
  const PAGE_BUDGET = 4 * 1024 * 1024;
  let server: TestServer;
  before(async () => {
    server = await startServer({ ...RAISED_RATES, PARLEY_LIMITS_MAX_OUTGOING_TOTAL_BYTES: String(PAGE_BUDGET) });
  });
  after(async () => server?.stop());

  /**
   * Replies land in the requester's backlog only once answered: without reserving them while the requests run, ten
   * non-reading connections of one user, each with 32 history pages of ~240 KB in flight, took the backlog to ~20
   * times the budget (and every other user's requests were held meanwhile). A page-sized reply is now reserved while
   * its request runs, and a connection is served no more while its own backlog with those reservations is over
   * limits.maxOutgoingBytes.
   */
  it('keeps the backlog near the budget, and other users are served once the non-readers are closed', { timeout: 120_000 }, async () => {
    const [writer, greedy, bystander] = await Promise.all(['ovl-page-writer', 'ovl-page-greedy', 'ovl-page-bystander'].map((n) => register(server, n)));
    const w = await RawClient.connect(server.wsUrl, writer.token);
    const conversationId = (await w.ok('conversation.create', { name: 'long pages', visibility: 'public' })).conversation.id;
    for (let i = 0; i < 60; i++) await w.ok('message.send', { conversationId, key: `page-${i}`, text: 'p'.repeat(4000) });
    const greedyClients: RawClient[] = [];
    for (let i = 0; i < 10; i++) greedyClients.push(await RawClient.connect(server.wsUrl, greedy.token));
    await greedyClients[0]!.ok('conversation.join', { conversationId });
    const by = await RawClient.connect(server.wsUrl, bystander.token);
    let maxBacklog = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        maxBacklog = Math.max(maxBacklog, await metric(server, 'parley_outgoing_bytes{where="backlog"}'));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      for (const c of greedyClients) socketOf(c).pause();
      for (const c of greedyClients) {
        for (let k = 0; k < 50; k++) c.sendRaw(JSON.stringify({ id: `h${k}`, type: 'history.before', data: { conversationId, limit: 100 } }));
      }
      // The greedy connections are closed (4002) by the stall rule while their backlog keeps the process over budget;
      // one left with at most limits.maxOutgoingBytes unread is no slow consumer by the rules, and no longer counts
      // against the budget enough to hold anyone. Then the bystander is served.
      const MAX_OUTGOING = 1024 * 1024; // limits.maxOutgoingBytes, the default
      await until(async () => {
        const closed = await metric(server, 'parley_closes_total{reason="SLOW_CONSUMER"}');
        const backlog = await metric(server, 'parley_outgoing_bytes{where="backlog"}');
        return closed > 0 && backlog <= (greedyClients.length - closed) * MAX_OUTGOING && backlog < (PAGE_BUDGET * 3) / 4;
      }, 'the non-readers closed, but for some with at most maxOutgoingBytes each', 60_000, 100);
      assert.equal((await by.request('ping', {}, 30_000)).error, undefined, 'the bystander is served');
    } finally {
      sampling = false;
      await sampler;
    }
    const page = 256 * 1024;
    assert.ok(maxBacklog <= PAGE_BUDGET + 2 * page, `backlog peaked at ${maxBacklog} B, budget ${PAGE_BUDGET} B`);
    assert.ok(maxBacklog > 0, 'the replies were counted');
    w.close();
    by.close();
  });
});

describe('overload: a conversation whose readers fall behind slows its publisher down (maxDeliveryDelayMs)', () => {
  const DELAY_MS = 300;
  /**
   * Messages sent while the readers stop, before the hold is looked for. Few: with a ping in every write (each write
   * is past outgoingProbeBytes / 2), the publisher is seen to outrun stopped readers within a few sends, and would be
   * held inside them.
   */
  const FIRST = 10;
  let server: TestServer;
  before(async () => {
    server = await startServer({
      ...RAISED_RATES,
      PARLEY_LIMITS_MAX_DELIVERY_DELAY_MS: String(DELAY_MS),
      // Pings from the first 4 KiB unconfirmed, so a reader's delay shows after a few messages.
      PARLEY_LIMITS_OUTGOING_PROBE_BYTES: '4096',
      // Readers that stop are not closed within the test: the hold alone is what it checks.
      PARLEY_LIMITS_SLOW_CONSUMER_MS: '60000',
    });
  });
  after(async () => {
    await server.stop();
  });

  /** A group of a publisher and `readers` members; returns the clients and the conversation. */
  async function group(name: string, readers: number) {
    const users = await Promise.all(Array.from({ length: readers + 1 }, (_, i) => register(server, `${name}-${i}`)));
    const clients = await Promise.all(users.map((u) => RawClient.connect(server.wsUrl, u.token)));
    const conversationId = (await clients[0]!.ok('conversation.create', { name })).conversation.id as string;
    for (const c of clients.slice(1)) await c.ok('conversation.join', { conversationId });
    return { publisher: clients[0]!, readers: clients.slice(1), conversationId, publisherToken: users[0]!.token };
  }

  /** Keep 8 sends in flight until `count` were acknowledged; `acked` counts them as they come. */
  function publish(client: RawClient, conversationId: string, from: number, count: number, acked = { n: 0 }): Promise<any[]> {
    let next = from;
    const replies: any[] = [];
    const worker = async (): Promise<void> => {
      while (next < from + count) {
        const i = next++;
        replies.push(await client.request('message.send', { conversationId, key: `late-${i}`, text: 'y'.repeat(TEXT_BYTES) }, 60_000));
        acked.n++;
      }
    };
    return Promise.all(Array.from({ length: 8 }, worker)).then(() => replies);
  }

  /**
   * Stop the given readers' sockets, send FIRST messages (20 KB: past outgoingProbeBytes, so position pings go out and
   * stay unanswered), then let more than maxDeliveryDelayMs pass: those readers are then behind by more than it.
   */
  async function fallBehind(publisher: RawClient, conversationId: string, stopped: Socket[]): Promise<void> {
    for (const socket of stopped) socket.pause();
    const first = await publish(publisher, conversationId, 0, FIRST);
    assert.deepEqual(first.filter((r) => !r.result), []);
    await sleep(2 * DELAY_MS); // a precondition (at least this old), not a wait for a result
  }

  it('holds the publisher while most readers are behind, serves it again once they read, and loses nothing', async () => {
    const COUNT = 200;
    const { publisher, readers, conversationId } = await group('late-most', 3);
    const sockets = readers.map(socketOf);
    try {
      const pausesBefore = await metric(server, 'parley_backpressure_pauses_total');
      await fallBehind(publisher, conversationId, sockets);
      const acked = { n: 0 };
      const sending = publish(publisher, conversationId, FIRST, COUNT, acked);
      // All three readers are behind: the publisher's next send is served, and what it sends after waits.
      await until(async () => (await metric(server, 'parley_paused_connections')) === 1, 'the publisher is held', 10_000, 20);
      assert.ok(acked.n < COUNT, `held after ${acked.n} of ${COUNT} sends`);
      assert.ok((await metric(server, 'parley_backpressure_pauses_total')) > pausesBefore);
      for (const socket of sockets) socket.resume();
      const replies = await sending;
      assert.deepEqual(replies.filter((r) => !r.result), [], 'every send is acknowledged once the readers read');
      for (const reader of readers) {
        await until(() => reader.eventsOf('message.new').length === FIRST + COUNT, 'every reader gets every message', 20_000, 20);
        const seqs = reader.eventsOf('message.new').map((e: any) => e.seq as number);
        assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), 'in order');
        assert.equal(new Set(seqs).size, FIRST + COUNT, 'exactly once');
      }
      await until(async () => (await metric(server, 'parley_paused_connections')) === 0, 'no connection left paused', 10_000, 50);
    } finally {
      for (const socket of sockets) socket.resume();
      for (const c of [publisher, ...readers]) c.close();
    }
  });

  it('answers a REST send RATE_LIMITED (429, retryAfterMs) while most readers are behind, stores nothing, and takes it once they read', async () => {
    const { publisher, readers, conversationId, publisherToken: token } = await group('late-rest', 3);
    const sockets = readers.map(socketOf);
    try {
      await fallBehind(publisher, conversationId, sockets);
      const path = `/api/v1/conversations/${conversationId}/messages`;
      const refused = await api(server, token, 'POST', path, { key: 'late-rest-1', text: 'over REST' });
      assert.equal(refused.status, 429, JSON.stringify(refused.body));
      assert.equal(refused.body.error.code, 'RATE_LIMITED');
      assert.equal(refused.body.error.retryAfterMs, DELAY_MS);
      for (const socket of sockets) socket.resume();
      for (const reader of readers) await until(() => reader.eventsOf('message.new').length === FIRST, 'the readers catch up', 20_000, 20);
      let stored: { status: number; body: any } = refused;
      await until(async () => (stored = await api(server, token, 'POST', path, { key: 'late-rest-1', text: 'over REST' })).status !== 429, 'a retry is served once they read', 10_000, 50);
      assert.equal(stored.status, 201, 'the refused send had stored nothing: its retry with the same key is new');
      assert.equal(stored.body.seq, FIRST + 1);
      assert.equal(stored.body.duplicate, false);
    } finally {
      for (const socket of sockets) socket.resume();
      for (const c of [publisher, ...readers]) c.close();
    }
  });

  it('answers a stranger NOT_MEMBER during a hold, over REST and WebSocket, and holds none of its requests', async () => {
    const { publisher, readers, conversationId, publisherToken } = await group('late-stranger', 3);
    const stranger = await register(server, 'late-stranger-x');
    const strangerWs = await RawClient.connect(server.wsUrl, stranger.token);
    const sockets = readers.map(socketOf);
    const path = `/api/v1/conversations/${conversationId}/messages`;
    try {
      await fallBehind(publisher, conversationId, sockets);
      // The hold is in force: a member's REST send is refused for now ...
      const member = await api(server, publisherToken, 'POST', path, { key: 'late-stranger-m', text: 'member' });
      assert.equal(member.status, 429, JSON.stringify(member.body));
      // ... and a stranger is told what it would be told at any time: a permanent refusal that says nothing of readers.
      const rest = await api(server, stranger.token, 'POST', path, { key: 'late-stranger-1', text: 'stranger' });
      assert.equal(rest.status, 403, JSON.stringify(rest.body));
      assert.equal(rest.body.error.code, 'NOT_MEMBER');
      const pausesBefore = await metric(server, 'parley_backpressure_pauses_total');
      for (let i = 0; i < 3; i++) {
        const reply = await strangerWs.request('message.send', { conversationId, key: `late-stranger-ws-${i}`, text: 'stranger' });
        assert.equal(reply.error?.code, 'NOT_MEMBER', JSON.stringify(reply));
      }
      assert.equal(await metric(server, 'parley_backpressure_pauses_total'), pausesBefore, 'the stranger was never held');
      assert.equal(await metric(server, 'parley_paused_connections'), 0);
    } finally {
      for (const socket of sockets) socket.resume();
      for (const c of [publisher, ...readers, strangerWs]) c.close();
    }
  });

  it('serves a held member again at once when it is removed from the conversation it was held for', async () => {
    const { publisher: owner, readers, conversationId } = await group('late-kicked', 4);
    const [member, ...stoppedReaders] = readers as [RawClient, ...RawClient[]];
    const sockets = stoppedReaders.map(socketOf);
    try {
      // 3 of its 5 users stop reading: the member who publishes is held after its next send.
      await fallBehind(member, conversationId, sockets);
      const sending = member.request('message.send', { conversationId, key: 'late-kicked-x', text: 'x' }, 30_000);
      await until(async () => (await metric(server, 'parley_paused_connections')) === 1, 'the member is held', 10_000, 20);
      await owner.ok('member.kick', { conversationId, userId: member.eventsOf('welcome')[0].user.id });
      await member.waitFor('conversation.removed', (d: any) => d.conversationId === conversationId, 5000);
      // Its readers are still stopped; it is no longer theirs to wait for: its requests are served (they waited for
      // slowConsumerMs, a minute here, before).
      const list = await member.request('conversation.list', {}, 10_000);
      assert.ok(list.result, JSON.stringify(list));
      await sending;
      await until(async () => (await metric(server, 'parley_paused_connections')) === 0, 'nobody left held', 10_000, 20);
    } finally {
      for (const socket of sockets) socket.resume();
      for (const c of [owner, ...readers]) c.close();
    }
  });

  it('counts readers by user: one user\'s many connections that stop reading do not hold the publisher', async () => {
    const COUNT = 200;
    const { publisher, readers, conversationId } = await group('late-user', 1);
    const attacker = await register(server, 'late-user-many');
    const extra = await Promise.all(Array.from({ length: 3 }, () => RawClient.connect(server.wsUrl, attacker.token)));
    await extra[0]!.ok('conversation.join', { conversationId });
    // The joined user's other connections receive the conversation once their interests catch up: wait for it.
    await publisher.ok('message.send', { conversationId, key: 'late-user-first', text: 'first' });
    await until(() => extra.every((c) => c.eventsOf('message.new').length === 1), 'all three connections receive it', 5000, 20);
    const stopped = extra.map(socketOf);
    try {
      const pausesBefore = await metric(server, 'parley_backpressure_pauses_total');
      // 3 of the 5 connections are behind, but they are 1 user of 3.
      await fallBehind(publisher, conversationId, stopped);
      const replies = await publish(publisher, conversationId, FIRST, COUNT);
      assert.deepEqual(replies.filter((r) => !r.result), []);
      assert.equal(await metric(server, 'parley_backpressure_pauses_total'), pausesBefore, 'the publisher was never held');
      await until(() => readers[0]!.eventsOf('message.new').length === 1 + FIRST + COUNT, 'the reader gets every message', 20_000, 20);
    } finally {
      for (const socket of stopped) socket.resume();
      for (const c of [publisher, ...readers, ...extra]) c.close();
    }
  });

  it('does not hold the publisher for a minority of readers who are behind: one slow reader slows nobody', async () => {
    const COUNT = 200;
    const { publisher, readers, conversationId } = await group('late-few', 3);
    const slow = socketOf(readers[0]!);
    try {
      const pausesBefore = await metric(server, 'parley_backpressure_pauses_total');
      await fallBehind(publisher, conversationId, [slow]);
      const replies = await publish(publisher, conversationId, FIRST, COUNT);
      assert.deepEqual(replies.filter((r) => !r.result), [], 'every send acknowledged while one reader of three is stopped');
      assert.equal(await metric(server, 'parley_backpressure_pauses_total'), pausesBefore, 'the publisher was never held');
      for (const reader of readers.slice(1)) {
        await until(() => reader.eventsOf('message.new').length === FIRST + COUNT, 'the readers who read get every message', 20_000, 20);
      }
      slow.resume();
      await until(() => readers[0]!.eventsOf('message.new').length === FIRST + COUNT, 'the slow reader catches up', 20_000, 20);
    } finally {
      slow.resume();
      for (const c of [publisher, ...readers]) c.close();
    }
  });
});

describe('overload: a reader far behind that keeps reading can always confirm what it read', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({
      ...RAISED_RATES,
      // A ping every 5 ms while bytes flow, each covering little; at most 1 MiB / 16 KiB + 8 = 72 kept unanswered.
      PARLEY_LIMITS_OUTGOING_PROBE_MS: '5',
      PARLEY_LIMITS_OUTGOING_PROBE_BYTES: '16384',
      PARLEY_LIMITS_MAX_OUTGOING_BYTES: '131072',
      PARLEY_LIMITS_MAX_OUTGOING_HARD_BYTES: String(1024 * 1024),
      PARLEY_LIMITS_SLOW_CONSUMER_MS: '1000',
      // Not held for its sake: it is one of two users.
      PARLEY_LIMITS_MAX_DELIVERY_DELAY_MS: '60000',
    });
  });
  after(async () => {
    await server.stop();
  });

  it('keeps a reader that falls 600 KB behind at 200 KB/s: its pongs still confirm progress (pings past the bound are thinned evenly, not dropped from the front)', async () => {
    const [alice, slow] = await Promise.all(['thin-pub', 'thin-reader'].map((n) => register(server, n)));
    const a = await RawClient.connect(server.wsUrl, alice.token);
    const b = await RawClient.connect(server.wsUrl, slow.token);
    const conversationId = (await a.ok('conversation.create', { name: 'thin' })).conversation.id;
    await b.ok('conversation.join', { conversationId });
    // The reader takes at most 200 KB/s and answers every ping it reads.
    const readOn = readAtMost(socketOf(b), 200_000);
    const COUNT = 450;
    try {
      // ~600 KB/s for ~1.5 s (a 2 KB text every ~3 ms: pacing, so that pings go out every 5 ms, each covering ~3 KB).
      const sends: Promise<any>[] = [];
      for (let i = 0; i < COUNT; i++) {
        sends.push(a.request('message.send', { conversationId, key: `thin-${i}`, text: 'z'.repeat(TEXT_BYTES) }, 30_000));
        await sleep(3);
      }
      const replies = await Promise.all(sends);
      assert.deepEqual(replies.filter((r) => !r.result), []);
      await until(() => b.eventsOf('message.new').length === COUNT || b.closed !== null, 'the slow reader reads everything', 30_000, 50);
      assert.equal(b.closed, null, `the reader was closed while reading: ${JSON.stringify(b.closed)}`);
    } finally {
      readOn();
      a.close();
      b.close();
    }
  });
});

describe('overload: a few slow readers of one busy group do not hold the publishers of others for long', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({
      ...RAISED_RATES,
      PARLEY_LIMITS_MAX_OUTGOING_TOTAL_BYTES: String(BUDGET),
      PARLEY_LIMITS_MAX_REPLY_BYTES: String(128 * 1024), // the budget holds two pages (the least it may)
      PARLEY_LIMITS_SLOW_CONSUMER_MS: '1000',
      // The budget alone is what this is about.
      PARLEY_LIMITS_MAX_DELIVERY_DELAY_MS: '60000',
    });
  });
  after(async () => {
    await server.stop();
  });

  it('closes (4002) a reader that still reads but is more than slowConsumerMs behind while the budget holds publishers, and the others go on', async () => {
    const names = ['busy-pub', 'busy-fast', 'busy-slow', 'other-pub', 'other-reader'];
    const [pa, fast, slow, pb, rb] = await Promise.all(names.map((n) => register(server, n)));
    const [a, f, s, b, r] = await Promise.all([pa, fast, slow, pb, rb].map((u) => RawClient.connect(server.wsUrl, u.token)));
    const busy = (await a.ok('conversation.create', { name: 'busy' })).conversation.id;
    await f.ok('conversation.join', { conversationId: busy });
    await s.ok('conversation.join', { conversationId: busy });
    const other = (await b.ok('conversation.create', { name: 'other' })).conversation.id;
    await r.ok('conversation.join', { conversationId: other });
    // The slow reader takes about 100 KB/s and keeps answering every ping it reads: pings go out every 100 ms while the
    // publisher sends steadily, so it confirms progress well within slowConsumerMs; it is only ever further behind.
    const readOn = readAtMost(socketOf(s), 100_000);
    const slowClosed = () => metric(server, 'parley_closes_total{reason="SLOW_CONSUMER"}');
    const closedBefore = await slowClosed();
    const COUNT = 600;
    try {
      // ~400 KB/s to the busy group for ~3 s (a 2 KB text every 5 ms): the slow reader falls ~300 KB further behind
      // each second, and its backlog passes the 256 KiB budget, which holds every publisher on the server.
      const sends: Promise<any>[] = [];
      for (let i = 0; i < COUNT; i++) {
        sends.push(a.request('message.send', { conversationId: busy, key: `busy-${i}`, text: 'b'.repeat(TEXT_BYTES) }, 60_000));
        await sleep(5);
      }
      await until(async () => (await slowClosed()) > closedBefore, 'the slow reader closed while it still reads', 20_000, 50);
      const replies = await Promise.all(sends);
      assert.deepEqual(replies.filter((x) => !x.result), [], 'the busy group\'s publisher goes on');
      // The other group's publisher is served once the slow reader's backlog is gone.
      for (let i = 0; i < 5; i++) await b.ok('message.send', { conversationId: other, key: `other-${i}`, text: 'hello' });
      await until(() => r.eventsOf('message.new').length === 5, 'the other group gets its messages', 10_000, 20);
      await until(() => f.eventsOf('message.new').length === COUNT, 'the fast reader gets every message', 20_000, 20);
    } finally {
      readOn();
      for (const c of [a, f, s, b, r]) c.close();
    }
  });
});

describe('overload: a held group whose readers take a burst slowly keeps them', () => {
  const SLOW_MS = 4000;
  let server: TestServer;
  before(async () => {
    // Default outgoingProbeBytes (128 KiB) and maxDeliveryDelayMs (500 ms); slowConsumerMs shortened to keep it brief.
    server = await startServer({ ...RAISED_RATES, PARLEY_LIMITS_SLOW_CONSUMER_MS: String(SLOW_MS) });
  });
  after(async () => {
    await server.stop();
  });

  it('closes none of three readers taking 40 KB/s while their publisher is held: pings every 64 KiB confirm their progress', async () => {
    const users = await Promise.all(['burst-pub', 'burst-r1', 'burst-r2', 'burst-r3'].map((n) => register(server, n)));
    const [publisher, ...readers] = await Promise.all(users.map((u) => RawClient.connect(server.wsUrl, u.token)));
    const conversationId = (await publisher!.ok('conversation.create', { name: 'burst' })).conversation.id as string;
    for (const r of readers) await r.ok('conversation.join', { conversationId });
    // 40 KB/s: 64 KiB takes 1.6 s to read, 256 KiB (the old spacing between pings in one write) 6.5 s: over slowConsumerMs.
    const stops = readers.map((r) => readAtMost(socketOf(r), 40_000));
    const BURST = 120; // 64 in flight: group commits of up to 64 sends, each fanned out as one write of ~128 KB per reader
    const PACED = 40; // then one send every 50 ms: the readers are behind by then, so the publisher is held
    const pausesBefore = await metric(server, 'parley_backpressure_pauses_total');
    const send = (i: number) => publisher!.request('message.send', { conversationId, key: `burst-${i}`, text: 'b'.repeat(TEXT_BYTES) }, 60_000);
    try {
      let next = 0;
      const replies: any[] = [];
      const worker = async (): Promise<void> => {
        while (next < BURST) replies.push(await send(next++));
      };
      await Promise.all(Array.from({ length: 64 }, worker));
      const paced: Promise<any>[] = [];
      for (let i = BURST; i < BURST + PACED; i++) {
        paced.push(send(i));
        await sleep(50); // pacing, not a wait for a result
      }
      replies.push(...(await Promise.all(paced)));
      assert.deepEqual(replies.filter((r) => !r.result), [], 'every send is acknowledged');
      assert.ok((await metric(server, 'parley_backpressure_pauses_total')) > pausesBefore, 'the publisher was held: the readers were behind');
      for (const reader of readers) {
        await until(() => reader.eventsOf('message.new').length === BURST + PACED || reader.closed !== null, 'every reader reads everything', 60_000, 50);
        assert.equal(reader.closed, null, `a reader was closed while reading: ${JSON.stringify(reader.closed)}`);
        const seqs = reader.eventsOf('message.new').map((e: any) => e.seq as number);
        assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), 'in order');
        assert.equal(new Set(seqs).size, BURST + PACED, 'exactly once');
      }
    } finally {
      for (const stop of stops) stop();
      for (const c of [publisher!, ...readers]) c.close();
    }
  });
});
