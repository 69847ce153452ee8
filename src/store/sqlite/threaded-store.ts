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
 * One read runs on the main thread: `listPositions` for a user in at most INLINE_POSITIONS_MAX conversations, on a
 * third, read-only connection. It is on every connection's path to `welcome`, read after the conversation
 * subscriptions, and for a short list the read (tens of microseconds) costs less than the thread hop it would wait for
 * (about 0.1 ms on an idle machine, more behind a group commit). A longer list, a private in-memory database, or a
 * read the connection cannot do at once (SQLITE_BUSY: it never waits) goes to the writer's thread. The snapshot is the
 * same: a statement reads the newest commit, and every change already published was committed before its publish.
 *
 * The guarantees are the Store seam's, unchanged: the workers run the same SqliteStore, and a write's result is posted
 * only after its transaction committed.
 */
import type { Store } from '../store.js';
import { canOpenReader } from './open.js';
import { SqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
import { StoreWorker } from './store-worker.js';

/**
 * The most conversations whose positions are read on the main thread. The read joins and sorts the user's memberships
 * (measured: ~10 µs for 1, ~45 µs for 32, ~85 µs for 64 on the development machine), and a thread hop costs ~0.1 ms
 * when both threads are idle: past a few dozen rows the main thread would spend more than the wait it saves.
 */
export const INLINE_POSITIONS_MAX = 32;

// Every Store method, listed once, with the thread that serves it; `satisfies` makes the compiler reject a method
// missing here.
const methods = {
  migrate: 'writer', ping: 'writer', storeId: 'writer', claimInstance: 'writer', close: 'writer', createUser: 'writer', ensureUser: 'writer', getUser: 'writer',
  getUserByName: 'writer', listUsers: 'writer', setBanned: 'writer', setLastSeen: 'writer', setLastSeenMany: 'writer', createGroup: 'writer',
  openDirect: 'writer', getConversation: 'writer', getMyConversation: 'writer', listMyConversations: 'writer',
  listConversationIds: 'writer', /* short lists on the main thread: see below */ listPositions: 'writer', countMemberships: 'writer', searchPublic: 'reader', listConversations: 'writer',
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
  let inline: SqliteStore | null | undefined;
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
  // Opened on first use after migrate(); one that cannot open is not tried again (the thread serves every read).
  const inlineReader = (): SqliteStore | null => {
    if (!migrated || closed || !canOpenReader(options.path)) return null;
    if (inline === undefined) {
      try {
        inline = new SqliteStore({ ...options, readOnly: true, busyTimeoutMs: 0 });
      } catch {
        inline = null;
      }
    }
    return inline;
  };
  store.listPositions = async (userId) => {
    const local = inlineReader();
    if (local) {
      try {
        if ((await local.countMemberships(userId)) <= INLINE_POSITIONS_MAX) return await local.listPositions(userId);
      } catch {
        // Busy (a checkpoint resetting the WAL) or failed: the writer's thread reads it.
      }
    }
    return (await writer.call('listPositions', [userId])) as Awaited<ReturnType<Store['listPositions']>>;
  };
  store.migrate = async () => {
    await writer.call('migrate', []);
    migrated = true;
  };
  store.close = async () => {
    if (closed) return;
    closed = true;
    const closing = reader;
    reader = null;
    await inline?.close().catch(() => undefined);
    inline = null;
    if (closing && !closing.failure) await closing.call('close', []).catch(() => undefined);
    await closing?.terminate();
    if (writer.failure) return;
    await writer.call('close', []);
    await writer.terminate();
  };
  return store;
}
