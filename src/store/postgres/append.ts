/**
 * The append batch: the appends of one group commit in one transaction, each with its own outcome.
 *
 * Order of work, and why:
 * 1. Lock the counter rows (conversations) of every conversation in the batch, in id order. Taking the counter's lock
 *    FIRST means that once we hold it, every other append to the conversation has committed or not started: the
 *    checks below see its message. Id order keeps two instances' batches from deadlocking.
 * 2. Per item, one statement (a fresh snapshot, taken after the lock): the idempotency key (a repeat returns the
 *    original, `duplicate`), then membership and bans, and only if all pass, increment the counter, insert the message
 *    and move the sender's read cursor. Two retries of one key on two instances thus give one original and one
 *    duplicate, never a unique violation.
 * Expected refusals are found by that statement without an error, so the common path needs no savepoint. An item that
 * still fails (a caller breaking the types) aborts the transaction: the batch is rolled back and run again with a
 * savepoint per item, so only that item is refused and the seqs stay gap-free.
 */
import { ParleyError } from '../../protocol/errors.js';
import type { StoredMessage as Message } from '../../protocol/types.js';
import type { NewMessage } from '../store.js';
import type { Outcome } from './group-commit.js';
import { isConnectionFailure, isRetryable } from './errors.js';
import type { Pool, Queryable } from './pool.js';
import { type MessageRow, messageColumns, toMessage } from './rows.js';

/** A NewMessage with its meta already serialised, so serialisation errors reject before queueing. */
export interface QueuedAppend extends NewMessage {
  metaText: string | null;
}

export type AppendResult = { message: Message; duplicate: boolean };

// $1 conversation, $2 sender, $3 key, $4 id, $5 text, $6 meta, $7 now.
// created_at is max(now, the conversation's last createdAt): it never decreases along seq (history by time relies on it).
const appendSql = `
  WITH dup AS (
    SELECT ${messageColumns} FROM messages WHERE conversation_id = $1 AND sender_id = $2 AND client_key = $3
  ), checks AS (
    SELECT NOT EXISTS (SELECT 1 FROM dup) AS fresh,
      EXISTS (SELECT 1 FROM members WHERE conversation_id = $1 AND user_id = $2) AS member,
      coalesce((SELECT banned FROM users WHERE id = $2), false) AS banned
  ), counter AS (
    UPDATE conversations SET last_seq = last_seq + 1, last_message_at = greatest(coalesce(last_message_at, 0), $7::bigint)
    WHERE id = $1 AND (SELECT fresh AND member AND NOT banned FROM checks)
    RETURNING last_seq, last_message_at
  ), inserted AS (
    INSERT INTO messages (conversation_id, seq, id, sender_id, client_key, text, meta, created_at)
    SELECT $1, last_seq, $4, $2, $3, $5, $6, last_message_at FROM counter
    RETURNING seq
  ), cursor AS (
    -- Whoever sends has read the conversation up to their message: no own message is ever unread.
    UPDATE members SET read_seq = inserted.seq FROM inserted
    WHERE conversation_id = $1 AND user_id = $2 AND read_seq < inserted.seq
  )
  SELECT checks.member, checks.banned, counter.last_seq AS seq, counter.last_message_at AS created_at,
    ${messageColumns.split(', ').map((c) => `dup.${c} AS dup_${c}`).join(', ')}
  FROM checks LEFT JOIN counter ON true LEFT JOIN dup ON true`;

type AppendRow = { member: boolean; banned: boolean; seq: number | null; created_at: number | null } & {
  [K in keyof MessageRow as `dup_${K}`]: MessageRow[K] | null;
};

async function appendOne(db: Queryable, m: QueuedAppend): Promise<AppendResult> {
  const { rows } = await db.query<AppendRow>(appendSql, [m.conversationId, m.senderId, m.key, m.id, m.text, m.metaText, m.now]);
  const row = rows[0];
  if (row.dup_seq !== null) {
    const original = Object.fromEntries(messageColumns.split(', ').map((c) => [c, row[`dup_${c}` as keyof AppendRow]])) as unknown as MessageRow;
    return { message: toMessage(original), duplicate: true };
  }
  if (!row.member) throw new ParleyError('NOT_MEMBER');
  if (row.banned) throw new ParleyError('BANNED');
  if (row.seq === null || row.created_at === null) throw new ParleyError('NOT_FOUND', 'No such conversation');
  return { message: newMessage(m, row.seq, row.created_at), duplicate: false };
}

/** Lock the counters of the batch's conversations, in id order (see the top of this file). */
async function lockCounters(db: Queryable, items: QueuedAppend[]): Promise<void> {
  const ids = [...new Set(items.map((m) => m.conversationId))].sort();
  await db.query('SELECT 1 FROM conversations WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE', [ids]);
}

/** An item failed with an error that aborted the transaction: the batch must be redone with savepoints. */
class AbortedTransaction extends Error {
  constructor(readonly original: unknown) {
    super('an append aborted its transaction');
  }
}

export function createAppendBatch(pool: Pool): (items: QueuedAppend[]) => Promise<Outcome<AppendResult>[]> {
  const fast = (items: QueuedAppend[]) => pool.transaction(async (db) => {
    await lockCounters(db, items);
    const outcomes: Outcome<AppendResult>[] = [];
    for (const item of items) {
      try {
        outcomes.push({ ok: true, value: await appendOne(db, item) });
      } catch (error) {
        if (error instanceof ParleyError) outcomes.push({ ok: false, error });
        // Engine failures fail the batch (a deadlock runs it again); anything else is this item's own fault.
        else throw isConnectionFailure(error) || isRetryable(error) ? error : new AbortedTransaction(error);
      }
    }
    return outcomes;
  });

  const safe = (items: QueuedAppend[]) => pool.transaction(async (db) => {
    await lockCounters(db, items);
    const outcomes: Outcome<AppendResult>[] = [];
    for (const item of items) {
      await db.query('SAVEPOINT item');
      try {
        outcomes.push({ ok: true, value: await appendOne(db, item) });
        await db.query('RELEASE SAVEPOINT item');
      } catch (error) {
        if (isConnectionFailure(error)) throw error;
        await db.query('ROLLBACK TO SAVEPOINT item');
        outcomes.push({ ok: false, error });
      }
    }
    return outcomes;
  });

  return async (items) => {
    try {
      return await fast(items);
    } catch (error) {
      if (!(error instanceof AbortedTransaction)) throw error;
    }
    return safe(items);
  };
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
