import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { splitForFrame } from '../../packages/sdk/src/index.js';

/** The frame the SDK sends for one sync batch, with the largest id and page size. */
const syncFrame = (conversations: unknown[]): string =>
  JSON.stringify({ id: Number.MAX_SAFE_INTEGER, type: 'sync', data: { conversations, limit: 500 } });

describe('splitForFrame (SDK request lists fit one frame)', () => {
  const longIds = Array.from({ length: 1000 }, (_, i) => ({
    conversationId: `${i}-`.padEnd(128, 'x'), afterSeq: Number.MAX_SAFE_INTEGER, rev: Number.MAX_SAFE_INTEGER,
  }));

  for (const maxFrame of [1024, 4096, 64 * 1024, 1024 * 1024]) {
    it(`1000 sync entries with 128-char ids fit frames of ${maxFrame} B, each entry once and in order`, () => {
      const batches = splitForFrame(longIds, 1000, maxFrame);
      for (const batch of batches) {
        assert.ok(batch.length >= 1 && batch.length <= 1000);
        assert.ok(Buffer.byteLength(syncFrame(batch)) <= maxFrame, `${Buffer.byteLength(syncFrame(batch))} B`);
      }
      assert.deepEqual(batches.flat(), longIds);
      if (maxFrame === 64 * 1024) assert.ok(batches.length > 1, 'the documented maximum does not fit one default frame');
    });
  }

  it('cuts by count when the frame is large or unknown; an empty list gives no batch', () => {
    const ids = Array.from({ length: 2500 }, (_, i) => `u${i}`);
    assert.deepEqual(splitForFrame(ids, 1000, undefined).map((b) => b.length), [1000, 1000, 500]);
    assert.deepEqual(splitForFrame(ids, 1000, 10 * 1024 * 1024).map((b) => b.length), [1000, 1000, 500]);
    assert.deepEqual(splitForFrame([], 1000, 4096), []);
  });

  it('keeps at least one item per batch even if it alone is too large (progress; the server refuses it alone)', () => {
    const huge = ['x'.repeat(5000), 'y'];
    assert.deepEqual(splitForFrame(huge, 1000, 1024), [[huge[0]], ['y']]);
  });
});
