import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RawClient, sleep } from '../helpers/raw-client.js';
import { metric, register, startServer, type TestServer } from '../helpers/server.js';


/**
 * Wait until the server said a refused request can succeed: the largest `retryAfterMs` among `refused` replies.
 * Elapsed time is itself the condition here (a token bucket refills with time, and nothing else announces it). The wait
 * is the server's own figure, counted from now, after the replies arrived: the server computed each figure before
 * sending it, so however slow the machine, the wait can only be longer than needed, never shorter.
 */
async function honourRetryAfter(refused: any[]): Promise<void> {
  const waits = refused.map((r) => r.error?.retryAfterMs);
  assert.ok(waits.length > 0 && waits.every((ms) => Number.isInteger(ms) && ms >= 1), `retryAfterMs on every refusal: ${JSON.stringify(waits)}`);
  await sleep(Math.max(...waits));
}

/** Let the event loop take in what arrived (a close frame) before sending more; not a wait for any moment. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Send `count` requests at once (no waiting between them) and return the replies in request order. */
async function burst(client: RawClient, count: number, type = 'ping', data: (i: number) => unknown = () => undefined): Promise<any[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => client.request(type, data(i))));
}

describe('limits: request rate per connection', () => {
  let server: TestServer;
  let token: string;
  before(async () => {
    server = await startServer({ PARLEY_LIMITS_CONNECTION_RATE_PER_SECOND: '5', PARLEY_LIMITS_CONNECTION_RATE_BURST: '10' });
    token = (await register(server, 'rate-alice')).token;
  });
  after(async () => {
    await server.stop();
  });

  it('answers a burst of 30 pings with about 10 results and RATE_LIMITED (temporary) for the rest, in order', async () => {
    const client = await RawClient.connect(server.wsUrl, token);
    const replies = await burst(client, 30);
    const ok = replies.filter((r) => r.result !== undefined).length;
    assert.ok(ok >= 10 && ok <= 12, `${ok} pings succeeded`);
    assert.ok(replies.slice(0, 10).every((r) => r.result !== undefined), 'the bucket is spent first come, first served');
    const refused = replies.filter((r) => r.error);
    assert.equal(refused.length, 30 - ok);
    for (const r of refused) {
      assert.equal(r.error.code, 'RATE_LIMITED');
      assert.equal(r.error.temporary, true);
    }
    assert.ok(refused.every((r, i) => typeof r.id === 'number' && (i === 0 || r.id > refused[i - 1].id)), 'refusals echo the request ids');
    assert.equal(client.closed, null, 'a short burst does not close the connection');
    // 5 per second: one token is back within 200 ms of the refusal.
    assert.ok(refused.every((r) => r.error.retryAfterMs <= 200), `retryAfterMs: ${refused.map((r) => r.error.retryAfterMs)}`);
    await honourRetryAfter(refused);
    assert.deepEqual(await client.ok('ping'), {}, 'the bucket refills');
    client.close();
  });

  it('echoes the id of every request refused for rate, however large its frame (every request gets one reply)', async () => {
    const client = await RawClient.connect(server.wsUrl, token);
    // 20 KB frames: a text of control characters, each 6 bytes once JSON-escaped.
    const replies = await burst(client, 30, 'message.send', (i) => ({ conversationId: 'c-none', key: `big-${i}`, text: '\u0001'.repeat(3400) }));
    const refused = replies.filter((r) => r.error?.code === 'RATE_LIMITED');
    assert.ok(refused.length >= 15, `${refused.length} refused for rate`);
    assert.ok(refused.every((r) => typeof r.id === 'number'), `ids: ${refused.map((r) => r.id)}`);
    assert.equal(new Set(replies.map((r) => r.id)).size, 30, 'one reply per request, each with its own id');
    await honourRetryAfter(refused);
    client.close();
  });

  it('limits each connection on its own', async () => {
    const first = await RawClient.connect(server.wsUrl, token);
    const second = await RawClient.connect(server.wsUrl, token);
    await burst(first, 20);
    assert.ok((await burst(second, 10)).every((r) => r.result !== undefined), "the other connection's bucket is untouched");
    first.close();
    second.close();
  });
});

describe('limits: flood', () => {
  let server: TestServer;
  let token: string;
  before(async () => {
    server = await startServer({
      PARLEY_LIMITS_CONNECTION_RATE_PER_SECOND: '5',
      PARLEY_LIMITS_CONNECTION_RATE_BURST: '10',
      PARLEY_LIMITS_FLOOD_CLOSE_AFTER: '20',
    });
    token = (await register(server, 'flood-alice')).token;
  });
  after(async () => {
    await server.stop();
  });

  it('closes a connection that keeps sending past floodCloseAfter refusals in a row with 4003; others stay', async () => {
    const flooder = await RawClient.connect(server.wsUrl, token);
    const bystander = await RawClient.connect(server.wsUrl, token);
    const deadline = Date.now() + 5000;
    let sent = 0;
    while (flooder.closed === null && flooder.ws.readyState === flooder.ws.OPEN && sent < 500 && Date.now() < deadline) {
      for (let i = 0; i < 10; i++, sent++) flooder.sendRaw(JSON.stringify({ id: `f-${sent}`, type: 'ping' }));
      await nextTurn();
    }
    assert.equal((await flooder.waitClose(3000)).code, 4003);
    const refused = flooder.frames.filter((f) => f.error?.code === 'RATE_LIMITED').length;
    assert.ok(refused <= 20, `${refused} refusals before the close`);
    assert.ok(refused >= 10, `${refused} refusals before the close`);
    assert.deepEqual(await bystander.ok('ping'), {});
    assert.equal(await metric(server, 'parley_closes_total{reason="FLOOD"}'), 1);
    bystander.close();
  });

  it('does not close a client that backs off when refused', async () => {
    const client = await RawClient.connect(server.wsUrl, token);
    for (let round = 0; round < 3; round++) {
      const replies = await burst(client, 15);
      const refused = replies.filter((r) => r.error?.code === 'RATE_LIMITED');
      assert.ok(refused.length > 0);
      // Backing off = waiting as long as the server says: the next request then succeeds, which ends the refusals in a
      // row (without it, the second round would be refusal 20 in a row and close the connection).
      await honourRetryAfter(refused);
    }
    // A reply after the last round: a close for the refusals would have come before it, on the same socket.
    assert.deepEqual(await client.ok('ping'), {});
    assert.equal(client.closed, null);
    client.close();
  });
});

describe('limits: messages per user across devices', () => {
  let server: TestServer;
  let alice: { id: string; token: string };
  let bob: { id: string; token: string };
  before(async () => {
    server = await startServer({ PARLEY_LIMITS_USER_MESSAGE_RATE_PER_SECOND: '1', PARLEY_LIMITS_USER_MESSAGE_RATE_BURST: '4' });
    alice = await register(server, 'umr-alice');
    bob = await register(server, 'umr-bob');
  });
  after(async () => {
    await server.stop();
  });

  it('refuses sends past the user budget on any device with RATE_LIMITED, stores none of them, and accepts the retry later', async () => {
    const phone = await RawClient.connect(server.wsUrl, alice.token);
    const laptop = await RawClient.connect(server.wsUrl, alice.token);
    const b = await RawClient.connect(server.wsUrl, bob.token);
    const { conversation } = await b.ok('direct.open', { userId: alice.id });
    const keys = [...['phone-0', 'phone-1', 'phone-2', 'phone-3'], ...['laptop-0', 'laptop-1', 'laptop-2', 'laptop-3']];
    const replies = await Promise.all([
      burst(phone, 4, 'message.send', (i) => ({ conversationId: conversation.id, key: keys[i], text: keys[i] })),
      burst(laptop, 4, 'message.send', (i) => ({ conversationId: conversation.id, key: keys[4 + i], text: keys[4 + i] })),
    ]).then(([p, l]) => [...p, ...l]);
    // Each text is its key; the receipt says which were stored (another user's history carries no keys).
    const stored = keys.filter((_, i) => replies[i].result);
    const refused = replies.filter((r) => r.error);
    const refusedKeys = keys.filter((_, i) => replies[i].error);
    assert.ok(stored.length >= 4 && stored.length <= 5, `${stored.length} sends accepted`);
    assert.equal(refused.length, 8 - stored.length);
    for (const r of refused) assert.deepEqual([r.error.code, r.error.temporary], ['RATE_LIMITED', true]);
    assert.deepEqual(await phone.ok('ping'), {}, 'other requests are not spent from the message budget');

    const { messages } = await b.ok('history.after', { conversationId: conversation.id, afterSeq: 0 });
    assert.deepEqual(messages.map((m: any) => m.text).sort(), [...stored].sort(), 'refused messages are not stored');
    assert.deepEqual(messages.map((m: any) => m.seq), stored.map((_, i) => i + 1), 'no gap in seq');

    await honourRetryAfter(refused);
    const retried = await laptop.ok('message.send', { conversationId: conversation.id, key: refusedKeys[0], text: 'retried' });
    assert.equal(retried.duplicate, false, 'the refused send was never stored');
    assert.equal(retried.seq, stored.length + 1);
    for (const c of [phone, laptop, b]) c.close();
  });

  it('does not spend one user\'s budget on another user', async () => {
    const a = await RawClient.connect(server.wsUrl, alice.token);
    const b = await RawClient.connect(server.wsUrl, bob.token);
    const { conversation } = await a.ok('direct.open', { userId: bob.id });
    // Whatever alice left in her bucket, 6 sends at once (burst 4, 1 per second) spend it; the refusal proves it.
    const alices = await burst(a, 6, 'message.send', (i) => ({ conversationId: conversation.id, key: `spend-${i}`, text: 'x' }));
    assert.ok(alices.some((r) => r.error?.code === 'RATE_LIMITED'), "alice's budget is spent");
    const bobs = await burst(b, 3, 'message.send', (i) => ({ conversationId: conversation.id, key: `bob-own-${i}`, text: 'y' }));
    assert.ok(bobs.every((r) => r.result), JSON.stringify(bobs.filter((r) => r.error)));
    a.close();
    b.close();
  });
});

describe('limits: slow consumer', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({
      // The least backlog level the config allows for 20,000-byte messages (twice 6 × 20,000 + 4,096 + 2,048).
      PARLEY_LIMITS_MAX_OUTGOING_BYTES: '262144',
      PARLEY_LIMITS_MAX_MESSAGE_BYTES: '20000',
      PARLEY_LIMITS_MAX_FRAME_BYTES: '131072',
      PARLEY_LIMITS_USER_MESSAGE_RATE_PER_SECOND: '10000',
      PARLEY_LIMITS_USER_MESSAGE_RATE_BURST: '10000',
      PARLEY_LIMITS_CONNECTION_RATE_PER_SECOND: '10000',
      PARLEY_LIMITS_CONNECTION_RATE_BURST: '10000',
    });
  });
  after(async () => {
    await server.stop();
  });

  it('closes a member that stops reading (4002) while the others keep receiving everything', async () => {
    const [alice, bob, carol] = await Promise.all(['slow-alice', 'slow-bob', 'slow-carol'].map((n) => register(server, n)));
    const a = await RawClient.connect(server.wsUrl, alice.token);
    const slow = await RawClient.connect(server.wsUrl, bob.token);
    const c = await RawClient.connect(server.wsUrl, carol.token);
    const conversationId = (await a.ok('conversation.create', { name: 'firehose' })).conversation.id;
    await slow.ok('conversation.join', { conversationId });
    await c.ok('conversation.join', { conversationId });
    const connectionsBefore = await metric(server, 'parley_connections');
    assert.equal(connectionsBefore, 3);

    (slow.ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
    // 20 kB: a reading client gets a receipt per send and the others an event each, far within the 256 kB level.
    const text = 'x'.repeat(20_000);
    const deadline = Date.now() + 30_000;
    let sent = 0;
    let closes = 0;
    while (sent < 2000 && Date.now() < deadline) {
      await a.ok('message.send', { conversationId, key: `big-${sent}`, text });
      sent++;
      if (sent % 10 === 0 && (closes = await metric(server, 'parley_closes_total{reason="SLOW_CONSUMER"}')) > 0) break;
    }
    assert.equal(closes, 1, `the slow consumer was closed after ${sent} messages of 20 kB`);
    // A few more after the close: the others are still served.
    for (let i = 0; i < 5; i++, sent++) await a.ok('message.send', { conversationId, key: `big-${sent}`, text });

    const all = await c.waitFor('message.new', (m) => m.seq === sent, 10_000);
    assert.equal(all.seq, sent);
    assert.equal(c.eventsOf('message.new').length, sent, 'the reading member received every message');
    assert.equal(a.closed, null);
    assert.equal(c.closed, null);

    // The server lets go of the socket (terminated 2 s after the close frame that cannot be written).
    const released = Date.now() + 5000;
    while ((await metric(server, 'parley_connections')) !== 2 && Date.now() < released) await sleep(100);
    assert.equal(await metric(server, 'parley_connections'), 2);
    (slow.ws as unknown as { _socket: import('node:net').Socket })._socket.resume();
    const { code } = await slow.waitClose(5000);
    assert.ok(code === 4002 || code === 1006, `closed with ${code}`);
    a.close();
    c.close();
  });
});

describe('limits: conversations per user and members per group', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ PARLEY_LIMITS_MAX_CONVERSATIONS_PER_USER: '2', PARLEY_LIMITS_MAX_MEMBERS_PER_GROUP: '2' });
  });
  after(async () => {
    await server.stop();
  });

  it('refuses a third conversation with LIMIT_EXCEEDED, whether created, joined or accepted', async () => {
    const [alice, bob] = await Promise.all(['cap-alice', 'cap-bob'].map((n) => register(server, n)));
    const a = await RawClient.connect(server.wsUrl, alice.token);
    const b = await RawClient.connect(server.wsUrl, bob.token);
    await a.ok('conversation.create', { name: 'first' });
    await a.ok('conversation.create', { name: 'second' });
    const third = await a.request('conversation.create', { name: 'third' });
    assert.deepEqual([third.error?.code, third.error?.temporary], ['LIMIT_EXCEEDED', false]);
    const publicGroup = (await b.ok('conversation.create', { name: 'bobs public' })).conversation.id;
    assert.equal(await a.errorCode('conversation.join', { conversationId: publicGroup }), 'LIMIT_EXCEEDED');
    const privateGroup = (await b.ok('conversation.create', { name: 'bobs private', visibility: 'private' })).conversation.id;
    const { invite } = await b.ok('invite.create', { conversationId: privateGroup });
    assert.equal(await a.errorCode('invite.accept', { token: invite.token }), 'LIMIT_EXCEEDED');
    const first = (await a.ok('conversation.list')).conversations.find((c: any) => c.name === 'first');
    const { invite: ownInvite } = await a.ok('invite.create', { conversationId: first.id });
    assert.equal(await a.errorCode('invite.accept', { token: ownInvite.token }), 'ALREADY_MEMBER', 'at the limit, a member is still told they are one');
    const { conversations } = await a.ok('conversation.list');
    assert.deepEqual(conversations.map((c: any) => c.name).sort(), ['first', 'second']);
    assert.equal((await b.ok('member.list', { conversationId: publicGroup })).members.length, 1);
    a.close();
    b.close();
  });

  it('refuses a member past the group limit with LIMIT_EXCEEDED, by join or by invite', async () => {
    const [owner, second, third] = await Promise.all(['full-owner', 'full-second', 'full-third'].map((n) => register(server, n)));
    const o = await RawClient.connect(server.wsUrl, owner.token);
    const s = await RawClient.connect(server.wsUrl, second.token);
    const t = await RawClient.connect(server.wsUrl, third.token);
    const conversationId = (await o.ok('conversation.create', { name: 'pair only' })).conversation.id;
    await s.ok('conversation.join', { conversationId });
    const refused = await t.request('conversation.join', { conversationId });
    assert.deepEqual([refused.error?.code, refused.error?.temporary], ['LIMIT_EXCEEDED', false]);
    const { invite } = await o.ok('invite.create', { conversationId });
    assert.equal(await t.errorCode('invite.accept', { token: invite.token }), 'LIMIT_EXCEEDED');
    const { members } = await o.ok('member.list', { conversationId });
    assert.deepEqual(members.map((m: any) => m.userId).sort(), [owner.id, second.id].sort());
    assert.equal((await t.ok('conversation.list')).conversations.length, 0);
    o.close();
    s.close();
    t.close();
  });
});
