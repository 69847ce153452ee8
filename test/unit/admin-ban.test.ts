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
 * The admin ban answers by what was stored, not by whether its courtesy close event could be published. Real engines:
 * a SQLite store and a memory bus that is closed, so publishing fails the way an unreachable bus does.
 */
describe('admin ban', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-admin-ban-'));
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('answers success for a stored ban whose close event cannot be published, and reports the publish failure', async () => {
    const store = createSqliteStore({ path: path.join(root, 'ban.db'), synchronous: 'normal' });
    await store.migrate();
    const bus = createMemoryBus();
    const publisher = new Publisher(bus);
    const limits = chatLimitsFrom(configSchema.parse({}));
    const failures: unknown[] = [];
    const admin = new Admin(store, new Chat({ store, publisher, limits }), publisher, (err) => failures.push(err));
    try {
      await store.createUser({ id: 'u1', name: 'Ann', passwordHash: null, now: 1 });
      await bus.close();
      const user = await admin.setBanned('u1', true);
      assert.equal(user.banned, true);
      assert.equal((await store.getUser('u1'))?.banned, true);
      assert.equal(failures.length, 1, 'the failed close event is reported, not thrown');
    } finally {
      await store.close();
    }
  });
});
