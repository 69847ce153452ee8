import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryPresence, createMemoryPresence } from '../../src/presence/memory/memory-presence.js';
import { runPresenceContract } from './presence.contract.js';

runPresenceContract('memory', async (ttlMs) => {
  // One process, one engine: the memory engine is shared by the instances of one process only.
  const presence = createMemoryPresence({ ttlMs });
  return { a: presence, b: presence, close: () => presence.close() };
});

describe('memory presence: bounded by who is online', () => {
  it('holds no entry for users offline longer than the ttl after a sweep', async () => {
    const presence = new MemoryPresence({ ttlMs: 1_000 });
    const t0 = 1_700_000_000_000;
    for (let i = 0; i < 1_000; i++) {
      await presence.connect(`u${i}`, `c${i}`, t0);
      if (i % 2 === 0) await presence.disconnect(`u${i}`, `c${i}`, t0 + 1); // the odd ones expire untouched
    }
    assert.equal(presence.size, 1_000);
    assert.equal((await presence.sweep(t0 + 1_001)).length, 500, 'the untouched half expires');
    assert.equal(presence.size, 1_000, 'kept for ttl after going offline');
    await presence.connect('u0', 'again', t0 + 1_500);
    await presence.sweep(t0 + 2_002);
    assert.equal(presence.size, 1, 'only the user online now is held');
    await presence.close();
  });
});
