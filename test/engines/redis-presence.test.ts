import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createRedisPresence } from '../../src/presence/redis/redis-presence.js';
import { isParleyError } from '../../src/protocol/errors.js';
import { startRedis, type RedisService } from '../helpers/services/redis.js';
import { runPresenceContract } from './presence.contract.js';

/** One real redis-server for this file (test/helpers/services/redis.ts); each pair gets a key prefix of its own. */
let redis: RedisService;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.close();
});

let pairs = 0;
const options = (ttlMs: number, keyPrefix: string) => ({ url: redis.url, ttlMs, keyPrefix, commandTimeoutMs: 1000, connectTimeoutMs: 2000 });

runPresenceContract('redis', async (ttlMs) => {
  const prefix = `contract-${process.pid}-${++pairs}:`;
  const a = await createRedisPresence(options(ttlMs, prefix));
  const b = await createRedisPresence(options(ttlMs, prefix));
  return {
    a,
    b,
    async close() {
      await a.close();
      await b.close();
    },
  };
});

describe('redis presence: what only a network engine does', () => {
  it('reports every entry of a restarted (empty) Redis as gone on the next touch, so it can be registered again', async () => {
    const presence = await createRedisPresence(options(60_000, 'restart:'));
    const now = Date.now();
    try {
      await presence.connect('ann', 'c1', now);
      await presence.connect('bob', 'c2', now);
      await redis.stop();
      await assert.rejects(presence.touch([{ userId: 'ann', connectionId: 'c1' }], now + 1), (err: unknown) => isParleyError(err) && err.code === 'UNAVAILABLE');
      await redis.start();
      const deadline = Date.now() + 20_000;
      let gone: unknown = null;
      while (gone === null) {
        assert.ok(Date.now() < deadline, 'no touch succeeded within 20 s of Redis coming back');
        gone = await presence.touch([{ userId: 'ann', connectionId: 'c1' }, { userId: 'bob', connectionId: 'c2' }], now + 2).catch(() => null);
        if (gone === null) await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual(gone, [{ userId: 'ann', connectionId: 'c1' }, { userId: 'bob', connectionId: 'c2' }]);
      assert.deepEqual(await presence.connect('ann', 'c1', now + 3), { becameOnline: true }, 're-registered');
      assert.deepEqual(await presence.get(['ann'], now + 4), [{ userId: 'ann', online: true, lastSeen: now + 3 }]);
    } finally {
      await presence.close();
    }
  });

  it('gives every key an expiry in real time, so a stopped cluster leaves nothing behind', async () => {
    const presence = await createRedisPresence(options(1000, 'expiry:'));
    const admin = new Redis(redis.url);
    try {
      const now = Date.now();
      await presence.connect('ann', 'c1', now);
      await presence.connect('bob', 'c2', now);
      await presence.disconnect('bob', 'c2', now + 1);
      await presence.sweep(now);
      for (const key of ['expiry:c:ann', 'expiry:u:ann', 'expiry:u:bob', 'expiry:online', 'expiry:offline', 'expiry:sweep']) {
        const ttl = await admin.pttl(key);
        assert.ok(ttl > 0 && ttl <= 3000, `${key}: ${ttl}`);
      }
    } finally {
      admin.disconnect();
      await presence.close();
    }
  });
});
