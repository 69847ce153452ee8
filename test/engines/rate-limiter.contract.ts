import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RateLimiter } from '../../src/ratelimit/limiter.js';

/**
 * Two limiter instances on one engine, standing for two server instances (for an in-process engine, one limiter
 * twice: it is shared by one process only), and a `close` that releases both.
 */
export interface LimiterPair {
  a: RateLimiter;
  b: RateLimiter;
  close(): Promise<void>;
}

/**
 * The rate-limiter contract (the guarantees in src/ratelimit/limiter.ts), run against every engine with real time:
 * rates are slow enough that no refill happens during a test, delays short enough to wait out.
 */
export function runRateLimiterContract(engineName: string, createPair: () => Promise<LimiterPair>): void {
  describe(`rate limiter contract: ${engineName}`, () => {
    const testPair = (name: string, body: (pair: LimiterPair, key: (k: string) => string) => Promise<void>) =>
      it(name, async () => {
        const pair = await createPair();
        // Keys unique to the test, so engines shared between tests (a server) start clean.
        const prefix = `${Date.now()}-${Math.random()}:`;
        try {
          await body(pair, (k) => prefix + k);
        } finally {
          await pair.close();
        }
      });
    const test = (name: string, body: (limiter: RateLimiter, key: (k: string) => string) => Promise<void>) =>
      testPair(name, (pair, key) => body(pair.a, key));

    testPair('instances on one engine share a bucket: two do not get twice the rate', async ({ a, b }, key) => {
      const rate = { perSecond: 0.5, burst: 4 };
      const decisions = await Promise.all([a, b, a, b, a, b, a, b].map((limiter) => limiter.take(key('shared'), rate)));
      assert.equal(decisions.filter((d) => d.allowed).length, 4, 'the burst is spent once across both instances');
      assert.equal((await a.take(key('shared'), rate)).allowed, false);
      assert.equal((await b.take(key('shared'), rate)).allowed, false);
      await b.refund(key('shared'), rate);
      assert.equal((await a.take(key('shared'), rate)).allowed, true, 'a refund on one instance is spent on the other');
    });

    testPair('instances on one engine share failures and memories', async ({ a, b }, key) => {
      const policy = { freeFailures: 1, baseDelayMs: 1000, maxDelayMs: 1000, forgetAfterMs: 60_000 };
      assert.equal(await a.fail(key('login'), policy), 0);
      const blocked = await b.fail(key('login'), policy);
      assert.ok(blocked > 900 && blocked <= 1000, `the second failure, on the other instance, blocks: ${blocked}`);
      assert.ok((await a.blockedFor(key('login'))) > 900);
      await b.clear(key('login'));
      assert.equal(await a.blockedFor(key('login')), 0);
      await a.remember(key('known'), 60_000);
      assert.equal(await b.recalls(key('known')), true);
    });

    test('a bucket allows its burst, then refuses with the wait until the next token', async (limiter, key) => {
      const rate = { perSecond: 0.5, burst: 3 };
      for (let i = 0; i < 3; i++) assert.deepEqual(await limiter.take(key('a'), rate), { allowed: true, retryAfterMs: 0 });
      const refused = await limiter.take(key('a'), rate);
      assert.equal(refused.allowed, false);
      assert.ok(Number.isInteger(refused.retryAfterMs) && refused.retryAfterMs > 1500 && refused.retryAfterMs <= 2000, String(refused.retryAfterMs));
      assert.equal((await limiter.take(key('b'), rate)).allowed, true, 'keys are independent');
    });

    test('a refund gives back one spent token, never past the burst', async (limiter, key) => {
      const rate = { perSecond: 0.5, burst: 2 };
      await limiter.refund(key('new'), rate); // a key never taken from is full: nothing to give back
      for (let i = 0; i < 2; i++) assert.equal((await limiter.take(key('new'), rate)).allowed, true);
      assert.equal((await limiter.take(key('new'), rate)).allowed, false, 'the refund of a fresh key added nothing');
      for (let i = 0; i < 2; i++) assert.equal((await limiter.take(key('x'), rate)).allowed, true);
      assert.equal((await limiter.take(key('x'), rate)).allowed, false);
      await limiter.refund(key('x'), rate);
      assert.equal((await limiter.take(key('x'), rate)).allowed, true, 'the refunded token is spent again');
      assert.equal((await limiter.take(key('x'), rate)).allowed, false);
      const full = { perSecond: 0.5, burst: 1 };
      await limiter.refund(key('y'), full);
      await limiter.refund(key('y'), full);
      assert.equal((await limiter.take(key('y'), full)).allowed, true);
      assert.equal((await limiter.take(key('y'), full)).allowed, false, 'refunds never pass the burst');
    });

    test('a bucket refills at its rate', async (limiter, key) => {
      const rate = { perSecond: 20, burst: 1 };
      assert.equal((await limiter.take(key('r'), rate)).allowed, true);
      const refused = await limiter.take(key('r'), rate);
      assert.equal(refused.allowed, false);
      await new Promise((r) => setTimeout(r, refused.retryAfterMs + 10));
      assert.equal((await limiter.take(key('r'), rate)).allowed, true);
    });

    test('failures past the free ones block for doubling delays, up to the cap; clear forgets them', async (limiter, key) => {
      const policy = { freeFailures: 2, baseDelayMs: 1000, maxDelayMs: 3000, forgetAfterMs: 60_000 };
      assert.equal(await limiter.blockedFor(key('f')), 0);
      assert.equal(await limiter.fail(key('f'), policy), 0);
      assert.equal(await limiter.fail(key('f'), policy), 0);
      const delays = [await limiter.fail(key('f'), policy), await limiter.fail(key('f'), policy), await limiter.fail(key('f'), policy)];
      assert.ok(delays[0] > 900 && delays[0] <= 1000 && delays[1] > 1900 && delays[1] <= 2000 && delays[2] > 2900 && delays[2] <= 3000, String(delays));
      const blocked = await limiter.blockedFor(key('f'));
      assert.ok(blocked > 2800 && blocked <= 3000, String(blocked));
      assert.equal(await limiter.blockedFor(key('other')), 0);
      await limiter.clear(key('f'));
      assert.equal(await limiter.blockedFor(key('f')), 0);
      assert.equal(await limiter.fail(key('f'), policy), 0, 'cleared: the free failures are free again');
    });

    test('a block ends when its delay has passed', async (limiter, key) => {
      const policy = { freeFailures: 0, baseDelayMs: 50, maxDelayMs: 50, forgetAfterMs: 60_000 };
      assert.ok((await limiter.fail(key('e'), policy)) > 0);
      await new Promise((r) => setTimeout(r, 80));
      assert.equal(await limiter.blockedFor(key('e')), 0);
    });

    test('remembers a key for its time to live', async (limiter, key) => {
      assert.equal(await limiter.recalls(key('m')), false);
      await limiter.remember(key('m'), 60_000);
      await limiter.remember(key('short'), 30);
      assert.equal(await limiter.recalls(key('m')), true);
      await new Promise((r) => setTimeout(r, 60));
      assert.equal(await limiter.recalls(key('short')), false);
      assert.equal(await limiter.recalls(key('m')), true);
    });
  });
}
