import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RawClient } from '../helpers/raw-client.js';
import { register, startServer, type TestServer } from '../helpers/server.js';

describe('direct messages', () => {
  let server: TestServer;
  let alice: { id: string; token: string };
  let bob: { id: string; token: string };
  before(async () => {
    server = await startServer();
    alice = await register(server, 'dm-alice');
    bob = await register(server, 'dm-bob');
  });
  after(async () => {
    await server.stop();
  });

  it('delivers a first message to an online peer, opening one conversation for the pair', async () => {
    const a = await RawClient.connect(server.wsUrl, alice.token);
    const b = await RawClient.connect(server.wsUrl, bob.token);
    const message = await a.ok('message.send', { to: bob.id, key: 'k-1', text: 'hi bob | with a pipe' });
    assert.equal(message.duplicate, false);
    assert.equal(message.seq, 1);
    const received = await b.waitFor('message.new', (m) => m.id === message.id);
    assert.equal(received.text, 'hi bob | with a pipe');
    assert.equal(received.senderId, alice.id);
    const again = await b.ok('direct.open', { userId: alice.id });
    assert.equal(again.conversation.id, message.conversationId, 'one conversation per pair, whoever opens it');
    a.close();
    b.close();
  });

  it('delivers the first messages of new conversations once each, and none to the sending connection', async () => {
    // Every new direct conversation starts with a join recovery on the server (src/gateway/join-recovery.ts): it
    // reads what was stored since the join while live copies wait, and must not deliver anything twice.
    const peers = await Promise.all(Array.from({ length: 8 }, (_, i) => register(server, `dm-once-${i}`)));
    const a = await RawClient.connect(server.wsUrl, alice.token);
    const others = await Promise.all(peers.map((p) => RawClient.connect(server.wsUrl, p.token)));
    try {
      const sent = await Promise.all(peers.map(async (p, i) => {
        const first = await a.ok('message.send', { to: p.id, key: `once-${i}-1`, text: `first ${i}` });
        const second = await a.ok('message.send', { conversationId: first.conversationId, key: `once-${i}-2`, text: `second ${i}` });
        return [first, second];
      }));
      for (const [i, c] of others.entries()) {
        await c.waitFor('message.new', (m) => m.id === sent[i]![1].id);
        const seqs = c.eventsOf('message.new').filter((m) => m.conversationId === sent[i]![0].conversationId).map((m) => m.seq);
        assert.deepEqual(seqs, [1, 2], `peer ${i} got each message once, in order`);
      }
      // The sending connection has its replies; a recovery that read after the first append may also send it its own
      // first message (documented: a duplicate by seq). Never twice, and nothing else.
      await a.ok('ping');
      const own = a.eventsOf('message.new').map((m) => `${m.conversationId}:${m.seq}`);
      assert.equal(new Set(own).size, own.length, 'no message twice on the sending connection');
      assert.ok(a.eventsOf('message.new').every((m) => m.senderId === alice.id && m.seq === 1), JSON.stringify(own));
    } finally {
      a.close();
      for (const c of others) c.close();
    }
  });

  it('reaches every device of the recipient', async () => {
    const a = await RawClient.connect(server.wsUrl, alice.token);
    const phone = await RawClient.connect(server.wsUrl, bob.token);
    const laptop = await RawClient.connect(server.wsUrl, bob.token);
    const message = await a.ok('message.send', { to: bob.id, key: 'k-devices', text: 'both devices' });
    await phone.waitFor('message.new', (m) => m.id === message.id);
    await laptop.waitFor('message.new', (m) => m.id === message.id);
    for (const c of [a, phone, laptop]) c.close();
  });

  it('keeps messages for an offline recipient, who catches up with sync when back', async () => {
    const a = await RawClient.connect(server.wsUrl, alice.token);
    const { conversation } = await a.ok('direct.open', { userId: bob.id });
    const start = conversation.lastSeq;
    const sent = [];
    for (let i = 0; i < 25; i++) {
      await a.ok('message.send', { conversationId: conversation.id, key: `offline-${i}`, text: `m${i}` });
      sent.push({ text: `m${i}` });
    }
    const b = await RawClient.connect(server.wsUrl, bob.token);
    const synced = await b.ok('sync', { conversations: [{ conversationId: conversation.id, afterSeq: start }], limit: 10 });
    const page = synced.conversations[0];
    assert.equal(page.lastSeq, start + 25);
    assert.deepEqual(page.messages.map((m: any) => m.seq), Array.from({ length: 10 }, (_, i) => start + 1 + i));
    assert.equal(page.more, true);
    const rest = await b.ok('history.after', { conversationId: conversation.id, afterSeq: start + 10, limit: 100 });
    assert.deepEqual([...page.messages, ...rest.messages].map((m: any) => m.text), sent.map((m) => m.text));
    assert.equal(rest.more, false);
    a.close();
    b.close();
  });

  it('refuses a direct conversation with a user that does not exist, or with oneself', async () => {
    const a = await RawClient.connect(server.wsUrl, alice.token);
    assert.equal(await a.errorCode('message.send', { to: 'nobody-at-all', key: 'x', text: 'hello?' }), 'NOT_FOUND');
    assert.equal(await a.errorCode('direct.open', { userId: alice.id }), 'INVALID_REQUEST');
    a.close();
  });
});
