/**
 * The worker thread side of the threaded SQLite store (store-worker.ts): it owns one database connection (the
 * writer's, or a read-only one when `readOnly` is set) and runs the calls the main thread sends. Calls arriving in one message are started together, so appends among them share
 * one group commit; their results go back in one message.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isParleyError } from '../../protocol/errors.js';
import type { Store } from '../store.js';
import { SqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
import type { Call, Result, WireError } from './thread-protocol.js';

/** What the thread is started with: the store's options (`readOnly` for a reader). */
export type StoreThreadOptions = SqliteStoreOptions;

const store = new SqliteStore(workerData as StoreThreadOptions);
const port = parentPort!;
let outbox: Result[] = [];
let flushScheduled = false;

function flush(): void {
  flushScheduled = false;
  const results = outbox;
  outbox = [];
  port.postMessage(results);
}

function settle(result: Result): void {
  outbox.push(result);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
}

function toWire(err: unknown): WireError {
  if (isParleyError(err)) return { parley: true, code: err.code, message: err.message, details: err.details, retryAfterMs: err.retryAfterMs };
  const error = err as Error;
  return { parley: false, code: null, message: error?.message ?? String(err), details: error?.stack };
}

port.on('message', (calls: Call[]) => {
  for (const [id, method, args] of calls) {
    const run = store[method] as (...a: unknown[]) => Promise<unknown>;
    run.apply(store, args).then(
      (value) => settle([id, true, value]),
      (err: unknown) => settle([id, false, toWire(err)]),
    );
  }
});

export type { Store };
