import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { loadMigrations } from '../../src/store/postgres/migrate.js';
import { createPostgresStore, searchSql } from '../../src/store/postgres/postgres-store.js';
import type { Store } from '../../src/store/store.js';
import { type PostgresService, startPostgres } from '../helpers/services/postgres.js';
import { runStoreContract } from './store.contract.js';

/** The store contract against a real PostgreSQL started for this file, each test on a database of its own. */
let server: PostgresService;
before(async () => {
  server = await startPostgres();
});
after(async () => {
  await server?.destroy();
});

// The database of each store, so the many-instance cases can open a second handle on it.
const urlOf = new WeakMap<Store, string>();
const open = (url: string): Store => {
  const store = createPostgresStore({ url, poolSize: 5, connectTimeoutMs: 2000 });
  urlOf.set(store, url);
  return store;
};

runStoreContract('postgres', async () => open(await server.createDatabase()), {
  secondHandle: async (first) => {
    const url = urlOf.get(first);
    if (!url) throw new Error('not a store of this server');
    return open(url);
  },
});

const T0 = 1_700_000_000_000;

/** A direct session on the store's database, for what only the engine can show (plans, the migrations table). */
async function session<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

describe('postgres store', () => {
  it('counts only the instances of its own database: another database on the same server is another store', async () => {
    // pg_locks lists advisory locks of every database of the server; a claim looks at its own database's only.
    const a = open(await server.createDatabase());
    const b = open(await server.createDatabase());
    try {
      await Promise.all([a.migrate(), b.migrate()]);
      await a.claimInstance({ sole: true, description: 'instance A', settings: 'abc123' });
      await b.claimInstance({ sole: true, description: 'instance B', settings: 'def456' });
    } finally {
      await Promise.allSettled([a.close(), b.close()]);
    }
  });

  it('three instances migrating an empty database at once apply each migration exactly once', async () => {
    const url = await server.createDatabase();
    const stores = [open(url), open(url), open(url)];
    try {
      await Promise.all(stores.map((s) => s.migrate()));
      await stores[0].migrate();
      await stores[1].createUser({ id: 'u1', name: 'Ann', passwordHash: 'h', now: T0 });
      assert.equal((await stores[2].getUserByName('ANN'))?.id, 'u1');
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
    const versions = await session(url, async (c) => (await c.query('SELECT version FROM schema_migrations ORDER BY version')).rows.map((r) => r.version));
    assert.deepEqual(versions, loadMigrations().map((m) => m.version));
  });

  it('rejects an item that fails after taking its seq alone, without leaving a gap', async () => {
    const store = open(await server.createDatabase());
    try {
      await store.migrate();
      await store.createUser({ id: 'u1', name: 'Ann', passwordHash: null, now: T0 });
      await store.createGroup({ id: 'g', name: 'Team', visibility: 'public', createdBy: 'u1', now: T0 });
      const message = (key: string) => ({ id: `id-${key}`, conversationId: 'g', senderId: 'u1', key, text: key, meta: null, now: T0 });
      // Only a caller breaking the types can make the insert itself fail (NOT NULL), after the seq was allocated.
      const broken = { ...message('b'), text: null as unknown as string };
      const results = await Promise.allSettled([store.appendMessage(message('a')), store.appendMessage(broken), store.appendMessage(message('c'))]);
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
      assert.deepEqual((await store.messagesAfter('g', 0, 10)).map((m) => [m.seq, m.text]), [[1, 'a'], [2, 'c']]);
      assert.equal((await store.getConversation('g'))?.lastSeq, 2);
    } finally {
      await store.close();
    }
  });

  it('searches public groups through indexes: every search shape can be served without a scan of the groups', async () => {
    const url = await server.createDatabase();
    const store = open(url);
    try {
      await store.migrate();
      await store.createUser({ id: 'u1', name: 'Ann', passwordHash: null, now: T0 });
      await store.createGroup({ id: 'g', name: 'Team', visibility: 'public', createdBy: 'u1', now: T0 });
    } finally {
      await store.close();
    }
    const plans = await session(url, async (c) => {
      // With sequential scans priced out, the plan shows which indexes the query's shape lets the planner use.
      await c.query('SET enable_seqscan = off');
      const plan = async (sql: string, params: unknown[]): Promise<string> => {
        await c.query(`PREPARE q AS ${sql}`);
        const literals = params.map((p) => (typeof p === 'number' ? String(p) : `'${String(p).replaceAll("'", "''")}'`));
        const rows = (await c.query(`EXPLAIN EXECUTE q(${literals.join(', ')})`)).rows.map((r) => r['QUERY PLAN'] as string);
        await c.query('DEALLOCATE q');
        return rows.join('\n');
      };
      return {
        all: await plan(searchSql.all, [10]),
        starting: await plan(searchSql.starting, ['te', 'te\u{10FFFF}', 200, 10]),
        containing: await plan(searchSql.containing, ['%tea%', 200, 10]),
      };
    });
    assert.match(plans.all, /conversations_public_name/);
    assert.match(plans.starting, /group_names_folded/);
    assert.match(plans.containing, /group_names_trigrams/);
    for (const [name, text] of Object.entries(plans)) assert.doesNotMatch(text, /Seq Scan/, `${name} scans a table:\n${text}`);
  });

  it('refolds group names when they were folded under another signature, once', async () => {
    const url = await server.createDatabase();
    const reopenAndSearch = async (): Promise<string[]> => {
      const store = open(url);
      try {
        await store.migrate();
        return (await store.searchPublic('москва', 10)).map((c) => c.id);
      } finally {
        await store.close();
      }
    };
    const store = open(url);
    try {
      await store.migrate();
      await store.createUser({ id: 'u1', name: 'Ann', passwordHash: null, now: T0 });
      await store.createGroup({ id: 'm', name: 'Москва', visibility: 'public', createdBy: 'u1', now: T0 });
    } finally {
      await store.close();
    }
    // What a database folded by a Node with other Unicode tables holds.
    await session(url, (c) => c.query(`UPDATE group_names SET folded = 'Москва'; UPDATE store_meta SET value = '1/unicode-1.0' WHERE key = 'group_names_fold'`));
    assert.deepEqual(await reopenAndSearch(), ['m'], 'another signature: refolded');
    // Under the current signature a start does not read every name again.
    await session(url, (c) => c.query(`UPDATE group_names SET folded = 'marker'`));
    await reopenAndSearch();
    assert.equal(await session(url, async (c) => (await c.query('SELECT folded FROM group_names')).rows[0].folded), 'marker');
  });
});
