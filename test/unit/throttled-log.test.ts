import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { throttled } from '../../src/logging.js';

describe('throttled log calls', () => {
  it('logs the first call, counts the calls within the interval, and reports them with the next one logged', () => {
    mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
    try {
      const lines: Array<[number, string]> = [];
      const log = throttled((suppressed, what: string) => lines.push([suppressed, what]), 10_000);
      log('a');
      for (let i = 0; i < 5; i++) log('b');
      mock.timers.tick(9_999);
      log('c');
      assert.deepEqual(lines, [[0, 'a']], 'nothing more within the interval');
      mock.timers.tick(1);
      log('d');
      log('e');
      assert.deepEqual(lines, [[0, 'a'], [6, 'd']], 'the six left out are counted on the next line');
    } finally {
      mock.timers.reset();
    }
  });
});
