import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ParleyError } from '../../src/protocol/errors.js';
import { StoreHealth } from '../../src/store/health.js';

/** StoreHealth's rule on its own, with a clock the test moves (the real-disk cases are in test/faults/store-*.ts). */
describe('store health', () => {
  const unavailable = new ParleyError('UNAVAILABLE', 'database or disk is full');

  it('stays failing when a probe write succeeds while message writes keep failing (a nearly full disk)', () => {
    let now = 1_000;
    const changes: boolean[] = [];
    const health = new StoreHealth({ onReadyChange: (ready) => changes.push(ready) }, 10_000, 5_000, () => now);
    health.recordFailure('appendMessage', unavailable);
    now += 1_000;
    health.recordWriteSuccess(); // the tiny probe fit
    assert.equal(health.failing, true, 'one probe is not enough while appends failed a moment ago');
    now += 2_000;
    health.recordFailure('appendMessage', unavailable);
    now += 4_000;
    health.recordWriteSuccess();
    assert.equal(health.failing, true);
    now += 2_000; // no append has failed for 6 s: the probe speaks for the store again
    health.recordWriteSuccess();
    assert.equal(health.failing, false);
    assert.deepEqual(changes, [false, true], 'ready went false once and true once: no flapping');
    health.stop();
  });

  it('recovers at the first successful probe when only probes failed (the whole store was unwritable)', () => {
    let now = 1_000;
    const health = new StoreHealth({}, 10_000, 5_000, () => now);
    health.recordFailure('ping', unavailable);
    now += 100;
    health.recordWriteSuccess();
    assert.equal(health.failing, false);
    health.stop();
  });
});
