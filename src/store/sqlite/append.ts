/**
 * The append batch: queued appends run in one immediate transaction, and each item gets its own outcome: one failing
 * item is rejected alone while the rest commit.
 */
import type Database from 'better-sqlite3';
import { ParleyError } from '../../protocol/errors.js';
import type { StoredMessage as Message } from '../../protocol/types.js';
import type { NewMessage } from '../store.js';
import type { Outcome } from './group-commit.js';
import { toMessage } from './rows.js';
import type { Statements } from './statements.js';

/** A NewMessage with its meta already serialised, so serialisation errors reject before queueing. */
export interface QueuedAppend extends NewMessage {
  metaText: string | null;
}

export type AppendResult = { message: Message; duplicate: boolean };

/** An item failed after its seq was taken: undoing it needs a savepoint. */
class FailedAfterWrite extends Error {
  constructor(readonly original: unknown) {
    super('append failed after allocating its seq');
  }
}

type Batch = (items: QueuedAppend[]) => Outcome<AppendResult>[];

export function createAppendBatch(db: Database.Database, s: Statements): Batch {
  // Expected refusals (non-member sender, unknown conversation, duplicate, banned sender) are found before anything is written, so the common path needs
  // no savepoint per item (each costs a sub-journal copy of every page the item touches). An insert that still fails
  // (a caller breaking the types) takes the slow path below.
  const appendChecked = (m: QueuedAppend): AppendResult => {
    const checks = s.appendChecks.get({ conversationId: m.conversationId, senderId: m.senderId, key: m.key })!;
    // Checked inside the transaction, so a sender removed or banned a moment ago cannot slip a message in. Membership
    // comes before the key: a removed member's retry is NOT_MEMBER too, never a republish of their old message to the
    // group. An account ban comes after it (a retry of a message stored before the ban is still its duplicate).
    if (!checks.member) throw new ParleyError('NOT_MEMBER');
    if (checks.duplicate_seq !== null) return { message: toMessage(s.message.get(m.conversationId, checks.duplicate_seq)!), duplicate: true };
    if (checks.banned === 1) throw new ParleyError('BANNED');
    const counter = s.nextSeq.get(m.now, m.conversationId);
    if (!counter) throw new ParleyError('NOT_FOUND', 'No such conversation');
    try {
      s.insertMessage.run(m.conversationId, counter.last_seq, m.id, m.senderId, m.key, m.text, m.metaText, counter.last_message_at);
      // Whoever sends has read the conversation up to their message: no own message is ever unread.
      s.advanceOwnCursor.run(counter.last_seq, m.conversationId, m.senderId, counter.last_seq);
    } catch (error) {
      throw new FailedAfterWrite(error);
    }
    return { message: newMessage(m, counter.last_seq, counter.last_message_at), duplicate: false };
  };
  // A transaction function called inside another transaction runs as a savepoint.
  const appendInSavepoint = db.transaction(appendChecked);

  const fast = batchOf(db, appendChecked, false);
  const safe = batchOf(db, appendInSavepoint, true);
  return (items) => {
    try {
      return fast.immediate(items);
    } catch (error) {
      if (!(error instanceof FailedAfterWrite)) throw error;
    }
    // The fast pass was rolled back whole; redo it with a savepoint per item so only the failing one is undone.
    return safe.immediate(items);
  };
}

function batchOf(db: Database.Database, append: (m: QueuedAppend) => AppendResult, undoable: boolean) {
  return db.transaction((items: QueuedAppend[]) => items.map((item): Outcome<AppendResult> => {
    try {
      return { ok: true, value: append(item) };
    } catch (error) {
      // Some failures (I/O, full disk) make SQLite roll back the whole transaction: then nothing in it committed.
      if (!db.inTransaction) throw error;
      if (!(error instanceof FailedAfterWrite)) return { ok: false, error };
      if (!undoable) throw error;
      return { ok: false, error: error.original };
    }
  }));
}

function newMessage(m: QueuedAppend, seq: number, createdAt: number): Message {
  return {
    id: m.id,
    conversationId: m.conversationId,
    seq,
    senderId: m.senderId,
    text: m.text,
    // Parsed back from the stored text so the caller sees exactly what later reads return.
    meta: m.metaText === null ? null : JSON.parse(m.metaText),
    key: m.key,
    createdAt,
    editedAt: null,
    deleted: false,
  };
}
