import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { Seats } from '../helpers/seats.js';

/** `limits.maxConversationsPerUser` on every path that makes a user a member, and under concurrency. */
describe('limits: conversations per user', () => {
  let server: TestServer;
  const seats = new Seats(() => server, 'climit');
  const MAX = 3;
  before(async () => {
    server = await startServer({
      PARLEY_LIMITS_MAX_CONVERSATIONS_PER_USER: String(MAX),
      // Many requests from one test process: not the subject here.
      PARLEY_LIMITS_CONNECTION_RATE_BURST: '1000',
    });
  });
  after(async () => {
    seats.closeAll();
    await server.stop();
  });

  it('refuses direct.open and message.send {to} with LIMIT_EXCEEDED when the opener is at the limit, and stores nothing', async () => {
    const me = await seats.seat('full');
    const peer = await seats.seat('peer');
    for (let i = 0; i < MAX; i++) await me.client.ok('conversation.create', { name: `mine ${i}` });
    assert.equal(await me.client.errorCode('direct.open', { userId: peer.user.id }), 'LIMIT_EXCEEDED');
    const send = await me.client.request('message.send', { to: peer.user.id, key: 'k1', text: 'hi' });
    assert.equal(send.error?.code, 'LIMIT_EXCEEDED');
    assert.equal(send.error.temporary, false);
    const rest = await api(server, me.user.token, 'POST', '/api/v1/direct', { userId: peer.user.id });
    assert.equal(rest.status, 422);
    assert.equal(rest.body.error.code, 'LIMIT_EXCEEDED');
    assert.equal((await peer.client.ok('conversation.list')).conversations.length, 0, 'the peer got no conversation');
    assert.equal((await me.client.ok('conversation.list')).conversations.length, MAX);
  });

  it('counts a new direct conversation for the peer too: a peer at the limit cannot be pulled past it', async () => {
    const opener = await seats.seat('opener');
    const full = await seats.seat('full-peer');
    for (let i = 0; i < MAX; i++) await full.client.ok('conversation.create', { name: `theirs ${i}` });
    assert.equal(await opener.client.errorCode('direct.open', { userId: full.user.id }), 'LIMIT_EXCEEDED');
    assert.equal(await opener.client.errorCode('message.send', { to: full.user.id, key: 'k', text: 'hi' }), 'LIMIT_EXCEEDED');
    assert.equal((await full.client.ok('conversation.list')).conversations.length, MAX);
    assert.equal((await opener.client.ok('conversation.list')).conversations.length, 0);
  });

  it('still opens an existing direct conversation and sends in it at the limit', async () => {
    const me = await seats.seat('dm-first');
    const peer = await seats.seat('dm-peer');
    await me.client.ok('direct.open', { userId: peer.user.id });
    for (let i = 0; i < MAX - 1; i++) await me.client.ok('conversation.create', { name: `mine ${i}` });
    await me.client.ok('direct.open', { userId: peer.user.id });
    const message = await me.client.ok('message.send', { to: peer.user.id, key: 'again', text: 'still here' });
    assert.equal(message.seq, 1);
  });

  it('lets 40 concurrent conversation.create with room for 2 more create exactly 2', async () => {
    const me = await seats.seat('race');
    await me.client.ok('conversation.create', { name: 'first' });
    const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => me.client.request('conversation.create', { name: `race ${i}` })));
    assert.equal(replies.filter((r) => r.result).length, MAX - 1);
    assert.ok(replies.filter((r) => !r.result).every((r) => r.error.code === 'LIMIT_EXCEEDED'));
    assert.equal((await me.client.ok('conversation.list')).conversations.length, MAX);
  });

  it('holds under concurrent joins, invite accepts and direct opens mixed together', async () => {
    const owner = await seats.seat('owner');
    const inviter = await seats.seat('inviter');
    const me = await seats.seat('mixed');
    const publicIds: string[] = [];
    for (let i = 0; i < MAX; i++) publicIds.push((await owner.client.ok('conversation.create', { name: `public ${i}` })).conversation.id);
    const { conversation: secret } = await inviter.client.ok('conversation.create', { name: 'secret', visibility: 'private' });
    const { invite } = await inviter.client.ok('invite.create', { conversationId: secret.id });
    const peers = await Promise.all([seats.seat('p1'), seats.seat('p2')]);
    const replies = await Promise.all([
      ...publicIds.map((conversationId) => me.client.request('conversation.join', { conversationId })),
      me.client.request('invite.accept', { token: invite.token }),
      ...peers.map((p) => me.client.request('direct.open', { userId: p.user.id })),
      ...peers.map((p, i) => me.client.request('message.send', { to: p.user.id, key: `m${i}`, text: 'hi' })),
    ]);
    assert.ok(replies.filter((r) => r.error).every((r) => r.error.code === 'LIMIT_EXCEEDED'), JSON.stringify(replies.map((r) => r.error?.code)));
    assert.equal((await me.client.ok('conversation.list')).conversations.length, MAX);
  });
});
