import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPostgresStore } from '../../src/store/postgres/postgres-store.js';
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
