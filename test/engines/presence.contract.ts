import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Presence } from '../../src/presence/presence.js';

/**
 * The presence contract (the guarantees in src/presence/presence.ts), run against every engine. Every time is a
 * `now` argument, so the suite is deterministic for engines that honour it (they must not read the clock).
 * `createPresence(ttlMs)` returns a fresh, empty presence (engines on a shared server must isolate instances, e.g.
 * with a key prefix, and release it on `close`).
 */
const TTL = 1_000;
/** A base time far from zero, so an engine that treats 0 or small numbers specially is caught. */
const T0 = 1_700_000_000_000;

let userCounter = 0;
const freshUser = (label: string): string => `contract-${label}-${process.pid}-${++userCounter}`;

export function runPresenceContract(engineName: string, createPresence: (ttlMs: number) => Promise<Presence>): void {
  describe(`presence contract: ${engineName}`, () => {
    async function withPresence(fn: (presence: Presence) => Promise<void>) {
      const presence = await createPresence(TTL);
      try {
        await fn(presence);
      } finally {
        await presence.close();
      }
    }

    async function state(presence: Presence, userId: string, now: number) {
      const [entry] = await presence.get([userId], now);
      assert.ok(entry, 'get returns one entry per requested user');
      assert.equal(entry.userId, userId);
      return entry;
    }

    it('reports online on the first connection only', async () => {
      await withPresence(async (presence) => {
        const u = freshUser('first');
        assert.deepEqual(await presence.connect(u, 'c1', T0), { becameOnline: true });
        assert.equal((await state(presence, u, T0)).online, true);
      });
    });

    it('does not report becameOnline for a second device (nor for the same connection again)', async () => {
      await withPresence(async (presence) => {
        const u = freshUser('second');
        await presence.connect(u, 'phone', T0);
        assert.deepEqual(await presence.connect(u, 'laptop', T0 + 10), { becameOnline: false });
        assert.deepEqual(await presence.connect(u, 'laptop', T0 + 20), { becameOnline: false });
      });
    });

    it('reports offline only when the last connection goes', async () => {
      await withPresence(async (presence) => {
        const u = freshUser('last');
        await presence.connect(u, 'phone', T0);
        await presence.connect(u, 'laptop', T0 + 10);
        assert.deepEqual(await presence.disconnect(u, 'phone', T0 + 20), { becameOffline: false });
        assert.equal((await state(presence, u, T0 + 20)).online, true);
        assert.deepEqual(await presence.disconnect(u, 'laptop', T0 + 30), { becameOffline: true });
        assert.equal((await state(presence, u, T0 + 30)).online, false);
        // A repeated or unknown disconnect is not another transition.
        assert.deepEqual(await presence.disconnect(u, 'laptop', T0 + 40), { becameOffline: false });
        assert.deepEqual(await presence.disconnect(freshUser('nobody'), 'x', T0 + 40), { becameOffline: false });
      });
    });

    it('keeps lastSeen after going offline, and reports null for a user never seen', async () => {
      await withPresence(async (presence) => {
        const u = freshUser('lastseen');
        const never = freshUser('never');
        await presence.connect(u, 'c1', T0);
        await presence.disconnect(u, 'c1', T0 + 500);
        const entries = await presence.get([u, never], T0 + 100_000);
        assert.deepEqual(entries, [
          { userId: u, online: false, lastSeen: T0 + 500 },
          { userId: never, online: false, lastSeen: null },
        ]);
      });
    });

    it('comes online again after going offline', async () => {
      await withPresence(async (presence) => {
        const u = freshUser('again');
        await presence.connect(u, 'c1', T0);
        await presence.disconnect(u, 'c1', T0 + 10);
        assert.deepEqual(await presence.connect(u, 'c2', T0 + 20), { becameOnline: true });
        assert.equal((await state(presence, u, T0 + 20)).online, true);
      });
    });

    it('keeps a touched connection alive past the ttl of its connect', async () => {
      await withPresence(async (presence) => {
        const u = freshUser('touch');
        await presence.connect(u, 'c1', T0);
        await presence.touch([{ userId: u, connectionId: 'c1' }], T0 + 800);
        await presence.touch([{ userId: u, connectionId: 'c1' }], T0 + 1_600);
        const now = T0 + 2_400; // 2.4 ttl after connect, 0.8 ttl after the last touch
        assert.equal((await state(presence, u, now)).online, true);
        assert.deepEqual(await presence.sweep(now), []);
        assert.equal((await state(presence, u, now)).lastSeen, T0 + 1_600);
      });
    });

    it('expires untouched entries after the ttl, and sweep reports each user once', async () => {
      await withPresence(async (presence) => {
        const u = freshUser('expire');
        await presence.connect(u, 'c1', T0);
        await presence.touch([{ userId: u, connectionId: 'c1' }], T0 + 100);
        assert.equal((await state(presence, u, T0 + 100 + TTL)).online, true, 'still live at exactly ttl');
        assert.deepEqual(await presence.sweep(T0 + 100 + TTL), []);

        const later = T0 + 100 + TTL + 1;
        const entry = await state(presence, u, later);
        assert.equal(entry.online, false, 'expired one millisecond after ttl');
        assert.equal(entry.lastSeen, T0 + 100, 'lastSeen is the last touch');
        assert.deepEqual(await presence.sweep(later), [u]);
        assert.deepEqual(await presence.sweep(later + 1), [], 'reported once');
        assert.deepEqual(await presence.sweep(later + 10 * TTL), [], 'still reported once');
        // The expired connection is gone: its disconnect is not another transition, and the user can come back.
        assert.deepEqual(await presence.disconnect(u, 'c1', later + 2), { becameOffline: false });
        assert.deepEqual(await presence.connect(u, 'c2', later + 3), { becameOnline: true });
      });
    });

    it('sweeps only users whose connections all expired', async () => {
      await withPresence(async (presence) => {
        const gone = freshUser('gone');
        const alive = freshUser('alive');
        const split = freshUser('split'); // one device expires, the other is touched
        await presence.connect(gone, 'g1', T0);
        await presence.connect(alive, 'a1', T0);
        await presence.connect(split, 's-dead', T0);
        await presence.connect(split, 's-live', T0);
        await presence.touch(
          [
            { userId: alive, connectionId: 'a1' },
            { userId: split, connectionId: 's-live' },
          ],
          T0 + 900,
        );
        const now = T0 + 1_500;
        assert.deepEqual(await presence.sweep(now), [gone]);
        const entries = await presence.get([gone, alive, split], now);
        assert.deepEqual(
          entries.map((e) => [e.userId, e.online]),
          [
            [gone, false],
            [alive, true],
            [split, true],
          ],
        );
        // The split user's last live device going is the offline transition.
        assert.deepEqual(await presence.disconnect(split, 's-live', now + 1), { becameOffline: true });
      });
    });

    it('does not report a user that disconnected cleanly in a later sweep', async () => {
      await withPresence(async (presence) => {
        const u = freshUser('clean');
        await presence.connect(u, 'c1', T0);
        assert.deepEqual(await presence.disconnect(u, 'c1', T0 + 10), { becameOffline: true });
        assert.deepEqual(await presence.sweep(T0 + 10 * TTL), []);
      });
    });

    it('keeps an offline user for ttl, then a sweep forgets it (memory follows who is online, not history)', async () => {
      await withPresence(async (presence) => {
        const left = freshUser('forget-left');
        const expired = freshUser('forget-expired');
        const back = freshUser('forget-back');
        await presence.connect(left, 'l1', T0);
        await presence.connect(expired, 'e1', T0);
        await presence.connect(back, 'b1', T0);
        await presence.disconnect(left, 'l1', T0 + 10);
        await presence.disconnect(back, 'b1', T0 + 10);
        assert.deepEqual(await presence.sweep(T0 + TTL + 1), [expired], 'the untouched user expires (offline from now)');
        assert.deepEqual(
          (await presence.get([left, expired], T0 + TTL + 1)).map((e) => e.lastSeen),
          [T0 + 10, T0],
          'within ttl of going offline, lastSeen is kept',
        );
        await presence.connect(back, 'b2', T0 + TTL + 5); // came back: never forgotten while online
        await presence.sweep(T0 + 2 * TTL + 2);
        assert.deepEqual(
          (await presence.get([left, expired, back], T0 + 2 * TTL + 2)).map((e) => [e.online, e.lastSeen]),
          [[false, null], [false, null], [true, T0 + TTL + 5]],
          'offline for more than ttl at a sweep: forgotten; online: kept',
        );
        assert.deepEqual(await presence.connect(left, 'l2', T0 + 2 * TTL + 3), { becameOnline: true }, 'a forgotten user comes back online');
      });
    });
  });
}
