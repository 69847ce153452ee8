import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createRedisRateLimiter } from '../../src/ratelimit/redis/redis-limiter.js';
import { startRedis, type RedisService } from '../helpers/services/redis.js';
import { runRateLimiterContract } from './rate-limiter.contract.js';

/** One real redis-server for this file (test/helpers/services/redis.ts). */
let redis: RedisService;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.close();
});

const options = () => ({ url: redis.url, commandTimeoutMs: 1000, connectTimeoutMs: 2000 });

runRateLimiterContract('redis', async () => {
  const a = await createRedisRateLimiter({ ...options(), name: 'contract-a' });
  const b = await createRedisRateLimiter({ ...options(), name: 'contract-b' });
  return {
    a,
    b,
    async close() {
      await a.close();
      await b.close();
    },
  };
});

describe('redis rate limiter: what only a network engine does', () => {
  it('gives keys an expiry, so Redis holds only keys in use', async () => {
    const limiter = await createRedisRateLimiter({ ...options(), keyPrefix: 'ttl-check:' });
    const admin = new Redis(redis.url);
    try {
      await limiter.take('bucket', { perSecond: 10, burst: 5 });
      await limiter.fail('failures', { freeFailures: 0, baseDelayMs: 1000, maxDelayMs: 1000, forgetAfterMs: 5000 });
      await limiter.remember('memory', 3000);
      const ttls = await Promise.all(['ttl-check:b:bucket', 'ttl-check:f:failures', 'ttl-check:m:memory'].map((k) => admin.pttl(k)));
      // A bucket one token short of its burst of 5 at 10/s is full again in 100 ms (+1 s of margin).
      assert.ok(ttls[0]! > 0 && ttls[0]! <= 1100, `bucket: ${ttls[0]}`);
      assert.ok(ttls[1]! > 4000 && ttls[1]! <= 5000, `failures: ${ttls[1]}`);
      assert.ok(ttls[2]! > 2000 && ttls[2]! <= 3000, `memory: ${ttls[2]}`);
    } finally {
      admin.disconnect();
      await limiter.close();
    }
  });

  it('admits, promptly, while Redis is down, and limits again once it is back', async () => {
    const errors: unknown[] = [];
    const limiter = await createRedisRateLimiter({ ...options(), onError: (err) => errors.push(err) });
    const rate = { perSecond: 0.1, burst: 1 };
    try {
      assert.equal((await limiter.take('down', rate)).allowed, true);
      assert.equal((await limiter.take('down', rate)).allowed, false);
      await redis.stop();
      const started = Date.now();
      for (let i = 0; i < 5; i++) assert.deepEqual(await limiter.take('down', rate), { allowed: true, retryAfterMs: 0 });
      assert.equal(await limiter.fail('down', { freeFailures: 0, baseDelayMs: 1000, maxDelayMs: 1000, forgetAfterMs: 1000 }), 0);
      assert.equal(await limiter.blockedFor('down'), 0);
      assert.equal(await limiter.recalls('down'), false);
      assert.ok(Date.now() - started < 3000, `answered in ${Date.now() - started} ms with Redis down`);
      assert.ok(errors.length >= 8, 'each failure is reported to onError');
      await redis.start();
      // Back (empty, as a restarted Redis without persistence): the bucket starts full and limits again.
      const deadline = Date.now() + 20_000;
      let refused = false;
      while (!refused) {
        assert.ok(Date.now() < deadline, 'the limiter did not limit again within 20 s of Redis coming back');
        await limiter.take('back', rate);
        refused = !(await limiter.take('back', rate)).allowed;
        if (!refused) await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await limiter.close();
    }
  });
});
