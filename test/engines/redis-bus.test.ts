import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createRedisBus } from '../../src/bus/redis/redis-bus.js';
import { isParleyError } from '../../src/protocol/errors.js';
import { startRedis, type RedisService } from '../helpers/services/redis.js';
import { runBusContract } from './bus.contract.js';

/** One real redis-server for this file (test/helpers/services/redis.ts); each case makes its own two bus instances. */
let redis: RedisService;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.close();
});

const options = () => ({ url: redis.url, commandTimeoutMs: 1000, connectTimeoutMs: 2000, onHandlerError: (err: unknown) => { throw err; } });

runBusContract('redis', async () => {
  const a = await createRedisBus({ ...options(), name: 'contract-a' });
  const b = await createRedisBus({ ...options(), name: 'contract-b' });
  return {
    a,
    b,
    async close() {
      await a.close();
      await b.close();
    },
    faults: { stop: () => redis.stop(), start: () => redis.start() },
  };
});

describe('redis bus: what only a network engine does', () => {
  it('subscribes the topics of one turn with one SUBSCRIBE (batched), and only those (routing by interest)', async () => {
    const bus = await createRedisBus({ ...options(), name: 'batching', channelPrefix: `batch-${process.pid}:` });
    const monitor = new Redis(redis.url);
    try {
      const topics = Array.from({ length: 250 }, (_, i) => `c.batching-${i}`);
      await monitor.config('RESETSTAT'); // command counts from here on
      await Promise.all(topics.map((topic) => bus.subscribe(topic)));
      const channels = (await monitor.pubsub('CHANNELS', `batch-${process.pid}:*`)) as string[];
      assert.equal(channels.length, 250, 'every topic is a channel of its own');
      assert.equal(bus.subscribedCount, 250);
      // Redis counts commands per type: the 250 calls above went out as one SUBSCRIBE.
      const stats = (await monitor.info('commandstats')).split('\r\n').find((line) => line.startsWith('cmdstat_subscribe:'));
      const calls = Number(/calls=(\d+)/.exec(stats ?? '')?.[1]);
      assert.equal(calls, 1, `SUBSCRIBE ran ${calls} times for 250 topics of one turn`);
      await Promise.all(topics.slice(0, 100).map((topic) => bus.unsubscribe(topic)));
      assert.equal(((await monitor.pubsub('CHANNELS', `batch-${process.pid}:*`)) as string[]).length, 150);
    } finally {
      monitor.disconnect();
      await bus.close();
    }
  });

  it('never hangs on a Redis that stops answering, and bounds the publishes waiting for it', async () => {
    const bus = await createRedisBus({ ...options(), name: 'paused', maxPendingPublishes: 5 });
    const admin = new Redis(redis.url);
    try {
      await bus.publish('c.paused', Buffer.from('before'));
      // Redis keeps every connection open but answers nobody for 2 s: a stalled server, not a closed one.
      await admin.call('CLIENT', 'PAUSE', '2000', 'ALL');
      const started = Date.now();
      const waiting = Array.from({ length: 5 }, (_, i) => bus.publish('c.paused', Buffer.from(`waiting ${i}`)).then(() => 'ok', (err: unknown) => err));
      const refused = await bus.publish('c.paused', Buffer.from('one too many')).then(() => 'ok', (err: unknown) => err);
      assert.ok(isParleyError(refused) && refused.code === 'UNAVAILABLE', 'the sixth is refused at once');
      assert.ok(Date.now() - started < 500, `refused in ${Date.now() - started} ms, not after the timeout`);
      const outcomes = await Promise.all(waiting);
      const elapsed = Date.now() - started;
      assert.ok(outcomes.every((o) => isParleyError(o) && o.code === 'UNAVAILABLE'), `each waiting publish failed with UNAVAILABLE: ${outcomes.map(String)}`);
      assert.ok(elapsed >= 900 && elapsed < 1900, `after the command timeout (1000 ms), not the pause: ${elapsed} ms`);
    } finally {
      admin.disconnect();
      await bus.close();
    }
  });

  it('finds a subscriber connection gone silent (a stalled Redis), restores it and resets', async () => {
    const bus = await createRedisBus({ ...options(), name: 'silent', healthCheckMs: 100 });
    const publisher = await createRedisBus({ ...options(), name: 'silent-publisher' });
    const admin = new Redis(redis.url);
    const got: string[] = [];
    let resets = 0;
    bus.onMessage((_topic, payload) => got.push(payload.toString()));
    bus.onReset(() => resets++);
    try {
      await bus.subscribe('c.silent');
      // Nobody is answered for 2.5 s, and no connection is closed by Redis: only the PING can tell.
      await admin.call('CLIENT', 'PAUSE', '2500', 'ALL');
      await assert.rejects(bus.ping(), (err: unknown) => isParleyError(err) && err.code === 'UNAVAILABLE', 'ping fails while the subscriber is silent');
      const deadline = Date.now() + 20_000;
      while (resets === 0) {
        assert.ok(Date.now() < deadline, 'no reset within 20 s');
        await new Promise((r) => setTimeout(r, 20));
      }
      await bus.ping();
      await publisher.publish('c.silent', Buffer.from('after'));
      while (!got.includes('after')) {
        assert.ok(Date.now() < deadline, 'nothing delivered after the reset');
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      admin.disconnect();
      await bus.close();
      await publisher.close();
    }
  });

  it('refuses to start, with one clear UNAVAILABLE line, when Redis cannot be reached', async () => {
    const started = Date.now();
    await assert.rejects(
      createRedisBus({ url: 'redis://127.0.0.1:1', connectTimeoutMs: 1000 }),
      (err: unknown) => isParleyError(err) && err.code === 'UNAVAILABLE' && /cannot reach Redis at redis:\/\/127\.0\.0\.1:1/.test(err.message),
    );
    assert.ok(Date.now() - started < 5000, 'bounded by the connect timeout');
  });
});
