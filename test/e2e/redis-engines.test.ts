import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { until } from '../helpers/raw-client.js';
import { startRedisInstances, type RedisInstances } from '../helpers/redis-instances.js';
import { register, startServer, type TestServer } from '../helpers/server.js';
import { startRedis, type RedisService } from '../helpers/services/redis.js';

/**
 * The composition root on Redis: two server processes on one real redis-server (bus, presence and rate limits all
 * `redis`) and, standing in for the shared database of a cluster, one SQLite file. What crosses instances only
 * through Redis: events, the rate of a user connected to both, and the restart of Redis (both unready while it is
 * down, clients told to resynchronise once it is back).
 */
describe('two instances on one Redis', () => {
  let cluster: RedisInstances;
  let redis: RedisService;
  let servers: TestServer[];
  const connect = (server: TestServer, token: string) => cluster.connect(server, token);

  before(async () => {
    cluster = await startRedisInstances(2, {
      // One user's message budget, small enough to spend across both instances in a test.
      PARLEY_LIMITS_USER_MESSAGE_RATE_PER_SECOND: '0.01',
      PARLEY_LIMITS_USER_MESSAGE_RATE_BURST: '4',
      // Presence expiry short enough to watch a killed instance's users go offline (touches every ttl / 3).
      PARLEY_PRESENCE_TTL_MS: '3000',
      PARLEY_HEARTBEAT_INTERVAL_MS: '500',
    });
    ({ redis, servers } = cluster);
  });
  after(() => cluster?.close());

  it('says at start which engines are on Redis, without the password', () => {
    for (const server of servers) {
      const line = server.logs.find((l) => l.msg === 'connected to Redis');
      assert.ok(line, 'logged');
      assert.deepEqual([line.bus, line.presence, line.ratelimit], ['redis', 'redis', 'redis']);
    }
  });

  it('carries a group message from one instance to a member connected to the other, and back', async () => {
    const [one, two] = servers as [TestServer, TestServer];
    const alice = await register(one, `alice-${process.pid}`);
    const bob = await register(two, `bob-${process.pid}`);
    const a = await connect(one, alice.token);
    const b = await connect(two, bob.token);
    const { conversation } = await a.ok('conversation.create', { name: `cross ${process.pid}` });
    await b.ok('conversation.join', { conversationId: conversation.id });
    await a.waitFor('member.joined', (e) => e.conversationId === conversation.id && e.member.userId === bob.id);
    const sent = await a.ok('message.send', { conversationId: conversation.id, key: 'k1', text: 'hello from one' });
    const got = await b.waitFor('message.new', (m) => m.id === sent.id);
    assert.equal(got.text, 'hello from one');
    const reply = await b.ok('message.send', { conversationId: conversation.id, key: 'k2', text: 'hello from two' });
    assert.equal((await a.waitFor('message.new', (m) => m.id === reply.id)).seq, sent.seq + 1);
  });

  it("holds a user's message rate across instances: two instances do not allow twice the burst", async () => {
    const [one, two] = servers as [TestServer, TestServer];
    const carol = await register(one, `carol-${process.pid}`);
    const onOne = await connect(one, carol.token);
    const onTwo = await connect(two, carol.token);
    const { conversation } = await onOne.ok('conversation.create', { name: `rate ${process.pid}` });
    const replies = [];
    for (let i = 0; i < 6; i++) {
      const client = i % 2 === 0 ? onOne : onTwo;
      replies.push(await client.request('message.send', { conversationId: conversation.id, key: `r${i}`, text: `m${i}` }));
    }
    assert.deepEqual(replies.map((r) => r.error?.code ?? 'ok'), ['ok', 'ok', 'ok', 'ok', 'RATE_LIMITED', 'RATE_LIMITED']);
  });

  it("shows presence across instances, and clears a killed instance's users within the expiry", async () => {
    const [one, two] = servers as [TestServer, TestServer];
    const third = await cluster.start(); // killed below
    try {
      const gina = await register(one, `gina-${process.pid}`);
      const hank = await register(two, `hank-${process.pid}`);
      const ivan = await register(third, `ivan-${process.pid}`);
      const g = await connect(one, gina.token);
      const h = await connect(two, hank.token);
      const i = await connect(third, ivan.token);
      const { conversation } = await g.ok('conversation.create', { name: `presence ${process.pid}` });
      await h.ok('conversation.join', { conversationId: conversation.id });
      await i.ok('conversation.join', { conversationId: conversation.id });
      const { users } = await g.ok('presence.get', { userIds: [hank.id, ivan.id] });
      assert.deepEqual(users.map((u: any) => u.online), [true, true], 'users of two other instances are online');
      h.close();
      await g.waitFor('presence', (d) => d.users.some((u: any) => u.userId === hank.id && !u.online), 5000);
      // SIGKILL: no disconnect reaches Redis; another instance's sweep finds ivan's entry expired.
      const killedAt = Date.now();
      await third.kill('SIGKILL');
      await g.waitFor('presence', (d) => d.users.some((u: any) => u.userId === ivan.id && !u.online), 20_000);
      const tookMs = Date.now() - killedAt;
      // Its entries lapse within the ttl (3 s) of its last touch, a claim it held lapses within 3 s, and another instance
      // sweeps every 1.5 s: 4.5 s, and room for a busy machine's late timers.
      assert.ok(tookMs < 12_000, `offline ${tookMs} ms after the kill`);
    } finally {
      await third.kill('SIGKILL');
    }
  });

  it('is unready while Redis is down; once it is back, clients are told to resynchronise and events cross again', async () => {
    const [one, two] = servers as [TestServer, TestServer];
    const erin = await register(one, `erin-${process.pid}`);
    const dave = await register(two, `dave-${process.pid}`);
    const e = await connect(one, erin.token);
    const d = await connect(two, dave.token);
    const { conversation } = await e.ok('conversation.create', { name: `restart ${process.pid}` });
    await d.ok('conversation.join', { conversationId: conversation.id });
    await e.waitFor('member.joined', (x) => x.conversationId === conversation.id && x.member.userId === dave.id);
    const ready = async (server: TestServer) => (await fetch(`${server.url}/readyz`)).status;
    assert.deepEqual([await ready(one), await ready(two)], [200, 200]);
    await redis.stop();
    await until(async () => (await ready(one)) === 503 && (await ready(two)) === 503, 'both unready with Redis down', 10_000, 50);
    // A send while the bus is down is stored (and answered); its event is lost, which the resync below makes good.
    const during = await e.ok('message.send', { conversationId: conversation.id, key: 'during', text: 'while Redis is down' });
    await redis.start();
    // The bus restored its subscriptions, then reset: the gateway tells its clients to catch up, keeping them open.
    assert.deepEqual(await d.waitFor('resync', () => true, 20_000), { reason: 'bus_reset' });
    assert.equal(d.closed, null);
    await until(async () => (await ready(one)) === 200 && (await ready(two)) === 200, 'both ready again', 20_000, 50);
    const { messages } = await d.ok('history.before', { conversationId: conversation.id });
    assert.ok(messages.some((m: any) => m.id === during.id), 'the message sent while Redis was down is there to catch up on');
    const after = await e.ok('message.send', { conversationId: conversation.id, key: 'after', text: 'after the restart' });
    assert.equal((await d.waitFor('message.new', (m) => m.id === after.id, 10_000)).text, 'after the restart');
    // The restarted Redis forgot who is online; the next heartbeat round of dave's instance registers him again.
    await until(async () => (await e.ok('presence.get', { userIds: [dave.id] })).users[0]?.online === true, 'dave online again in the new Redis', 15_000, 100);
  });
});

describe('starting on Redis', () => {
  it('refuses a Redis engine without redis.url, naming the setting', async () => {
    await assert.rejects(startServer({ PARLEY_BUS_KIND: 'redis' }), /redis\.url: required when bus\.kind is 'redis'/);
  });

  it('refuses to start, in one line, when Redis cannot be reached', async () => {
    await assert.rejects(
      startServer({ PARLEY_PRESENCE_KIND: 'redis', PARLEY_REDIS_URL: 'redis://:hunter2hunter2@127.0.0.1:1', PARLEY_REDIS_CONNECT_TIMEOUT_MS: '1000' }),
      (err: Error) => /cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1/.test(err.message) && !err.message.includes('hunter2'),
    );
  });

  /**
   * A Redis of its own and a folder for SQLite files; `env(file, extra)` is a cluster instance's environment on that
   * Redis with its store in `file`. Both are removed after `body`.
   */
  async function withRedisCluster(body: (env: (file: string, extra?: Record<string, string>) => Record<string, string>, redis: RedisService) => Promise<void>): Promise<void> {
    const redis = await startRedis();
    const folder = mkdtempSync(join(tmpdir(), 'parley-cluster-start-'));
    try {
      await body((file, extra = {}) => ({
        PARLEY_BUS_KIND: 'redis', PARLEY_PRESENCE_KIND: 'redis', PARLEY_RATELIMIT_KIND: 'redis', PARLEY_REDIS_URL: redis.url,
        PARLEY_STORE_SQLITE_PATH: join(folder, file), ...extra,
      }), redis);
    } finally {
      await redis.close();
      rmSync(folder, { recursive: true, force: true });
    }
  }

  it('refuses an instance whose cluster settings differ from those of the instances already on its store', async () => {
    await withRedisCluster(async (env) => {
      const first = await startServer(env('parley.db'));
      try {
        // The refusal names the one setting that differs, and the instance it differs from (once, with its pid).
        const refused = (setting: string) => (err: Error) =>
          new RegExp(`other Parley instances on this store run with another ${setting} \\(port 0, pid \\d+ \\(on `).test(err.message)
          && !/pid \d+ \(pid/.test(err.message) && !err.message.includes('[settings');
        await assert.rejects(startServer(env('parley.db', { PARLEY_REDIS_KEY_PREFIX: 'other:' })), refused('redis\\.keyPrefix'));
        await assert.rejects(startServer(env('parley.db', { PARLEY_REDIS_URL: `${env('parley.db').PARLEY_REDIS_URL}/3` })), refused('redis\\.url \\(server and database\\)'));
        await assert.rejects(startServer(env('parley.db', { PARLEY_AUTH_ACCOUNTS_SECRET: 'another-accounts-secret-0123456789-abcdef' })), (err: Error) =>
          refused('auth\\.accounts\\.secret')(err) && !err.message.includes('another-accounts-secret'));
        const second = await startServer(env('parley.db'));
        await second.stop();
      } finally {
        await first.stop();
      }
    });
  });

  it('refuses an instance on another store than the live instances of its cluster (same Redis and key prefix)', async () => {
    await withRedisCluster(async (env) => {
      const first = await startServer(env('one.db'));
      try {
        await assert.rejects(startServer(env('two.db')), /use another store.*same store/s);
        // Another key prefix is another cluster: it may have its own store.
        const separate = await startServer(env('two.db', { PARLEY_REDIS_KEY_PREFIX: 'other:' }));
        await separate.stop();
      } finally {
        await first.stop();
      }
    });
  });

  it("sets the cluster's store again as soon as Redis is back empty: an instance on another store is still refused", async () => {
    await withRedisCluster(async (env, redis) => {
      const first = await startServer(env('one.db'));
      try {
        await redis.stop();
        await redis.start(); // empty: no persistence
        // Back in the balancer means bound again: /readyz sets the key (and fails while Redis cannot be reached).
        await until(async () => (await fetch(`${first.url}/readyz`)).status === 200, 'the instance is ready again', 20_000, 50);
        await assert.rejects(startServer(env('two.db')), /use another store/);
        // The cluster's own store is still welcome.
        const second = await startServer(env('one.db'));
        await second.stop();
      } finally {
        await first.stop();
      }
    });
  });

  it("says why Redis refused the password (Redis's own reason), and never prints it, even in the user name's place", async () => {
    const redis = await startRedis();
    try {
      const admin = new Redis(redis.url, { lazyConnect: true });
      await admin.connect();
      await admin.config('SET', 'requirepass', 'rightrightright');
      admin.disconnect();
      const attempt = (url: string) => startServer({ PARLEY_PRESENCE_KIND: 'redis', PARLEY_REDIS_URL: url, PARLEY_REDIS_CONNECT_TIMEOUT_MS: '3000' });
      const host = `127.0.0.1:${redis.port}`;
      await assert.rejects(attempt(`redis://:wrongwrongwrong@${host}`), (err: Error) =>
        err.message.includes(`cannot reach Redis at redis://:***@${host}`) && /WRONGPASS/.test(err.message) && !err.message.includes('wrongwrong'));
      // `redis://secret@host` is a slip for `redis://:secret@host`: the value in the user name's place is hidden too.
      await assert.rejects(attempt(`redis://rightrightright@${host}`), (err: Error) =>
        err.message.includes(`cannot reach Redis at redis://***@${host}`) && /WRONGPASS/.test(err.message) && !err.message.includes('rightright'));
      await assert.rejects(attempt(`redis://${host}`), (err: Error) => /cannot reach Redis at .*NOAUTH/.test(err.message));
    } finally {
      await redis.close();
    }
  });

  it('says that a rediss:// URL needs TLS on the Redis when a Redis without TLS never answers', async () => {
    const redis = await startRedis();
    try {
      const url = redis.url.replace(/^redis:/, 'rediss:');
      await assert.rejects(startServer({ PARLEY_PRESENCE_KIND: 'redis', PARLEY_REDIS_URL: url, PARLEY_REDIS_CONNECT_TIMEOUT_MS: '1000' }), (err: Error) =>
        /cannot reach Redis at rediss:\/\/.*no connection within 1000 ms \(a rediss:\/\/ URL: is TLS enabled on that Redis\?/.test(err.message));
    } finally {
      await redis.close();
    }
  });
});
