/**
 * Lean events and replies (issue 9): a delivered message carries no idempotency key and no field at its default; the
 * sending connection gets a small receipt instead of its own `message.new` (and the same for edits, deletes and read
 * cursors), while the sender's other connections still get the events; catch-up gives the sender its own keys back;
 * `welcome` lists the positions a client needs to start (or skip) `sync`, bounded by the reply budget.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { RawClient } from '../helpers/raw-client.js';
import { Seats, settle } from '../helpers/seats.js';
import { api, startServer, type TestServer } from '../helpers/server.js';

const MESSAGE_FIELDS = ['id', 'conversationId', 'seq', 'senderId', 'text', 'createdAt'];

describe('lean message events and send receipts', () => {
  let server: TestServer;
  const seats = new Seats(() => server, 'lean');
  before(async () => {
    server = await startServer();
  });
  afterEach(() => seats.closeAll());
  after(async () => {
    await server.stop();
  });

  it('delivers message.new without key or default fields, to everyone but the sending connection, which gets a receipt', async () => {
    const alice = await seats.seat('alice');
    const bob = await seats.seat('bob');
    const aliceLaptop = await seats.connect(alice.user);
    const conversationId = await seats.publicGroup(alice, [bob]);
    const text = 'x'.repeat(100);
    const receipt = await alice.client.ok('message.send', { conversationId, key: 'k-lean-1', text });
    assert.deepEqual(Object.keys(receipt).sort(), ['conversationId', 'createdAt', 'duplicate', 'id', 'seq'], 'the receipt holds only what the server assigned');
    assert.equal(receipt.duplicate, false);

    for (const c of [bob.client, aliceLaptop]) {
      const m = await c.waitFor('message.new', (e) => e.seq === receipt.seq && e.conversationId === conversationId);
      assert.deepEqual(Object.keys(m), MESSAGE_FIELDS, 'no key, meta, editedAt or deleted');
      assert.deepEqual(m, { id: receipt.id, conversationId, seq: receipt.seq, senderId: alice.user.id, text, createdAt: receipt.createdAt });
    }
    await settle(alice.client);
    assert.equal(alice.client.eventsOf('message.new').length, 0, 'the sending connection got no copy of its own message');

    // meta is sent when given (and only then).
    const withMeta = await alice.client.ok('message.send', { conversationId, key: 'k-lean-2', text: 'hi', meta: { n: 1 } });
    const m2 = await bob.client.waitFor('message.new', (e) => e.seq === withMeta.seq);
    assert.deepEqual(m2.meta, { n: 1 });
    assert.equal('key' in m2, false);
  });

  it('gives a duplicate the original message, with its key, in the receipt', async () => {
    const alice = await seats.seat('dup');
    const conversationId = await seats.publicGroup(alice, []);
    const first = await alice.client.ok('message.send', { conversationId, key: 'dup-key', text: 'original' });
    const retry = await alice.client.ok('message.send', { conversationId, key: 'dup-key', text: 'a different retry text' });
    assert.equal(retry.duplicate, true);
    assert.deepEqual(retry.message, { id: first.id, conversationId, seq: first.seq, senderId: alice.user.id, text: 'original', key: 'dup-key', createdAt: first.createdAt });
  });

  it("returns the sender's own key in history and sync, and nobody else's", async () => {
    const alice = await seats.seat('hist-a');
    const bob = await seats.seat('hist-b');
    const conversationId = await seats.publicGroup(alice, [bob]);
    await alice.client.ok('message.send', { conversationId, key: 'alice-key', text: 'from alice' });
    await bob.client.ok('message.send', { conversationId, key: 'bob-key', text: 'from bob' });
    const keysSeenBy = async (c: RawClient) => {
      const history = (await c.ok('history.after', { conversationId, afterSeq: 0 })).messages.map((m: any) => m.key ?? null);
      const before = (await c.ok('history.before', { conversationId })).messages.map((m: any) => m.key ?? null);
      const sync = (await c.ok('sync', { conversations: [{ conversationId, afterSeq: 0 }] })).conversations[0].messages.map((m: any) => m.key ?? null);
      return { history, before, sync };
    };
    assert.deepEqual(await keysSeenBy(alice.client), { history: ['alice-key', null], before: ['alice-key', null], sync: ['alice-key', null] });
    assert.deepEqual(await keysSeenBy(bob.client), { history: [null, 'bob-key'], before: [null, 'bob-key'], sync: [null, 'bob-key'] });
  });

  it('sends message.updated and read to every connection but the one that made the change', async () => {
    const alice = await seats.seat('upd-a');
    const bob = await seats.seat('upd-b');
    const aliceLaptop = await seats.connect(alice.user);
    const conversationId = await seats.publicGroup(alice, [bob]);
    const sent = await alice.client.ok('message.send', { conversationId, key: 'upd', text: 'typo' });
    const { message: edited } = await alice.client.ok('message.edit', { conversationId, seq: sent.seq, text: 'fixed' });
    assert.equal('key' in edited, false, 'the edit reply is the lean message');
    for (const c of [bob.client, aliceLaptop]) {
      const u = await c.waitFor('message.updated', (e) => e.seq === sent.seq);
      assert.deepEqual(u, { id: sent.id, conversationId, seq: sent.seq, senderId: alice.user.id, text: 'fixed', createdAt: sent.createdAt, editedAt: edited.editedAt });
    }
    await bob.client.ok('read.mark', { conversationId, seq: sent.seq });
    await alice.client.waitFor('read', (e) => e.userId === bob.user.id);
    await settle(bob.client);
    assert.equal(bob.client.eventsOf('read').length, 0, 'the marking connection has the reply');
    await settle(alice.client);
    assert.equal(alice.client.eventsOf('message.updated').length, 0, 'the editing connection has the reply');
  });

  it('leaves empty messages and a false more out of sync entries', async () => {
    const alice = await seats.seat('sync-a');
    const conversationId = await seats.publicGroup(alice, []);
    await alice.client.ok('message.send', { conversationId, key: 's1', text: 'one' });
    const { conversations: [entry] } = await alice.client.ok('sync', { conversations: [{ conversationId, afterSeq: 1 }] });
    assert.deepEqual(entry, { conversationId, lastSeq: 1, rev: entry.rev });
  });
});

describe('welcome positions', () => {
  let server: TestServer;
  const seats = new Seats(() => server, 'wpos');
  before(async () => {
    // The smallest reply budget, so that a user of 80 conversations overflows welcome's list.
    server = await startServer({ PARLEY_LIMITS_MAX_REPLY_BYTES: '4096' });
  });
  afterEach(() => seats.closeAll());
  after(async () => {
    await server.stop();
  });

  it('lists each conversation with lastSeq, rev and readSeq, most recently active first', async () => {
    const alice = await seats.seat('a');
    const bob = await seats.seat('b');
    const quiet = await seats.publicGroup(alice, [bob]);
    const busy = await seats.publicGroup(alice, [bob]);
    for (let i = 0; i < 3; i++) await alice.client.ok('message.send', { conversationId: busy, key: `b${i}`, text: `m${i}` });
    await bob.client.ok('read.mark', { conversationId: busy, seq: 2 });
    const again = await seats.connect(bob.user);
    const welcome = again.eventsOf('welcome')[0];
    const revOf = async (id: string) => (await again.ok('conversation.get', { conversationId: id })).conversation.rev;
    assert.deepEqual(welcome.conversations, [
      { id: busy, lastSeq: 3, rev: await revOf(busy), readSeq: 2 },
      { id: quiet, lastSeq: 0, rev: await revOf(quiet), readSeq: 0 },
    ]);
    assert.equal(welcome.conversationsMore, false);
  });

  it('cuts the list at the reply budget, says so, and sync returns the rest in unknown', async () => {
    const user = await seats.user('many');
    const ids: string[] = [];
    for (let i = 0; i < 80; i++) {
      const res = await api(server, user.token, 'POST', '/api/v1/conversations', { name: `many ${i}`, visibility: 'private' });
      assert.equal(res.status, 201);
      ids.push(res.body.conversation.id);
    }
    const client = await seats.connect(user);
    const welcome = client.eventsOf('welcome')[0];
    assert.equal(welcome.conversationsMore, true);
    assert.ok(welcome.conversations.length > 0 && welcome.conversations.length < 80, `${welcome.conversations.length} listed`);
    assert.ok(Buffer.byteLength(JSON.stringify(welcome)) <= 4096, 'within the budget');
    const listed = welcome.conversations.map((c: any) => c.id);
    const { unknown, unknownMore } = await client.ok('sync', { conversations: welcome.conversations.map((c: any) => ({ conversationId: c.id, afterSeq: c.lastSeq, rev: c.rev })) });
    const all = new Set([...listed, ...unknown.map((c: any) => c.id)]);
    // The sync reply has the same small budget: it may take rounds, but each names what it learned.
    assert.ok(unknown.length > 0 || unknownMore);
    for (const id of all) assert.ok(ids.includes(id));
  });

  it('lists positions read after the subscriptions: a message stored during the connect is either listed or delivered', async () => {
    const alice = await seats.seat('race-a');
    const bob = await seats.user('race-b');
    const conversationId = await seats.publicGroup(alice, []);
    await api(server, bob.token, 'POST', `/api/v1/conversations/${conversationId}/join`);
    for (let round = 0; round < 10; round++) {
      const connecting = RawClient.connect(server.wsUrl, bob.token);
      const sent = await alice.client.ok('message.send', { conversationId, key: `race-${round}`, text: 'during connect' });
      const client = await connecting;
      const listed = client.eventsOf('welcome')[0].conversations.find((c: any) => c.id === conversationId);
      if (listed.lastSeq < sent.seq) await client.waitFor('message.new', (m) => m.seq === sent.seq, 3000);
      client.close();
    }
  });
});
