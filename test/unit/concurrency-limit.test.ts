import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConcurrencyLimit } from '../../src/domain/concurrency-limit.js';
import { isParleyError, type ParleyError } from '../../src/protocol/errors.js';

/** A promise settled from outside, so the test decides when each operation ends. */
function deferred(): { promise: Promise<string>; resolve: (v: string) => void; reject: (e: Error) => void } {
  let resolve!: (v: string) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<string>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

async function refusal(run: Promise<unknown>): Promise<ParleyError> {
  const err = await run.then(() => null, (e: unknown) => e);
  assert.ok(isParleyError(err), `expected a refusal, got ${String(err)}`);
  assert.equal(err.code, 'RATE_LIMITED');
  return err;
}

describe('ConcurrencyLimit', () => {
  it('runs up to max at once and refuses one more at once, without running it', async () => {
    const limit = new ConcurrencyLimit(2, 2, 'busy', () => 0);
    const a = deferred();
    const b = deferred();
    const ra = limit.run('u1', () => a.promise);
    const rb = limit.run('u2', () => b.promise);
    let started = false;
    const refused = await refusal(limit.run('u3', async () => ((started = true), 'c')));
    assert.equal(refused.message, 'busy');
    assert.equal(started, false, 'the refused operation never ran');
    a.resolve('a');
    assert.equal(await ra, 'a');
    assert.equal(await limit.run('u3', async () => 'c'), 'c', 'a freed slot is taken again');
    b.resolve('b');
    assert.equal(await rb, 'b');
  });

  it('gives one key at most perKey slots, so one user cannot take them all', async () => {
    const limit = new ConcurrencyLimit(4, 1, 'busy', () => 0);
    const mine = deferred();
    const running = limit.run('greedy', () => mine.promise);
    await refusal(limit.run('greedy', async () => 'second'));
    assert.equal(await limit.run('other', async () => 'ok'), 'ok', 'another user still gets a slot');
    mine.reject(new Error('boom'));
    await assert.rejects(running, /boom/);
    assert.equal(await limit.run('greedy', async () => 'again'), 'again', 'a failed operation frees its slot too');
  });

  it('tells when a slot is likely free: the mean duration, or the oldest running one, at least 50 ms', async () => {
    let now = 0;
    const limit = new ConcurrencyLimit(1, 1, 'busy', () => now);
    const first = deferred();
    const running = limit.run('a', () => first.promise);
    now = 10;
    assert.equal((await refusal(limit.run('b', async () => 'x'))).retryAfterMs, 50, 'nothing measured yet, 10 ms running: the floor');
    now = 900;
    assert.equal((await refusal(limit.run('b', async () => 'x'))).retryAfterMs, 900, 'no mean yet: the oldest running one');
    first.resolve('done');
    await running;
    const second = deferred();
    const holding = limit.run('a', () => second.promise);
    now = 950;
    assert.equal((await refusal(limit.run('b', async () => 'x'))).retryAfterMs, 900, 'the one duration seen so far');
    second.resolve('ok');
    await holding;
  });
});
