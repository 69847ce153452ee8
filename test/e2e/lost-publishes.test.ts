import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { clusterTopic, conversationTopic } from '../../src/bus/bus.js';
import { createRedisBus, type RedisBus } from '../../src/bus/redis/redis-bus.js';
import { Publisher } from '../../src/domain/publisher.js';
import { Database } from '../../src/store/sqlite/driver.js';
import { until } from '../helpers/raw-client.js';
import { startRedisInstances, type RedisInstances } from '../helpers/redis-instances.js';
import { ADMIN_TOKEN, api, metric, register, type TestServer } from '../helpers/server.js';
import { startRedis, type RedisService } from '../helpers/services/redis.js';

/**
 * Publishes that fail while the bus's subscribers work: after a Redis restart each instance's publishing connection
 * reconnects on its own schedule, possibly after the subscribers were restored and clients told to resynchronise, and
 * a send accepted in that window is stored and acknowledged while its event is lost. Here the fault is made exactly,
 * on a real redis-server: `ACL SETUSER default -publish` makes every PUBLISH fail (NOPERM) while subscriptions, PING
 * and every other command keep working, and `+publish` ends it. What must hold: once the bus takes publishes again,
 * the live members learn of what was lost (`resync` with reason `events_lost`, or presence published again) without
 * waiting for a periodic sync.
 */
describe('events whose publish failed', () => {
  let cluster: RedisInstances;
  let admin: Redis;
  let servers: TestServer[];
  const connect = (server: TestServer, token: string) => cluster.connect(server, token);
  // NaN when a series is missing, so that an unwired gauge fails the checks below instead of reading 0.
  const failures = (server: TestServer) => metric(server, 'parley_bus_publish_failures_total', NaN);
  const denyPublish = () => admin.call('ACL', 'SETUSER', 'default', '-publish');
  const allowPublish = () => admin.call('ACL', 'SETUSER', 'default', '+publish');

  before(async () => {
    cluster = await startRedisInstances(2, {
      PARLEY_PRESENCE_BATCH_MS: '100',
      // Long enough that no sweep publishes a departed user's presence again during a test: only the retry may.
      PARLEY_PRESENCE_TTL_MS: '60000',
    });
    servers = cluster.servers;
    admin = new Redis(cluster.redis.url, { lazyConnect: true });
    await admin.connect();
  });
  after(async () => {
    admin?.disconnect();
    await cluster?.close();
  });

  it('a message sent meanwhile: its members are asked to resync once publishes work again', async () => {
    const [one, two] = servers as [TestServer, TestServer];
    const erin = await register(one, `erin-${process.pid}`);
    const dave = await register(two, `dave-${process.pid}`);
    const e = await connect(one, erin.token);
    const d = await connect(two, dave.token);
    const { conversation } = await e.ok('conversation.create', { name: `lost ${process.pid}` });
    await d.ok('conversation.join', { conversationId: conversation.id });
    await e.waitFor('member.joined', (x) => x.conversationId === conversation.id && x.member.userId === dave.id);
    const failedBefore = await failures(one);
    await denyPublish();
    let during;
    try {
      // Stored and acknowledged; its event cannot be published.
      during = await e.ok('message.send', { conversationId: conversation.id, key: 'during', text: 'while PUBLISH fails' });
      // The publish follows the reply: wait for its failure, and for the topic owed a resync.
      await until(async () => (await failures(one)) > failedBefore, 'its publish failed', 10_000, 20);
      await until(async () => (await metric(one, 'parley_bus_resyncs_owed{scope="topic"}', NaN)) === 1, 'one topic owed a resync', 10_000, 20);
    } finally {
      await allowPublish();
    }
    assert.deepEqual(await d.waitFor('resync', (x) => x.reason === 'events_lost', 20_000), { reason: 'events_lost' });
    assert.equal(d.closed, null, 'the connection stays open');
    const { conversations } = await d.ok('sync', { conversations: [{ conversationId: conversation.id, afterSeq: during.seq - 1 }] });
    const caught = conversations.find((c: any) => c.conversationId === conversation.id);
    assert.ok(caught?.messages.some((m: any) => m.id === during.id), `sync returns the message: ${JSON.stringify(caught)}`);
    await until(() => one.logs.some((l) => String(l.msg).startsWith('events were lost while the bus was away')), 'the recovery logged', 10_000, 20);
    assert.equal(await metric(one, 'parley_bus_resyncs_owed{scope="topic"}', NaN), 0, 'nothing owed any more');
  });

  it("a direct conversation opened meanwhile: the peer's instance starts delivering it, and the peer resyncs", async () => {
    const [one, two] = servers as [TestServer, TestServer];
    const fay = await register(one, `fay-${process.pid}`);
    const gus = await register(two, `gus-${process.pid}`);
    const f = await connect(one, fay.token);
    const g = await connect(two, gus.token);
    await denyPublish();
    let opened;
    try {
      // gus's conversation.updated is lost: his instance does not know he is in it, so it is not subscribed.
      opened = await f.ok('direct.open', { userId: gus.id });
    } finally {
      await allowPublish();
    }
    await g.waitFor('resync', (x) => x.reason === 'events_lost', 20_000);
    // Interests were read from the store before the resync: a message sent now is delivered live.
    const sent = await f.ok('message.send', { conversationId: opened.conversation.id, key: 'k', text: 'hello gus' });
    assert.equal((await g.waitFor('message.new', (m) => m.id === sent.id, 10_000)).text, 'hello gus');
  });

  it('a kick while publishes fail is refused and changes nothing; once they work, it stops delivery to the kicked member', async () => {
    const [one, two] = servers as [TestServer, TestServer];
    const [owner, kicked, bystander] = await Promise.all(['owner', 'kicked', 'bystander'].map((n) => register(one, `${n}-${process.pid}`)));
    const o = await connect(one, owner!.token);
    const k = await connect(two, kicked!.token);
    const b = await connect(two, bystander!.token);
    const { conversation } = await o.ok('conversation.create', { name: `kick ${process.pid}` });
    for (const c of [k, b]) await c.ok('conversation.join', { conversationId: conversation.id });
    await denyPublish();
    try {
      // Its event is what stops delivery on the kicked member's instance: stored without it, the member would go on
      // receiving there until the owed resync.
      assert.equal(await o.errorCode('member.kick', { conversationId: conversation.id, userId: kicked!.id }), 'UNAVAILABLE');
      assert.equal(await o.errorCode('member.ban', { conversationId: conversation.id, userId: kicked!.id }), 'UNAVAILABLE');
      // Every removal of access is refused the same way: a leave, a logout (REST), an account ban (admin REST).
      assert.equal(await k.errorCode('conversation.leave', { conversationId: conversation.id }), 'UNAVAILABLE');
      const logout = await api(one, kicked!.token, 'DELETE', '/api/v1/sessions/current');
      assert.deepEqual([logout.status, logout.body.error?.code], [503, 'UNAVAILABLE']);
      const ban = await api(one, ADMIN_TOKEN, 'POST', `/api/v1/admin/users/${kicked!.id}/ban`);
      assert.deepEqual([ban.status, ban.body.error?.code], [503, 'UNAVAILABLE']);
    } finally {
      await allowPublish();
    }
    const { members } = await o.ok('member.list', { conversationId: conversation.id });
    assert.ok(members.some((m: any) => m.userId === kicked!.id), 'still a member: nothing was stored');
    assert.equal((await api(two, kicked!.token, 'GET', '/api/v1/conversations')).status, 200, 'the token still works: not revoked');
    assert.equal(k.closed, null, 'not banned');
    await o.ok('member.kick', { conversationId: conversation.id, userId: kicked!.id });
    await k.waitFor('conversation.removed', (x) => x.conversationId === conversation.id, 10_000);
    const after = await o.ok('message.send', { conversationId: conversation.id, key: 'after-kick', text: 'not for the kicked' });
    await b.waitFor('message.new', (m) => m.id === after.id, 10_000);
    // A reply on the kicked member's connection follows anything queued to it before: the message would be ahead of it.
    await k.ok('ping');
    assert.equal(k.eventsOf('message.new').some((m) => m.id === after.id), false);
  });

  it('presence changed meanwhile: it is published again once publishes work', async () => {
    const [one, two] = servers as [TestServer, TestServer];
    const hal = await register(one, `hal-${process.pid}`);
    const ivy = await register(two, `ivy-${process.pid}`);
    const h = await connect(one, hal.token);
    const i = await connect(two, ivy.token);
    const { conversation } = await h.ok('direct.open', { userId: ivy.id });
    await i.waitFor('conversation.updated', (c) => c.id === conversation.id, 10_000);
    await until(async () => (await i.ok('presence.get', { userIds: [hal.id] })).users[0]?.online === true, 'hal online', 10_000, 50);
    const failedBefore = await failures(one);
    await denyPublish();
    try {
      h.close();
      // hal's instance finds him offline and tries to publish it to the direct conversation: that publish fails.
      await until(async () => (await failures(one)) > failedBefore, 'the presence publish failed', 10_000, 20);
      assert.equal(i.eventsOf('presence').some((x) => x.users.some((u: any) => u.userId === hal.id && u.online === false)), false);
    } finally {
      await allowPublish();
    }
    await i.waitFor('presence', (x) => x.users.some((u: any) => u.userId === hal.id && u.online === false), 20_000);
  });
});

/**
 * The periodic reconciliation (bus.reconcileMs): a removal whose event no instance ever delivers (as when the instance
 * that stored it dies before publishing, or owes it and dies) still stops delivery, within one period, without a bus
 * reset. Here the removal is written to the shared SQLite file directly: no event at all.
 */
describe('reconciling interests with the store', () => {
  let cluster: RedisInstances;
  before(async () => {
    cluster = await startRedisInstances(2, { PARLEY_BUS_RECONCILE_MS: '300' });
  });
  after(() => cluster?.close());

  it('stops delivery to a member removed without an event, and tells it to resync', async () => {
    const [one, two] = cluster.servers as [TestServer, TestServer];
    const [owner, removed, bystander] = await Promise.all(['rc-owner', 'rc-removed', 'rc-bystander'].map((n) => register(one, `${n}-${process.pid}`)));
    const o = await cluster.connect(one, owner!.token);
    const r = await cluster.connect(two, removed!.token);
    const b = await cluster.connect(two, bystander!.token);
    const { conversation } = await o.ok('conversation.create', { name: `reconcile ${process.pid}` });
    for (const c of [r, b]) await c.ok('conversation.join', { conversationId: conversation.id });
    const before = await o.ok('message.send', { conversationId: conversation.id, key: 'rc-before', text: 'before' });
    await r.waitFor('message.new', (m) => m.id === before.id, 10_000);
    const db = new Database(cluster.storePath);
    try {
      db.pragma('busy_timeout = 10000');
      db.prepare('DELETE FROM members WHERE conversation_id = ? AND user_id = ?').run(conversation.id, removed!.id);
      db.prepare('UPDATE conversations SET member_count = member_count - 1 WHERE id = ?').run(conversation.id);
    } finally {
      db.close();
    }
    // Within a period (300 ms here) its instance finds the removal in the store, stops its delivery and says so.
    await r.waitFor('resync', (x) => x.reason === 'events_lost', 20_000);
    assert.equal(b.eventsOf('resync').length, 0, 'a connection whose conversations did not change is not told');
    const after = await o.ok('message.send', { conversationId: conversation.id, key: 'rc-after', text: 'after' });
    await b.waitFor('message.new', (m) => m.id === after.id, 10_000);
    await r.ok('ping');
    assert.equal(r.eventsOf('message.new').some((m) => m.id === after.id), false);
  });
});

/** The publisher's bound: past `maxLostTopics` it owes one cluster-wide resync instead of one per topic. */
describe('the publisher on a real Redis bus', () => {
  let redis: RedisService;
  let admin: Redis;
  const buses: RedisBus[] = [];
  before(async () => {
    redis = await startRedis();
    admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
  });
  after(async () => {
    for (const bus of buses) await bus.close();
    admin?.disconnect();
    await redis?.close();
  });

  it('owes a resync per lost topic, none for ephemeral events, and one for the whole cluster past its bound', async () => {
    const a = await createRedisBus({ url: redis.url, commandTimeoutMs: 1000, connectTimeoutMs: 5000 });
    const b = await createRedisBus({ url: redis.url, commandTimeoutMs: 1000, connectTimeoutMs: 5000 });
    buses.push(a, b);
    const received: string[] = [];
    b.onMessage((topic, payload) => received.push(`${topic} ${payload.toString()}`));
    for (const topic of [clusterTopic, conversationTopic('c1'), conversationTopic('c2'), conversationTopic('c3')]) await b.subscribe(topic);
    const recovered: Array<[number, boolean]> = [];
    const publisher = new Publisher(a, { maxLostTopics: 2, retryMs: 50, onRecovered: (n, cluster) => recovered.push([n, cluster]) });
    const message = { conversationId: 'c1', userId: 'u1', name: 'U', at: 0 } as never;

    await admin.call('ACL', 'SETUSER', 'default', '-publish');
    await assert.rejects(publisher.toConversation('c1', 'typing', message), { code: 'UNAVAILABLE' });
    assert.deepEqual(publisher.owed, { topics: 0, cluster: false }, 'a lost typing event is not owed a resync');
    await assert.rejects(publisher.toConversation('c1', 'message.updated', message), { code: 'UNAVAILABLE' });
    await assert.rejects(publisher.toConversation('c2', 'message.updated', message), { code: 'UNAVAILABLE' });
    await assert.rejects(publisher.toConversation('c1', 'message.updated', message), { code: 'UNAVAILABLE' });
    assert.deepEqual(publisher.owed, { topics: 2, cluster: false }, 'one per topic');
    await admin.call('ACL', 'SETUSER', 'default', '+publish');
    await until(() => received.length === 2, 'both resyncs received', 10_000, 10);
    assert.deepEqual(received.sort(), ['c.c1 #resync\n', 'c.c2 #resync\n']);
    // Told once the round's publishes resolved, which may be after the subscriber got them.
    await until(() => recovered.length > 0, 'the recovery reported', 10_000, 10);
    assert.deepEqual(recovered, [[2, false]]);
    assert.deepEqual(publisher.owed, { topics: 0, cluster: false });

    received.length = 0;
    await admin.call('ACL', 'SETUSER', 'default', '-publish');
    for (const id of ['c1', 'c2', 'c3']) await assert.rejects(publisher.toConversation(id, 'message.updated', message), { code: 'UNAVAILABLE' });
    assert.deepEqual(publisher.owed, { topics: 0, cluster: true }, 'past the bound: the cluster-wide resync');
    await admin.call('ACL', 'SETUSER', 'default', '+publish');
    await until(() => received.length === 1, 'the cluster resync received', 10_000, 10);
    assert.deepEqual(received, ['a. #resync\n']);
    await publisher.close();
  });

  it('keeps trying to publish what it owes while it closes, and reports what it could not', async () => {
    const a = await createRedisBus({ url: redis.url, commandTimeoutMs: 1000, connectTimeoutMs: 5000 });
    const b = await createRedisBus({ url: redis.url, commandTimeoutMs: 1000, connectTimeoutMs: 5000 });
    buses.push(a, b);
    const received: string[] = [];
    b.onMessage((topic, payload) => received.push(`${topic} ${payload.toString()}`));
    await b.subscribe(conversationTopic('c9'));
    const message = { conversationId: 'c9', userId: 'u1', name: 'U', at: 0 } as never;
    const dropped: Array<[number, boolean]> = [];
    const failing = new Publisher(a, { retryMs: 20, closeTimeoutMs: 200, onDropped: (n, cluster) => dropped.push([n, cluster]) });
    const recovering = new Publisher(a, { retryMs: 20, closeTimeoutMs: 10_000, onDropped: (n, cluster) => dropped.push([n, cluster]) });
    await admin.call('ACL', 'SETUSER', 'default', '-publish');
    try {
      await assert.rejects(failing.toConversation('c8', 'message.updated', message), { code: 'UNAVAILABLE' });
      await assert.rejects(recovering.toConversation('c9', 'message.updated', message), { code: 'UNAVAILABLE' });
      await failing.close();
      assert.deepEqual(dropped, [[1, false]], 'gave up after closeTimeoutMs, and said so');
      const closing = recovering.close();
      await admin.call('ACL', 'SETUSER', 'default', '+publish');
      await closing;
    } finally {
      await admin.call('ACL', 'SETUSER', 'default', '+publish');
    }
    await until(() => received.includes('c.c9 #resync\n'), 'the resync owed when it began closing', 10_000, 10);
    assert.deepEqual(dropped, [[1, false]], 'nothing more dropped');
  });
});
