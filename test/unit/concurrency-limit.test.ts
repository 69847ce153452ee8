import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConcurrencyLimit } from '../../src/domain/concurrency-limit.js';
import { isParleyError } from '../../src/protocol/errors.js';

/** A promise settled from outside, so the test decides when each operation ends. */
function deferred(): { promise: Promise<string>; resolve: (v: string) => void; reject: (e: Error) => void } {
  let resolve!: (v: string) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<string>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

describe('ConcurrencyLimit', () => {
  it('runs up to max at once and refuses one more at once with RATE_LIMITED, retryAfterMs the mean duration', async () => {
    let now = 1000;
    const limit = new ConcurrencyLimit(2, 'busy', () => now);
    const a = deferred();
    const b = deferred();
    const ra = limit.run(() => a.promise);
    const rb = limit.run(() => b.promise);
    let started = false;
    await assert.rejects(limit.run(async () => ((started = true), 'c')), (err: unknown) => {
      assert.ok(isParleyError(err));
      assert.equal(err.code, 'RATE_LIMITED');
      assert.equal(err.message, 'busy');
      assert.equal(err.retryAfterMs, 1, 'no duration known yet: the least wait');
      return true;
    });
    assert.equal(started, false, 'the refused operation never ran');

    now += 100;
    a.resolve('a');
    assert.equal(await ra, 'a');
    assert.equal(await limit.run(async () => 'c'), 'c', 'a freed slot is taken again');
    b.resolve('b');
    assert.equal(await rb, 'b');
  });

  it('frees the slot of an operation that failed, and tells the mean of recent durations', async () => {
    let now = 0;
    const limit = new ConcurrencyLimit(1, 'busy', () => now);
    const first = deferred();
    const running = limit.run(() => first.promise);
    now = 200;
    first.reject(new Error('boom'));
    await assert.rejects(running, /boom/);
    const second = deferred();
    const holding = limit.run(() => second.promise);
    const refused = await limit.run(async () => 'x').catch((err: unknown) => err);
    assert.ok(isParleyError(refused));
    assert.equal(refused.retryAfterMs, 200, 'the one duration seen so far');
    second.resolve('ok');
    await holding;
  });
});
