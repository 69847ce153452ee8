/**
 * The SQLite store on threads of its own. better-sqlite3 is synchronous: on the main thread every commit (WAL page
 * writes, fsync) stops the event loop that also parses frames and fans out events. Here a worker thread owns the
 * writer's connection and the main thread only posts calls, batched per event-loop turn, and settles promises when
 * results come back — the two cores of a small machine then share the work.
 *
 * Reads whose cost a client chooses (group search: some queries scan a long posting list) run on a second thread, on a
 * read-only connection: in WAL mode a reader never blocks the writer nor waits for it, so an expensive search cannot
 * delay anyone's send. The reader sees every commit acknowledged before the search was posted (each statement reads
 * the newest committed snapshot). A private in-memory database has no second connection; there searches share the
 * writer's thread.
 *
 * The guarantees are the Store seam's, unchanged: the workers run the same SqliteStore, and a write's result is posted
 * only after its transaction committed.
 */
import type { Store } from '../store.js';
import { canOpenReader } from './open.js';
import type { SqliteStoreOptions } from './sqlite-store.js';
import { StoreWorker } from './store-worker.js';

// Every Store method, listed once, with the thread that serves it; `satisfies` makes the compiler reject a method
// missing here.
const methods = {
  migrate: 'writer', ping: 'writer', storeId: 'writer', claimInstance: 'writer', close: 'writer', createUser: 'writer', ensureUser: 'writer', getUser: 'writer',
  getUserByName: 'writer', listUsers: 'writer', setBanned: 'writer', setLastSeen: 'writer', setLastSeenMany: 'writer', createGroup: 'writer',
  openDirect: 'writer', getConversation: 'writer', getMyConversation: 'writer', listMyConversations: 'writer',
  listConversationIds: 'writer', listPositions: 'writer', countMemberships: 'writer', searchPublic: 'reader', listConversations: 'writer',
  renameConversation: 'writer', deleteConversation: 'writer', deleteConversationWithMembers: 'writer', getMember: 'writer', getMembership: 'writer', listPresenceConversations: 'writer',
  listMembers: 'writer', listMemberIds: 'writer', addMember: 'writer', removeMember: 'writer', setRole: 'writer',
  listContacts: 'writer', createInvite: 'writer', getInvite: 'writer', listInvites: 'writer', revokeInvite: 'writer',
  redeemInvite: 'writer', appendMessage: 'writer', getMessage: 'writer', editMessage: 'writer', deleteMessage: 'writer',
  messagesAfter: 'writer', messagesAfterMany: 'writer', messagesBefore: 'writer', messagesBeforeTime: 'writer', markRead: 'writer',
  upsertProductUser: 'writer', bumpTokenGeneration: 'writer', revokeSession: 'writer', isSessionRevoked: 'writer',
  banMember: 'writer', unbanMember: 'writer', listBans: 'writer', changesSince: 'writer',
} as const satisfies Record<keyof Store, 'writer' | 'reader'>;

export function createThreadedSqliteStore(options: SqliteStoreOptions): Store {
  const writer = new StoreWorker(options, 'store thread');
  let migrated = false;
  let reader: StoreWorker | null = null;
  let closed = false;

  // Started on the first search after migrate() (the reader opens an existing, migrated file); a reader that failed
  // is replaced on the next call.
  const readerFor = (): StoreWorker => {
    if (!migrated || closed || !canOpenReader(options.path)) return writer;
    if (!reader || reader.failure) reader = new StoreWorker({ ...options, readOnly: true }, 'store reader thread');
    return reader;
  };

  const store = Object.fromEntries(
    (Object.keys(methods) as Array<keyof Store>).map((method) => [
      method,
      methods[method] === 'reader'
        ? (...args: unknown[]) => readerFor().call(method, args)
        : (...args: unknown[]) => writer.call(method, args),
    ]),
  ) as unknown as Store;
  store.migrate = async () => {
    await writer.call('migrate', []);
    migrated = true;
  };
  store.close = async () => {
    if (closed) return;
    closed = true;
    const closing = reader;
    reader = null;
    if (closing && !closing.failure) await closing.call('close', []).catch(() => undefined);
    await closing?.terminate();
    if (writer.failure) return;
    await writer.call('close', []);
    await writer.terminate();
  };
  return store;
}
