/**
 * The SQLite store on its own thread. better-sqlite3 is synchronous: on the main thread every commit (WAL page
 * writes, fsync) stops the event loop that also parses frames and fans out events. Here a worker thread owns the
 * connection and the main thread only posts calls, batched per event-loop turn, and settles promises when results
 * come back — the two cores of a small machine then share the work. The guarantees are the Store seam's, unchanged:
 * the worker runs the same SqliteStore, and a result is posted only after its transaction committed.
 */
import { Worker } from 'node:worker_threads';
import { ParleyError } from '../../protocol/errors.js';
import type { Store } from '../store.js';
import type { SqliteStoreOptions } from './sqlite-store.js';
import type { Call, Result, WireError } from './thread-protocol.js';

// Every Store method, listed once; `satisfies` makes the compiler reject a method missing here.
const methods = {
  migrate: 1, ping: 1, close: 1, createUser: 1, ensureUser: 1, getUser: 1, getUserByName: 1, listUsers: 1, setBanned: 1,
  setLastSeen: 1, createGroup: 1, openDirect: 1, getConversation: 1, getMyConversation: 1, listMyConversations: 1,
  listConversationIds: 1, countMemberships: 1, searchPublic: 1, listConversations: 1, renameConversation: 1,
  deleteConversation: 1, deleteConversationWithMembers: 1, getMember: 1, listMembers: 1, listMemberIds: 1, addMember: 1, removeMember: 1, setRole: 1,
  listContacts: 1, createInvite: 1, getInvite: 1, listInvites: 1, revokeInvite: 1, redeemInvite: 1, appendMessage: 1,
  getMessage: 1, editMessage: 1, deleteMessage: 1, messagesAfter: 1, messagesBefore: 1, messagesBeforeTime: 1, markRead: 1,
  upsertProductUser: 1, bumpTokenGeneration: 1, revokeSession: 1, isSessionRevoked: 1, banMember: 1, unbanMember: 1, listBans: 1, changesSince: 1,
} as const satisfies Record<keyof Store, 1>;

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export function createThreadedSqliteStore(options: SqliteStoreOptions): Store {
  const worker = startWorker(options);
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let outbox: Call[] = [];
  let flushScheduled = false;
  let failure: Error | null = null;

  const failAll = (error: Error): void => {
    failure = error;
    for (const { reject } of pending.values()) reject(new ParleyError('UNAVAILABLE', `store thread failed: ${error.message}`));
    pending.clear();
  };
  worker.on('message', (results: Result[]) => {
    for (const result of results) {
      const waiting = pending.get(result[0]);
      if (!waiting) continue;
      pending.delete(result[0]);
      if (result[1]) waiting.resolve(result[2]);
      else waiting.reject(fromWire(result[2]));
    }
    // An idle worker must not keep the process alive; a busy one must.
    if (pending.size === 0) worker.unref();
  });
  worker.on('error', failAll);
  worker.on('exit', (code) => failAll(new Error(`exited with code ${code}`)));
  worker.unref();

  const flush = (): void => {
    flushScheduled = false;
    const calls = outbox;
    outbox = [];
    worker.postMessage(calls);
  };
  const call = (method: keyof Store, args: unknown[]): Promise<unknown> => {
    if (failure) return Promise.reject(new ParleyError('UNAVAILABLE', `store thread failed: ${failure.message}`));
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      worker.ref();
      outbox.push([id, method, args]);
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flush);
      }
    });
  };

  const store = Object.fromEntries(
    (Object.keys(methods) as Array<keyof Store>).map((method) => [method, (...args: unknown[]) => call(method, args)]),
  ) as unknown as Store;
  const close = store.close;
  store.close = async () => {
    if (failure) return;
    await close();
    await worker.terminate();
  };
  return store;
}

function startWorker(options: SqliteStoreOptions): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./store-thread.js', import.meta.url), { workerData: options });
  // Run from TypeScript sources (tests under tsx): a worker does not inherit the loader, so it registers tsx first.
  const entry = new URL('./store-thread.ts', import.meta.url).href;
  const bootstrap = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(bootstrap, { eval: true, workerData: options });
}

function fromWire(error: WireError): Error {
  if (error.parley && error.code) return new ParleyError(error.code, error.message, error.details);
  const rebuilt = new Error(error.message);
  if (typeof error.details === 'string') rebuilt.stack = error.details;
  return rebuilt;
}
