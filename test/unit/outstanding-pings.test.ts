import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { forgetClosest } from '../../src/gateway/connection.js';

/**
 * A reader far behind answers the position pings it reads, oldest first: the ones the server still remembers must be
 * spread over the whole backlog, the oldest stretch (where the reader is) included, or its pongs confirm nothing for
 * long stretches while it reads (it was closed 4002 at ~10 MB behind when every other one was forgotten instead).
 */
describe('unanswered position pings past the bound', () => {
  const BOUND = 72;
  /** Pings every 3 KB for `count` pings, keeping at most BOUND: what remains. */
  function remembered(count: number): number[] {
    const outstanding: Array<[string, number, number, number]> = [];
    for (let i = 0; i < count; i++) {
      if (outstanding.push([`p${i}`, i * 3000, i, 3000]) > BOUND) forgetClosest(outstanding);
    }
    return outstanding.map((entry) => entry[1]);
  }

  it('keeps the oldest and the newest and at most the bound', () => {
    const positions = remembered(5000);
    assert.equal(positions.length, BOUND);
    assert.equal(positions[0], 0);
    assert.equal(positions.at(-1), 4999 * 3000);
  });

  it('keeps them evenly spread: no gap more than twice the even spacing, the oldest stretch included', () => {
    for (const count of [100, 1000, 5000, 20000]) {
      const positions = remembered(count);
      const even = positions.at(-1)! / (positions.length - 1);
      const gaps = positions.slice(1).map((p, i) => p - positions[i]!);
      assert.ok(Math.max(...gaps) <= 2 * even, `${count} pings: largest gap ${Math.max(...gaps)} against even ${even}`);
      assert.ok(gaps[0]! <= 2 * even, `${count} pings: the oldest gap ${gaps[0]} against even ${even}`);
    }
  });
});
