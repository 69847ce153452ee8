import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
// The same build the store loads: two SQLite copies in one process do not see each other's locks.
import { Database } from '../../src/store/sqlite/driver.js';
import { isParleyError } from '../../src/protocol/errors.js';
import { loadMigrations } from '../../src/store/sqlite/migrate.js';
import { prepareStatements } from '../../src/store/sqlite/statements.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { createThreadedSqliteStore } from '../../src/store/sqlite/threaded-store.js';
import type { Store } from '../../src/store/store.js';
import { runStoreContract } from './store.contract.js';

/** The store contract against SQLite files, plus what only a file-backed engine can show (reopening, locking). */
const T0 = 1_700_000_000_000;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-sqlite-store-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

let fileCounter = 0;
const freshPath = (): string => path.join(root, `store-${++fileCounter}.db`);

// The file of each store, so the many-instance cases can open a second handle on it.
const fileOf = new WeakMap<Store, string>();
const tracked = (file: string, store: Store): Store => {
  fileOf.set(store, file);
  return store;
};
const sameFile = (first: Store): string => {
  const file = fileOf.get(first);
  if (!file) throw new Error('not a store of this file');
  return file;
};

runStoreContract('sqlite', async () => {
  const file = freshPath();
  return tracked(file, createSqliteStore({ path: file, synchronous: 'full' }));
}, { secondHandle: async (first) => createSqliteStore({ path: sameFile(first), synchronous: 'full' }) });
runStoreContract('sqlite on its own thread', async () => {
  const file = freshPath();
  return tracked(file, createThreadedSqliteStore({ path: file, synchronous: 'full' }));
}, { secondHandle: async (first) => createThreadedSqliteStore({ path: sameFile(first), synchronous: 'full' }) });

async function openMigrated(file: string, options: { busyTimeoutMs?: number } = {}): Promise<Store> {
  const store = createSqliteStore({ path: file, synchronous: 'full', ...options });
  await store.migrate();
  return store;
}

async function seed(store: Store): Promise<void> {
  await store.createUser({ id: 'u1', name: 'Ann', passwordHash: 'h', now: T0 });
  await store.createGroup({ id: 'g', name: 'Team', visibility: 'public', createdBy: 'u1', now: T0 });
}

const message = (key: string, id = `id-${key}`) =>
  ({ id, conversationId: 'g', senderId: 'u1', key, text: key, meta: { key }, now: T0 });

describe('sqlite store', () => {
  it('keeps data across close and reopen, including appends still queued at close', async () => {
    const file = freshPath();
    const store = await openMigrated(file);
    await seed(store);
    await store.appendMessage(message('a'));
    const queued = [store.appendMessage(message('b')), store.appendMessage(message('c'))];
    await store.close();
    assert.deepEqual((await Promise.all(queued)).map((r) => r.message.seq), [2, 3]);

    const reopened = await openMigrated(file);
    try {
      assert.equal((await reopened.getUserByName('ann'))?.passwordHash, 'h');
      assert.deepEqual((await reopened.messagesAfter('g', 0, 10)).map((m) => m.text), ['a', 'b', 'c']);
      assert.equal((await reopened.appendMessage(message('d'))).message.seq, 4);
    } finally {
      await reopened.close();
    }
  });

  it('migrate() twice is harmless and records each migration once', async () => {
    const file = freshPath();
    const store = await openMigrated(file);
    await seed(store);
    await store.migrate();
    await store.close();
    const again = await openMigrated(file);
    assert.equal((await again.getConversation('g'))?.name, 'Team');
    await again.close();
    const db = new Database(file, { readonly: true });
    try {
      const versions = db.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck().all();
      assert.deepEqual(versions, loadMigrations().map((m) => m.version));
    } finally {
      db.close();
    }
  });

  it('creates the parent folder of the file', async () => {
    const file = path.join(root, 'nested', 'deeper', 'parley.db');
    const store = await openMigrated(file);
    await store.close();
    assert.ok(fs.existsSync(file));
  });

  it('works in memory and with synchronous normal', async () => {
    for (const options of [{ path: ':memory:', synchronous: 'full' }, { path: freshPath(), synchronous: 'normal' }] as const) {
      const store = createSqliteStore(options);
      await store.migrate();
      await seed(store);
      assert.equal((await store.appendMessage(message('a'))).message.seq, 1);
      await store.close();
    }
  });

  it('turns a lock held by another process into UNAVAILABLE, for single writes and append batches', async () => {
    const file = freshPath();
    const store = await openMigrated(file, { busyTimeoutMs: 20 });
    await seed(store);
    const other = new Database(file);
    try {
      other.exec('BEGIN IMMEDIATE');
      const rejectedUnavailable = (err: unknown) => isParleyError(err) && err.code === 'UNAVAILABLE';
      await assert.rejects(store.setBanned('u1', true), rejectedUnavailable);
      const batch = await Promise.allSettled([store.appendMessage(message('a')), store.appendMessage(message('b'))]);
      assert.ok(batch.every((r) => r.status === 'rejected' && rejectedUnavailable(r.reason)));
      other.exec('ROLLBACK');
      assert.equal((await store.appendMessage(message('a'))).message.seq, 1);
    } finally {
      other.close();
      await store.close();
    }
  });

  it('on threads, answers a search while the writer waits for a lock: searches never queue behind writes', async () => {
    const file = freshPath();
    // The writer waits up to 30 s for the lock held below; a search on the writer's thread would wait as long.
    const store = createThreadedSqliteStore({ path: file, synchronous: 'full', busyTimeoutMs: 30_000 });
    await store.migrate();
    await seed(store);
    const other = new Database(file);
    try {
      other.exec('BEGIN IMMEDIATE');
      let writeSettled = false;
      const blocked = store.createGroup({ id: 'g2', name: 'Team two', visibility: 'public', createdBy: 'u1', now: T0 })
        .finally(() => (writeSettled = true));
      const found = await store.searchPublic('team', 10);
      assert.equal(writeSettled, false, 'the search answered while the write still waited');
      assert.deepEqual(found.map((c) => c.id), ['g'], 'it sees what was committed, not the waiting write');
      other.exec('ROLLBACK');
      await blocked;
      assert.deepEqual((await store.searchPublic('team', 10)).map((c) => c.id), ['g', 'g2'], 'and then the committed write');
    } finally {
      if (other.inTransaction) other.exec('ROLLBACK');
      other.close();
      await store.close();
    }
  });

  it('rejects an item that fails after taking its seq alone, without leaving a gap', async () => {
    const store = await openMigrated(freshPath());
    try {
      await seed(store);
      // Only a caller breaking the types can make the insert itself fail (NOT NULL), after the seq was allocated.
      const broken = { ...message('b'), text: null as unknown as string };
      const results = await Promise.allSettled([
        store.appendMessage(message('a')), store.appendMessage(broken), store.appendMessage(message('c')),
      ]);
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
      assert.deepEqual((await store.messagesAfter('g', 0, 10)).map((m) => [m.seq, m.text]), [[1, 'a'], [2, 'c']]);
      assert.equal((await store.getConversation('g'))?.lastSeq, 2);
    } finally {
      await store.close();
    }
  });

  it('searches public groups through indexes, never a scan of the groups', async () => {
    const file = freshPath();
    const store = await openMigrated(file);
    await seed(store);
    await store.close();
    const db = new Database(file, { readonly: true });
    try {
      const statements = prepareStatements(db) as unknown as Record<string, { source: string }>;
      const plan = (name: string, ...params: unknown[]): string =>
        db.prepare(`EXPLAIN QUERY PLAN ${statements[name].source}`).all(...params).map((r: any) => r.detail).join('\n');
      const containing = plan('searchGroupsContaining', '"tea"', 'tea', 1000, 10);
      assert.match(containing, /VIRTUAL TABLE INDEX/);
      const starting = plan('searchGroupsStarting', 'te', 'te\u{10FFFF}', 1000, 10);
      assert.match(starting, /INDEX group_names_folded/);
      const all = plan('publicGroupsByName', 10);
      assert.match(all, /INDEX conversations_public_name/);
      for (const [name, text] of Object.entries({ containing, starting, all })) {
        assert.doesNotMatch(text, /SCAN (c|conversations|g|group_names)\b(?! USING)/, `${name} scans a table:\n${text}`);
      }
    } finally {
      db.close();
    }
  });

  it('refolds group names when they were folded under another signature (an older file, another Unicode version), once', async () => {
    const file = freshPath();
    const store = await openMigrated(file);
    await seed(store);
    await store.createGroup({ id: 'm', name: 'Москва', visibility: 'public', createdBy: 'u1', now: T0 });
    await store.close();
    const unfold = (signature: string | null): void => {
      const db = new Database(file);
      // What a file from before migration 006, or folded by a Node with other Unicode tables, holds.
      db.prepare("UPDATE group_names SET folded = 'Москва' WHERE conversation_id = 'm'").run();
      if (signature === null) db.prepare("DELETE FROM store_meta WHERE key = 'group_names_fold'").run();
      else db.prepare("UPDATE store_meta SET value = ? WHERE key = 'group_names_fold'").run(signature);
      db.close();
    };
    const search = async (): Promise<string[]> => {
      const reopened = await openMigrated(file);
      try {
        return (await reopened.searchPublic('москва', 10)).map((c) => c.id);
      } finally {
        await reopened.close();
      }
    };
    unfold(null);
    assert.deepEqual(await search(), ['m'], 'no signature: refolded');
    unfold('1/unicode-1.0');
    assert.deepEqual(await search(), ['m'], 'another signature: refolded');

    // Under the current signature, a start does not read every name again (it costs ~1 s per 200,000 groups).
    const db = new Database(file);
    db.prepare("UPDATE group_names SET folded = 'marker' WHERE conversation_id = 'm'").run();
    db.close();
    const reopened = await openMigrated(file);
    await reopened.close();
    const check = new Database(file, { readonly: true });
    try {
      assert.equal((check.prepare("SELECT folded FROM group_names WHERE conversation_id = 'm'").get() as { folded: string }).folded, 'marker');
    } finally {
      check.close();
    }
  });

});
