import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { createMemoryBus } from '../../src/bus/memory/memory-bus.js';
import { Admin } from '../../src/domain/admin.js';
import { Chat, chatLimitsFrom } from '../../src/domain/chat.js';
import { Publisher } from '../../src/domain/publisher.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { configSchema } from '../../src/config/schema.js';

/**
 * The admin ban is a removal of access: refused (UNAVAILABLE, nothing stored) while the bus refuses publishes, since
 * its close event is what ends the user's connections on other instances; stored and answered once it does. Real
 * engines: a SQLite store and a memory bus, closed to refuse publishes the way an unreachable bus does.
 */
describe('admin ban', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-admin-ban-'));
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('is refused UNAVAILABLE with nothing stored while the bus refuses publishes, and stored once it takes them', async () => {
    const store = createSqliteStore({ path: path.join(root, 'ban.db'), synchronous: 'normal' });
    await store.migrate();
    const limits = chatLimitsFrom(configSchema.parse({}));
    const failures: unknown[] = [];
    const adminOn = (bus: ReturnType<typeof createMemoryBus>) => {
      const publisher = new Publisher(bus);
      return new Admin(store, new Chat({ store, publisher, limits }), publisher, (err) => failures.push(err));
    };
    try {
      await store.createUser({ id: 'u1', name: 'Ann', passwordHash: null, now: 1 });
      const down = createMemoryBus();
      await down.close();
      await assert.rejects(adminOn(down).setBanned('u1', true), { code: 'UNAVAILABLE' });
      assert.equal((await store.getUser('u1'))?.banned, false, 'nothing stored');
      const up = createMemoryBus();
      const user = await adminOn(up).setBanned('u1', true);
      assert.equal(user.banned, true);
      assert.equal((await store.getUser('u1'))?.banned, true);
      assert.deepEqual(failures, []);
      await up.close();
    } finally {
      await store.close();
    }
  });
});
