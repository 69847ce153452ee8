/**
 * The connection pool (node-postgres) and the two ways the store talks through it: one statement (`query`), or a
 * transaction on one connection (`transaction`), with engine failures mapped to ParleyErrors (errors.ts).
 *
 * What node-postgres does under faults, and what this module does about it:
 * - An idle pooled connection the server drops (restart, failover) is reported as an 'error' event on the pool; with
 *   no listener Node would crash the process (a known trap: brianc/node-postgres#2439 and many reports). We listen and
 *   let the pool discard it; the next checkout opens a fresh connection. A checked-out connection has no pool
 *   listener, so each connection also gets its own (a session ended between two queries of a transaction).
 * - A connection lost mid-query rejects that query; a connection that timed out on the client side may stay stuck
 *   waiting for a reply (brianc/node-postgres#3399), so a connection that failed that way is destroyed
 *   (`release(err)`), never returned to the pool.
 * - Connecting is bounded (`connectTimeoutMs`): with the server away or the pool exhausted a call fails UNAVAILABLE
 *   instead of waiting; TCP keepalive finds half-open connections; `statement_timeout` bounds a query server-side and
 *   `query_timeout` a little later client-side, should the server never answer; `idle_in_transaction_session_timeout`
 *   (twice the statement bound) ends the session of an instance that stopped mid-transaction, releasing its locks.
 */
import pg from 'pg';
import { closedError, isConnectionFailure, isRetryable, toParleyError } from './errors.js';

export interface PoolOptions {
  /** postgres://user:password@host:port/database (libpq URL; `?sslmode=...` and the like are honoured by node-postgres). */
  url: string;
  /** Connections at most. @default 10 */
  poolSize?: number;
  /** How long a call waits for a connection (opening one, or a free one) before failing UNAVAILABLE, ms. @default 5000 */
  connectTimeoutMs?: number;
  /** Server-side bound of one statement, ms. @default 30000 */
  statementTimeoutMs?: number;
  /** Logs what the pool reports outside any call (an idle connection dropped). */
  onBackgroundError?: (error: Error) => void;
}

/** bigint (int8, OID 20) columns as numbers: every one holds a time in ms, a seq or a count, far below 2^53. */
const INT8_OID = 20;
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

/** The part of a connection a transaction body uses. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
  /** A named statement: parsed and planned once per connection, then only bound and run (the hot paths). */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(config: { name: string; text: string; values: unknown[] }): Promise<pg.QueryResult<R>>;
}

/** Attempts of a transaction that hit a deadlock or serialization failure (the other transaction has ended by then). */
const MAX_ATTEMPTS = 3;

export class Pool {
  private readonly pool: pg.Pool;
  private closed = false;

  constructor(options: PoolOptions) {
    const statementTimeoutMs = options.statementTimeoutMs ?? 30_000;
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      statement_timeout: statementTimeoutMs,
      // An instance that stops mid-transaction (frozen, partitioned) must not hold its row locks, which block every
      // other instance's appends to those conversations, for longer than this: the server ends its session.
      idle_in_transaction_session_timeout: statementTimeoutMs * 2,
      // Past the server's own bound: only a server that stopped answering reaches it.
      query_timeout: statementTimeoutMs + 5000,
      application_name: 'parley',
      types,
    });
    this.pool.on('error', (error) => options.onBackgroundError?.(error));
    // The pool's own listener covers idle connections only: pg-pool removes it while a connection is checked out, and a
    // server that ends the session between two queries of a transaction (a restart, a failover) then emits 'error' on
    // that client with no listener, which crashes the process. Every connection gets one of its own for its life;
    // the query in progress or the next one rejects, and the broken connection is destroyed on release.
    this.pool.on('connect', (client) => client.on('error', (error) => options.onBackgroundError?.(error)));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** One statement on any pooled connection (autocommit). */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
    if (this.closed) throw closedError();
    try {
      return (await this.pool.query<R>(sql, params)).rows;
    } catch (err) {
      throw toParleyError(err);
    }
  }

  /**
   * Run `work` in one transaction (READ COMMITTED) on one connection: committed when it resolves, rolled back when it
   * throws (its error rethrown, mapped). Deadlocks and serialization failures run it again, up to 3 times in all, so
   * `work` must only write through the transaction. A COMMIT whose connection fails leaves the outcome unknown: that
   * rejects UNAVAILABLE like any engine failure (appends are idempotent by key, so a client's retry is safe).
   */
  async transaction<T>(work: (db: Queryable) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw closedError();
      const client = await this.connect();
      let broken: Error | undefined;
      try {
        await client.query('BEGIN');
        const result = await work(client);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        broken = await rollback(client, err);
        if (isRetryable(err) && attempt < MAX_ATTEMPTS) continue;
        throw toParleyError(err);
      } finally {
        client.release(broken);
      }
    }
  }

  /** A connection for a caller that manages its own statements; release it with `release(brokenError?)`. */
  async connect(): Promise<pg.PoolClient> {
    if (this.closed) throw closedError();
    try {
      return await this.pool.connect();
    } catch (err) {
      throw toParleyError(err);
    }
  }

  /** Waits for checked-out connections to be released, then closes every connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}

/**
 * Roll back after `err`; returns an error when the connection must be destroyed rather than reused (it failed, or the
 * rollback did).
 */
export async function rollback(client: pg.PoolClient, err: unknown): Promise<Error | undefined> {
  if (isConnectionFailure(err)) return err instanceof Error ? err : new Error(String(err));
  try {
    await client.query('ROLLBACK');
    return undefined;
  } catch (rollbackError) {
    return rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
  }
}
