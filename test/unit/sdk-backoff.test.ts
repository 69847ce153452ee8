import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Backoff, backoffCeiling, DEFAULT_BACKOFF, fullJitterDelay } from '../../packages/sdk/src/backoff.js';

describe('SDK backoff (full jitter)', () => {
  it('defaults to 250 ms initial and 10 s cap', () => {
    assert.deepEqual({ ...DEFAULT_BACKOFF }, { initialMs: 250, maxMs: 10_000 });
    assert.equal(backoffCeiling(0), 250);
    assert.equal(backoffCeiling(100), 10_000);
  });

  it('grows exponentially until the cap', () => {
    const opts = { initialMs: 100, maxMs: 5000 };
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map((n) => backoffCeiling(n, opts)), [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    assert.equal(backoffCeiling(5000, opts), 5000, 'huge attempt numbers do not overflow past the cap');
    assert.equal(backoffCeiling(-3, opts), 100, 'negative attempts count as the first');
  });

  it('keeps every delay within [0, ceiling)', () => {
    const opts = { initialMs: 250, maxMs: 10_000 };
    for (let attempt = 0; attempt < 20; attempt++) {
      const ceiling = backoffCeiling(attempt, opts);
      for (let i = 0; i < 200; i++) {
        const d = fullJitterDelay(attempt, opts);
        assert.ok(d >= 0 && d < ceiling, `attempt ${attempt}: ${d} not in [0, ${ceiling})`);
        assert.ok(Number.isInteger(d));
      }
    }
  });

  it('is full jitter: the random source spans the whole range', () => {
    const opts = { initialMs: 1000, maxMs: 8000 };
    assert.equal(fullJitterDelay(3, opts, () => 0), 0);
    assert.equal(fullJitterDelay(3, opts, () => 0.5), 4000);
    assert.equal(fullJitterDelay(3, opts, () => 0.999999), 7999);
    assert.ok(fullJitterDelay(3, opts, () => 1) < 8000, 'a random() of exactly 1 still stays below the ceiling');
    // Spread: with real randomness, delays of one attempt are not all alike and use most of the range.
    const samples = Array.from({ length: 500 }, () => fullJitterDelay(3, opts));
    assert.ok(Math.min(...samples) < 1000 && Math.max(...samples) > 7000);
  });

  it('Backoff advances per attempt and resets', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000 }, () => 0.999999);
    const delays = Array.from({ length: 6 }, () => b.next());
    assert.deepEqual(delays, [99, 199, 399, 799, 999, 999]);
    assert.equal(b.attempt, 6);
    b.reset();
    assert.equal(b.attempt, 0);
    assert.equal(b.next(), 99);
  });

  it('rejects nonsensical options', () => {
    assert.throws(() => new Backoff({ initialMs: 0 }), RangeError);
    assert.throws(() => new Backoff({ initialMs: 500, maxMs: 100 }), RangeError);
  });
});
