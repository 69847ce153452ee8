import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryRateLimiter, createMemoryRateLimiter } from '../../src/ratelimit/memory/memory-limiter.js';
import { runRateLimiterContract } from './rate-limiter.contract.js';

runRateLimiterContract('memory', async () => {
  // One process, one limiter: the memory engine is shared by the instances of one process only.
  const limiter = createMemoryRateLimiter();
  return { a: limiter, b: limiter, close: () => limiter.close() };
});

const rate = { perSecond: 1, burst: 2 };
const policy = { freeFailures: 2, baseDelayMs: 100, maxDelayMs: 350, forgetAfterMs: 1000 };

describe('memory rate limiter (with its own clock)', () => {
  it('spends a bucket and says when the next token comes', async () => {
    let now = 1_000_000;
    const limiter = new MemoryRateLimiter({ clock: () => now });
    assert.equal((await limiter.take('k', rate)).allowed, true);
    assert.equal((await limiter.take('k', rate)).allowed, true);
    assert.deepEqual(await limiter.take('k', rate), { allowed: false, retryAfterMs: 1000 });
    now += 400;
    assert.deepEqual(await limiter.take('k', rate), { allowed: false, retryAfterMs: 600 });
    now += 600;
    assert.equal((await limiter.take('k', rate)).allowed, true);
    await limiter.close();
  });

  it('grows the delay after the free failures, caps it, and forgets failures after a quiet period', async () => {
    let now = 1_000_000;
    const limiter = new MemoryRateLimiter({ clock: () => now });
    assert.equal(await limiter.fail('k', policy), 0);
    assert.equal(await limiter.fail('k', policy), 0);
    assert.deepEqual([await limiter.fail('k', policy), await limiter.fail('k', policy), await limiter.fail('k', policy), await limiter.fail('k', policy)], [100, 200, 350, 350]);
    assert.equal(await limiter.blockedFor('k'), 350);
    now += 1000;
    assert.equal(await limiter.blockedFor('k'), 0);
    assert.equal(await limiter.fail('k', policy), 0, 'forgotten: free failures again');
    await limiter.clear('k');
    assert.equal(limiter.size, 0);
    await limiter.close();
  });

  it('keeps memory bounded: idle keys are swept and the key count is capped', async () => {
    let now = 1_000_000;
    const limiter = new MemoryRateLimiter({ clock: () => now, maxKeys: 100 });
    for (let i = 0; i < 1000; i++) await limiter.take(`b${i}`, rate);
    for (let i = 0; i < 1000; i++) await limiter.fail(`f${i}`, policy);
    for (let i = 0; i < 1000; i++) await limiter.remember(`m${i}`, 500);
    assert.equal(limiter.size, 300, 'at most maxKeys of each kind');
    assert.equal(await limiter.recalls('m999'), true, 'the most recent are kept');
    assert.equal(await limiter.recalls('m0'), false);
    now += 2000;
    limiter.sweep();
    assert.equal(limiter.size, 0, 'full buckets, forgotten failures and expired memories are dropped');
    await limiter.close();
  });
});
