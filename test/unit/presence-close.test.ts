import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { conversationTopic } from '../../src/bus/bus.js';
import { createMemoryBus, createMemoryBusHub } from '../../src/bus/memory/memory-bus.js';
import { configSchema } from '../../src/config/schema.js';
import { PresenceService } from '../../src/domain/presence-service.js';
import { Publisher } from '../../src/domain/publisher.js';
import { createMemoryPresence } from '../../src/presence/memory/memory-presence.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { until } from '../helpers/raw-client.js';

/**
 * A draining instance closes its connections, then its presence service: the users going offline in that last window
 * must still be announced (other instances' clients would otherwise show them online until they reload). Real
 * engines: a SQLite store, the memory presence engine, and two memory buses on one hub (the draining instance and
 * another one whose client watches the direct conversation).
 */
describe('presence service close', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-presence-close-'));
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('publishes the changes still waiting for their window before it resolves', async () => {
    const store = createSqliteStore({ path: path.join(root, 'presence.db'), synchronous: 'normal' });
    await store.migrate();
    const hub = createMemoryBusHub();
    const draining = createMemoryBus({ hub });
    const other = createMemoryBus({ hub });
    const options = { ...configSchema.parse({}).presence, batchMs: 60_000 }; // a window that never ends by itself here
    const service = new PresenceService(createMemoryPresence({ ttlMs: options.ttlMs }), store, new Publisher(draining), options);
    try {
      await store.createUser({ id: 'ann', name: 'Ann', passwordHash: null, now: 1 });
      await store.createUser({ id: 'bob', name: 'Bob', passwordHash: null, now: 1 });
      const { conversation } = await store.openDirect({ id: 'dm1', a: 'ann', b: 'bob', now: 1 });
      const received: string[] = [];
      other.onMessage((_topic, payload) => received.push(payload.toString()));
      await other.subscribe(conversationTopic(conversation.id));
      await service.connected('ann', 'c1');
      await service.disconnected('ann', 'c1');
      await service.close();
      await until(() => received.length > 0, 'the other instance receives the presence change', 5000, 10);
      const last = received.at(-1)!;
      assert.match(last, /"presence"/);
      assert.match(last, /"userId":"ann","online":false/);
    } finally {
      await draining.close();
      await other.close();
      await store.close();
    }
  });

  it("tells a quick reconnect's online: connect, close and connect again within one window ends online", async () => {
    const store = createSqliteStore({ path: path.join(root, 'presence-quick.db'), synchronous: 'normal' });
    await store.migrate();
    const hub = createMemoryBusHub();
    const own = createMemoryBus({ hub });
    const other = createMemoryBus({ hub });
    const options = { ...configSchema.parse({}).presence, batchMs: 60_000 }; // one window, ended by close()
    const service = new PresenceService(createMemoryPresence({ ttlMs: options.ttlMs }), store, new Publisher(own), options);
    try {
      await store.createUser({ id: 'cy', name: 'Cy', passwordHash: null, now: 1 });
      await store.createUser({ id: 'dee', name: 'Dee', passwordHash: null, now: 1 });
      const { conversation } = await store.openDirect({ id: 'dm2', a: 'cy', b: 'dee', now: 1 });
      const received: string[] = [];
      other.onMessage((_topic, payload) => received.push(payload.toString()));
      await other.subscribe(conversationTopic(conversation.id));
      // Cy was offline; within one window: online, offline, online again.
      await service.connected('cy', 'c1');
      await service.disconnected('cy', 'c1');
      await service.connected('cy', 'c2');
      await service.close();
      await until(() => received.length > 0, 'the other instance receives the presence change', 5000, 10);
      assert.match(received.at(-1)!, /"userId":"cy","online":true/);
    } finally {
      await own.close();
      await other.close();
      await store.close();
    }
  });
});
