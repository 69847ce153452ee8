import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { presenceTopic } from '../../src/bus/bus.js';
import { createMemoryBus, createMemoryBusHub } from '../../src/bus/memory/memory-bus.js';
import { PresenceService } from '../../src/domain/presence-service.js';
import { Publisher } from '../../src/domain/publisher.js';
import { createMemoryPresence } from '../../src/presence/memory/memory-presence.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';

/**
 * PresenceService registers again, on a heartbeat round, the connections the engine no longer holds (as a restarted
 * Redis forgets them): a user whose connection is open is online. Only connections this instance still holds: one
 * that closed must not come back as a ghost. Real engines: the memory presence (its expiry stands for the lost
 * entries; the Redis case runs in test/engines/redis-presence.test.ts), a SQLite store and a memory bus.
 */
describe('presence service: entries the engine lost', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-presence-'));
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('registers again the connections it holds, and only those', async () => {
    const store = createSqliteStore({ path: path.join(root, 'presence.db'), synchronous: 'normal' });
    await store.migrate();
    const bus = createMemoryBus();
    const engine = createMemoryPresence({ ttlMs: 1000 });
    let now = 1_700_000_000_000;
    const service = new PresenceService(engine, store, new Publisher(bus), { batchMs: 10, ttlMs: 1000, maxGroupSize: 100, maxSubscriptions: 10 }, () => now);
    try {
      await service.connected('ann', 'open');
      await service.connected('ann', 'closed');
      await service.disconnected('ann', 'closed');
      // The engine loses ann's entries (here: not touched within the ttl, then swept, as after a long stall).
      now += 1001;
      assert.deepEqual(await engine.sweep(now), ['ann']);
      assert.equal((await engine.get(['ann'], now))[0]!.online, false);
      await service.touch([{ userId: 'ann', connectionId: 'open' }, { userId: 'ann', connectionId: 'closed' }]);
      assert.equal((await engine.get(['ann'], now))[0]!.online, true, 'the open connection is registered again');
      // Only 'open' came back: its disconnect is ann's last, and reports her offline.
      assert.deepEqual(await engine.disconnect('ann', 'open', now + 1), { becameOffline: true });
      assert.deepEqual(await engine.disconnect('ann', 'closed', now + 1), { becameOffline: false }, 'the closed one was not registered again');
    } finally {
      await service.close();
      await engine.close();
      await bus.close();
      await store.close();
    }
  });
  it('holds a user with one connection the same way (one id, then two, then none)', async () => {
    const store = createSqliteStore({ path: path.join(root, 'presence-one.db'), synchronous: 'normal' });
    await store.migrate();
    const bus = createMemoryBus();
    const engine = createMemoryPresence({ ttlMs: 1000 });
    let now = 1_700_000_000_000;
    const service = new PresenceService(engine, store, new Publisher(bus), { batchMs: 10, ttlMs: 1000, maxGroupSize: 100, maxSubscriptions: 10 }, () => now);
    const lose = async (): Promise<void> => {
      now += 1001;
      await engine.sweep(now);
    };
    const online = async (userId: string): Promise<boolean> => (await engine.get([userId], now))[0]!.online;
    try {
      await service.connected('bob', 'b1');
      await lose();
      await service.touch([{ userId: 'bob', connectionId: 'b1' }]);
      assert.equal(await online('bob'), true, "bob's only connection is registered again");
      // Registered again while held: still one connection, whose disconnect ends what the service holds of bob.
      await service.disconnected('bob', 'b1');
      await lose();
      await service.touch([{ userId: 'bob', connectionId: 'b1' }]);
      assert.equal(await online('bob'), false, 'a closed only connection is not registered again');
      await service.connected('bob', 'b2');
      await service.connected('bob', 'b3');
      await service.disconnected('bob', 'b2');
      await service.disconnected('bob', 'b3');
      await lose();
      await service.touch([{ userId: 'bob', connectionId: 'b2' }, { userId: 'bob', connectionId: 'b3' }]);
      assert.equal(await online('bob'), false, 'neither of two closed connections is registered again');
    } finally {
      await service.close();
      await engine.close();
      await bus.close();
      await store.close();
    }
  });
});

describe('presence service: two instances on one engine', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-presence-two-'));
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it("never lets one instance's late offline undo another's newer online", async () => {
    const store = createSqliteStore({ path: path.join(root, 'presence.db'), synchronous: 'normal' });
    await store.migrate();
    const hub = createMemoryBusHub();
    const [busA, busB, watcher] = [createMemoryBus({ hub }), createMemoryBus({ hub }), createMemoryBus({ hub })];
    const seen: Array<{ userId: string; online: boolean }> = [];
    watcher.onMessage((_topic, payload) => seen.push(...(JSON.parse(payload.toString()) as { data: { users: Array<{ userId: string; online: boolean }> } }).data.users));
    await watcher.subscribe(presenceTopic('ann'));
    await watcher.subscribe(presenceTopic('bob'));
    const engine = createMemoryPresence({ ttlMs: 60_000 }); // one engine shared by both, as Redis is
    const options = { ttlMs: 60_000, maxGroupSize: 100, maxSubscriptions: 10 };
    // a publishes its changes after a longer window than b: its offline is flushed after b's newer online.
    const a = new PresenceService(engine, store, new Publisher(busA), { ...options, batchMs: 150 });
    const b = new PresenceService(engine, store, new Publisher(busB), { ...options, batchMs: 10 });
    const until = async (what: string, check: () => boolean) => {
      const deadline = Date.now() + 5000;
      while (!check()) {
        assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    try {
      await a.connected('ann', 'on-a');
      await until('the first online', () => seen.length === 1);
      await a.disconnected('ann', 'on-a'); // offline, published by a after its 150 ms window
      await b.connected('ann', 'on-b'); // online again, published by b after 10 ms
      await until("b's online", () => seen.length === 2);
      // A barrier: bob's online goes out in a's window with ann's offline (or in a later one), so once it arrived,
      // ann's offline was published before it or not at all.
      await a.connected('bob', 'bob-on-a');
      await until("bob's online, through a", () => seen.some((s) => s.userId === 'bob'));
      assert.deepEqual(
        seen.map((s) => `${s.userId} ${s.online ? 'online' : 'offline'}`),
        ['ann online', 'ann online', 'bob online'],
        "a's stale offline was dropped, not published after b's newer online",
      );
      assert.equal((await engine.get(['ann'], Date.now()))[0]!.online, true);
    } finally {
      await a.close();
      await b.close();
      await engine.close();
      await store.close();
    }
  });
});
