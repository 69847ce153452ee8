import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isParleyError } from '../../src/protocol/errors.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { storeBusy } from '../../src/store/sqlite/store-busy.js';
import { createThreadedSqliteStore } from '../../src/store/sqlite/threaded-store.js';
import type { Store } from '../../src/store/store.js';

/** The store's queues are bounded: past the bound a call is refused at once (RATE_LIMITED), and nothing acknowledged is lost. */
const T0 = 1_700_000_000_000;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-store-queue-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let fileCounter = 0;
const freshPath = (): string => path.join(root, `store-${++fileCounter}.db`);

async function seeded(store: Store): Promise<Store> {
  await store.migrate();
  await store.createUser({ id: 'u1', name: 'Ann', passwordHash: 'h', now: T0 });
  await store.createGroup({ id: 'g', name: 'Team', visibility: 'public', createdBy: 'u1', now: T0 });
  return store;
}

const message = (key: string) => ({ id: `id-${key}`, conversationId: 'g', senderId: 'u1', key, text: key, meta: null, now: T0 });

/** Submit `count` appends in one turn; returns the keys acknowledged and the errors of the refused ones. */
async function burst(store: Store, count: number): Promise<{ acked: string[]; refused: unknown[] }> {
  const keys = Array.from({ length: count }, (_, i) => `k${i}`);
  const outcomes = await Promise.allSettled(keys.map((k) => store.appendMessage(message(k))));
  return {
    acked: keys.filter((_, i) => outcomes[i]!.status === 'fulfilled'),
    refused: outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => o.reason),
  };
}

function assertRetryable(errors: unknown[]): void {
  for (const error of errors) {
    assert.ok(isParleyError(error), String(error));
    assert.equal(error.code, 'RATE_LIMITED');
    assert.ok(Number.isInteger(error.retryAfterMs) && error.retryAfterMs! >= 10, `retryAfterMs ${error.retryAfterMs}`);
  }
}

describe('sqlite store: bounded queues', () => {
  it('suggests a wait between the expected drain time and twice it, at least 10 ms', () => {
    assert.equal(storeBusy(100, 'writes', () => 0).retryAfterMs, 100);
    assert.equal(storeBusy(100, 'writes', () => 0.999).retryAfterMs, 199);
    assert.equal(storeBusy(0, 'calls', () => 0).retryAfterMs, 10);
    assert.equal(storeBusy(2.5, 'calls', () => 0.5).retryAfterMs, 15);
    assert.match(storeBusy(0, 'calls').message, /too many calls are waiting/);
  });

  it('refuses appends past maxQueuedWrites waiting for one group commit, and stores exactly the acknowledged ones', async () => {
    const store = await seeded(createSqliteStore({ path: freshPath(), synchronous: 'full', maxQueuedWrites: 3 }));
    const { acked, refused } = await burst(store, 10);
    assert.deepEqual(acked, ['k0', 'k1', 'k2']);
    assert.equal(refused.length, 7);
    assertRetryable(refused);
    // Spread, so that a burst's refused callers do not all come back at once (7 equal draws of 10+ values: p < 1e-6).
    assert.ok(new Set(refused.map((e: any) => e.retryAfterMs)).size > 1, 'the refusals suggest different waits');
    const stored = await store.messagesAfter('g', 0, 100);
    assert.deepEqual(stored.map((m) => m.key), acked);
    // The queue drained: the next append is taken.
    assert.equal((await store.appendMessage(message('later'))).message.seq, 4);
    await store.close();
  });

  it('refuses calls past maxPendingCalls posted to the store thread, and stores exactly the acknowledged ones', async () => {
    const store = await seeded(createThreadedSqliteStore({ path: freshPath(), synchronous: 'full', maxPendingCalls: 4 }));
    const { acked, refused } = await burst(store, 12);
    assert.equal(acked.length, 4);
    assert.equal(refused.length, 8);
    assertRetryable(refused);
    const stored = await store.messagesAfter('g', 0, 100);
    assert.deepEqual(stored.map((m) => m.key), acked);
    await store.close();
  });
});
