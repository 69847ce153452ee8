import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { isParleyError } from '../../src/protocol/errors.js';
import { Pool } from '../../src/store/postgres/pool.js';
import { createPostgresStore } from '../../src/store/postgres/postgres-store.js';
import { until } from '../helpers/raw-client.js';
import type { Store } from '../../src/store/store.js';
import { type PostgresService, startPostgres } from '../helpers/services/postgres.js';

/**
 * The PostgreSQL store when its server goes away: calls fail fast with UNAVAILABLE (temporary) instead of hanging or
 * crashing the process, nothing acknowledged is lost, and calls succeed again once the server is back.
 */
const T0 = 1_700_000_000_000;
const CONNECT_TIMEOUT_MS = 1000;

let server: PostgresService;
before(async () => {
  server = await startPostgres();
});
after(async () => {
  await server?.destroy();
});

const isUnavailable = (err: unknown): boolean => isParleyError(err) && err.code === 'UNAVAILABLE';

/** Settles `promise` or fails the test after `ms`: a call that hangs is the failure this file looks for. */
async function within<T>(ms: number, promise: Promise<T>, what: string): Promise<PromiseSettledResult<T>> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} neither resolved nor rejected within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([Promise.allSettled([promise]).then(([r]) => r), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

const message = (key: string) => ({ id: `id-${key}`, conversationId: 'g', senderId: 'u1', key, text: key, meta: null, now: T0 });

describe('postgres store under faults', () => {
  it('rejects UNAVAILABLE quickly while the server is stopped, loses nothing acknowledged, and works once it is back', async () => {
    const backgroundErrors: Error[] = [];
    const store: Store = createPostgresStore({
      url: await server.createDatabase(), poolSize: 4, connectTimeoutMs: CONNECT_TIMEOUT_MS, onBackgroundError: (e) => backgroundErrors.push(e),
    });
    try {
      await store.migrate();
      await store.createUser({ id: 'u1', name: 'Ann', passwordHash: null, now: T0 });
      await store.createGroup({ id: 'g', name: 'Team', visibility: 'public', createdBy: 'u1', now: T0 });
      // Fill the pool with idle connections: the server will drop them (without a listener, a crash of the process).
      await Promise.all(Array.from({ length: 8 }, () => store.getUser('u1')));

      // Appends in flight while the server stops: each one settles, as committed or as UNAVAILABLE.
      const inFlight = Array.from({ length: 200 }, (_, i) => store.appendMessage(message(`before-${i}`)));
      const stopping = server.stop();
      const settled = await within(30_000, Promise.allSettled(inFlight), 'appends during the stop');
      await stopping;
      assert.equal(settled.status, 'fulfilled');
      const outcomes = settled.status === 'fulfilled' ? settled.value : [];
      for (const o of outcomes) if (o.status === 'rejected') assert.ok(isUnavailable(o.reason), `an append failed with ${String(o.reason)}`);
      const acknowledged = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value.message] : []));

      // While it is down: every kind of call rejects UNAVAILABLE, within the connect bound (plus slack), none hangs.
      const calls: [string, () => Promise<unknown>][] = [
        ['ping', () => store.ping()],
        ['getUser', () => store.getUser('u1')],
        ['setBanned', () => store.setBanned('u1', true)],
        ['addMember', () => store.addMember({ conversationId: 'g', userId: 'u1', role: 'member', now: T0, maxMembers: 10 })],
        ['appendMessage', () => store.appendMessage(message('while-down'))],
      ];
      for (const [name, call] of calls) {
        const started = performance.now();
        const result = await within(CONNECT_TIMEOUT_MS + 4000, call(), name);
        assert.equal(result.status, 'rejected', `${name} succeeded with the server stopped`);
        assert.ok(result.status === 'rejected' && isUnavailable(result.reason), `${name}: ${result.status === 'rejected' ? String(result.reason) : ''}`);
        assert.ok(performance.now() - started < CONNECT_TIMEOUT_MS + 4000);
      }

      await server.start();
      // The pool may still hold a connection the stop killed; the first call on it fails UNAVAILABLE and discards it.
      // Wait (bounded) for a ping to commit, then everything works.
      await until(() => store.ping().then(() => true, (err: unknown) => {
        assert.ok(isUnavailable(err), String(err));
        return false;
      }), 'a ping commits after the restart', 10_000, 100);
      assert.equal((await store.getUser('u1'))?.banned, false, 'the ban attempted while down changed nothing');
      const after = await store.appendMessage(message('after'));
      const stored = await store.messagesAfter('g', 0, 1000);
      // Every acknowledged append is there, and seqs stay gap-free through the outage.
      const storedKeys = new Set(stored.map((m) => m.key));
      for (const m of acknowledged) assert.ok(storedKeys.has(m.key), `acknowledged ${m.key} (seq ${m.seq}) is lost`);
      assert.deepEqual(stored.map((m) => m.seq), Array.from({ length: stored.length }, (_, i) => i + 1));
      assert.equal(after.message.seq, stored.length);
      // A retry of an append whose outcome the client never learned is answered, not refused.
      const retried = await Promise.all(outcomes.map((_, i) => store.appendMessage(message(`before-${i}`))));
      assert.equal((await store.getConversation('g'))?.lastSeq, stored.length + retried.filter((r) => !r.duplicate).length);
    } finally {
      await store.close();
    }
  });

  it('rejects UNAVAILABLE within the connect timeout when the server accepts TCP but never answers', async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    const store = createPostgresStore({ url: `postgres://parley@127.0.0.1:${port}/parley`, poolSize: 2, connectTimeoutMs: 300 });
    try {
      const started = performance.now();
      const result = await within(5000, store.ping(), 'ping to a silent server');
      assert.ok(result.status === 'rejected' && isUnavailable(result.reason), result.status === 'rejected' ? String(result.reason) : 'resolved');
      assert.ok(performance.now() - started < 2000, `took ${Math.round(performance.now() - started)} ms`);
    } finally {
      await store.close();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});

describe('postgres pool when a session ends between two queries', () => {
  it('rejects the transaction UNAVAILABLE instead of crashing the process (the checked-out client has a listener)', async () => {
    const url = await server.createDatabase();
    const background: Error[] = [];
    const pool = new Pool({ url, poolSize: 2, connectTimeoutMs: CONNECT_TIMEOUT_MS, onBackgroundError: (e) => background.push(e) });
    try {
      const outcome = await within(10_000, pool.transaction(async (db) => {
        const { rows } = await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        // As a restart or failover does: the server ends this session while the client sits between two queries.
        await pool.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
        await until(() => background.length > 0, 'the client hears that its session ended', 5000, 10);
        await db.query('SELECT 1');
      }), 'the transaction');
      assert.equal(outcome.status, 'rejected');
      assert.ok(isUnavailable((outcome as PromiseRejectedResult).reason), String((outcome as PromiseRejectedResult).reason));
      assert.deepEqual(await pool.query<{ one: number }>('SELECT 1 AS one'), [{ one: 1 }], 'the pool goes on with a fresh connection');
    } finally {
      await pool.close();
    }
  });
});
