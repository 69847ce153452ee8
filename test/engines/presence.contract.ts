import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Presence } from '../../src/presence/presence.js';

/**
 * The presence contract (the guarantees in src/presence/presence.ts), run against every engine. Every time is a
 * `now` argument, so the suite is deterministic for engines that honour it (they must not read the clock).
 * `createPair(ttlMs)` returns two instances on one fresh, empty engine, standing for two server instances (for an
 * in-process engine, one presence twice: it is shared by one process only); engines on a shared server isolate each
 * pair, e.g. with a key prefix. `close` releases both.
 */
export interface PresencePair {
  a: Presence;
  b: Presence;
  close(): Promise<void>;
}

const TTL = 1_000;
/** A base time far from zero, so an engine that treats 0 or small numbers specially is caught. */
const T0 = 1_700_000_000_000;

let userCounter = 0;
const freshUser = (label: string): string => `contract-${label}-${process.pid}-${++userCounter}`;

export function runPresenceContract(engineName: string, createPair: (ttlMs: number) => Promise<PresencePair>): void {
  describe(`presence contract: ${engineName}`, () => {
    async function withPair(fn: (pair: PresencePair) => Promise<void>) {
      const pair = await createPair(TTL);
      try {
        await fn(pair);
      } finally {
        await pair.close();
      }
    }
    const withPresence = (fn: (presence: Presence) => Promise<void>) => withPair((pair) => fn(pair.a));

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

    it('says which touched entries it does not hold live, and does not bring them back', async () => {
      await withPresence(async (presence) => {
        const u = freshUser('touch-gone');
        const stranger = freshUser('touch-stranger');
        await presence.connect(u, 'c1', T0);
        assert.deepEqual(
          await presence.touch([{ userId: u, connectionId: 'c1' }, { userId: u, connectionId: 'never' }, { userId: stranger, connectionId: 's1' }], T0 + 500),
          [{ userId: u, connectionId: 'never' }, { userId: stranger, connectionId: 's1' }],
          'unknown entries are returned, the registered one is refreshed',
        );
        const late = T0 + 500 + TTL + 1;
        assert.deepEqual(await presence.touch([{ userId: u, connectionId: 'c1' }], late), [{ userId: u, connectionId: 'c1' }], 'an expired entry is returned');
        assert.equal((await state(presence, u, late)).online, false, 'and not refreshed');
        assert.deepEqual(await presence.get([stranger], late), [{ userId: stranger, online: false, lastSeen: null }], 'nor created');
        assert.deepEqual(await presence.sweep(late), [u]);
        // The caller that still holds the connection registers it again: a new transition after the sweep.
        assert.deepEqual(await presence.connect(u, 'c1', late + 1), { becameOnline: true });
      });
    });

    it('shares connections across instances: a disconnect on one never reports offline a user live on another', async () => {
      await withPair(async ({ a, b }) => {
        const u = freshUser('two-instances');
        assert.deepEqual(await a.connect(u, 'on-a', T0), { becameOnline: true });
        assert.deepEqual(await b.connect(u, 'on-b', T0 + 10), { becameOnline: false }, 'already online through a');
        assert.deepEqual(await a.disconnect(u, 'on-a', T0 + 20), { becameOffline: false }, 'still live on b');
        assert.equal((await state(b, u, T0 + 20)).online, true);
        assert.equal((await state(a, u, T0 + 20)).online, true, 'both instances see one state');
        assert.deepEqual(await b.disconnect(u, 'on-b', T0 + 30), { becameOffline: true });
        assert.equal((await state(a, u, T0 + 30)).online, false);
      });
    });

    it('never lets an offline from one instance overtake a later online from another', async () => {
      await withPair(async ({ a, b }) => {
        const u = freshUser('overtake');
        await a.connect(u, 'a1', T0);
        // The user reconnects to b at T0 + 50; the disconnect of the old connection on a, stamped T0 + 40, reaches the
        // engine only after it (a slow instance, a late close).
        assert.deepEqual(await b.connect(u, 'b1', T0 + 50), { becameOnline: false });
        assert.deepEqual(await a.disconnect(u, 'a1', T0 + 40), { becameOffline: false }, 'the late offline is not a transition');
        assert.deepEqual(await b.get([u], T0 + 60), [{ userId: u, online: true, lastSeen: T0 + 50 }], 'online, and lastSeen not moved back');
        // The same after a real offline: a's late disconnect cannot take back b's newer online.
        assert.deepEqual(await b.disconnect(u, 'b1', T0 + 70), { becameOffline: true });
        await a.connect(u, 'a2', T0 + 80);
        await b.connect(u, 'b2', T0 + 90);
        assert.deepEqual(await a.disconnect(u, 'a2', T0 + 85), { becameOffline: false });
        assert.equal((await state(a, u, T0 + 95)).online, true);
      });
    });

    it("expires a dead instance's entries: another instance's sweep reports its users once", async () => {
      await withPair(async ({ a, b }) => {
        const dead = freshUser('dead-instance');
        const alive = freshUser('live-instance');
        await a.connect(dead, 'a1', T0); // a dies after this: it never touches nor disconnects again
        await b.connect(alive, 'b1', T0);
        await b.touch([{ userId: alive, connectionId: 'b1' }], T0 + 900);
        const now = T0 + TTL + 1;
        assert.deepEqual(await b.get([dead], now), [{ userId: dead, online: false, lastSeen: T0 }]);
        assert.deepEqual(await b.sweep(now), [dead]);
        assert.deepEqual(await b.sweep(now + 1), []);
        assert.equal((await state(b, alive, now)).online, true);
      });
    });

    it('claims a sweep for one instance at a time, and passes the claim on when its holder stops sweeping', async () => {
      await withPair(async ({ a, b }) => {
        const first = freshUser('claim-first');
        const second = freshUser('claim-second');
        await a.connect(first, 'f1', T0);
        await a.connect(second, 's1', T0 + TTL);
        const now = T0 + TTL + 1; // first expired, second live
        const [byA, byB] = await Promise.all([a.sweep(now), b.sweep(now)]);
        assert.deepEqual([...byA, ...byB], [first], 'reported once across both instances');
        // a stops sweeping (it died); second expires later, and b's sweeps report it once the claim has lapsed.
        const later = T0 + 3 * TTL;
        assert.deepEqual([...(await b.sweep(later)), ...(await b.sweep(later + 1))], [second]);
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
