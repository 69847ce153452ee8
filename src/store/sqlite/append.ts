/**
 * The append batch: a queue of appends run in one immediate transaction, each item inside its own savepoint so one
 * failing item is rolled back and rejected alone while the rest commit.
 */
import type Database from 'better-sqlite3';
import { ParleyError } from '../../protocol/errors.js';
import type { Message } from '../../protocol/types.js';
import type { NewMessage } from '../store.js';
import type { Outcome } from './group-commit.js';
import { toMessage } from './rows.js';
import type { Statements } from './statements.js';

/** A NewMessage with its meta already serialised, so serialisation errors reject before queueing. */
export interface QueuedAppend extends NewMessage {
  metaText: string | null;
}

export type AppendResult = { message: Message; duplicate: boolean };

export function createAppendBatch(db: Database.Database, s: Statements): (items: QueuedAppend[]) => Outcome<AppendResult>[] {
  // A transaction function called inside another transaction runs as a savepoint.
  const appendOne = db.transaction((m: QueuedAppend): AppendResult => {
    const existing = s.messageByKey.get(m.conversationId, m.senderId, m.key);
    if (existing) return { message: toMessage(existing), duplicate: true };
    const counter = s.nextSeq.get(m.now, m.conversationId);
    if (!counter) throw new ParleyError('NOT_FOUND', 'No such conversation');
    s.insertMessage.run(m.conversationId, counter.last_seq, m.id, m.senderId, m.key, m.text, m.metaText, m.now);
    return { message: newMessage(m, counter.last_seq), duplicate: false };
  });

  const batch = db.transaction((items: QueuedAppend[]) => items.map((item): Outcome<AppendResult> => {
    try {
      return { ok: true, value: appendOne(item) };
    } catch (error) {
      // Some failures (I/O, full disk) make SQLite roll back the whole transaction: then nothing in it committed.
      if (!db.inTransaction) throw error;
      return { ok: false, error };
    }
  }));

  return (items) => batch.immediate(items);
}

function newMessage(m: QueuedAppend, seq: number): Message {
  return {
    id: m.id,
    conversationId: m.conversationId,
    seq,
    senderId: m.senderId,
    text: m.text,
    // Parsed back from the stored text so the caller sees exactly what later reads return.
    meta: m.metaText === null ? null : JSON.parse(m.metaText),
    key: m.key,
    createdAt: m.now,
    editedAt: null,
    deleted: false,
  };
}
