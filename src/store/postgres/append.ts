/**
 * The append batch: the appends of one group commit in one transaction and one round trip, each with its own outcome.
 *
 * The work is the SQL function parley_append_batch (migrations/001_init.sql), which, in this order: locks the counter
 * rows (conversations) of every conversation in the batch, in id order; then per message checks membership, the
 * idempotency key (a repeat returns the original, `duplicate`) and bans (migrations/002), and only if all pass increments the counter,
 * inserts the message and moves the sender's read cursor. Taking the counter's lock FIRST means every other append to
 * the conversation has committed or not started by the time the checks run: two retries of one key on two instances
 * give one original and one duplicate, never a unique violation. Id order keeps two instances' batches from
 * deadlocking.
 *
 * Expected refusals are outcomes of the function, not errors, so the common path needs no savepoint. An item that
 * still fails (a caller breaking the types) aborts the call: the batch is then run again with each item in a
 * savepoint of its own, so only that item is refused and the seqs stay gap-free.
 */
import { ParleyError } from '../../protocol/errors.js';
import type { StoredMessage as Message } from '../../protocol/types.js';
import type { NewMessage } from '../store.js';
import { isConnectionFailure, isRetryable } from './errors.js';
import type { Outcome } from './group-commit.js';
import type { Pool, Queryable } from './pool.js';

/** A NewMessage with its meta already serialised, so serialisation errors reject before queueing. */
export interface QueuedAppend extends NewMessage {
  metaText: string | null;
}

export type AppendResult = { message: Message; duplicate: boolean };

type AppendRow = {
  o_outcome: 'appended' | 'duplicate' | 'not_member' | 'banned' | 'no_conversation';
  o_seq: number | null;
  o_created_at: number | null;
  o_id: string | null;
  o_text: string | null;
  o_meta: string | null;
  o_edited_at: number | null;
  o_deleted: boolean | null;
};

const appendSql = 'SELECT * FROM parley_append_batch($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[])';

async function appendAll(db: Queryable, items: QueuedAppend[]): Promise<Outcome<AppendResult>[]> {
  const { rows } = await db.query<AppendRow>({
    // Named: parsed and planned once per connection.
    name: 'parley_append_batch',
    text: appendSql,
    values: [
      items.map((m) => m.conversationId), items.map((m) => m.senderId), items.map((m) => m.key), items.map((m) => m.id),
      items.map((m) => m.text), items.map((m) => m.metaText), items.map((m) => m.now),
    ],
  });
  if (rows.length !== items.length) throw new Error(`parley_append_batch answered ${rows.length} rows for ${items.length} items`);
  return rows.map((row, i) => outcomeOf(items[i], row));
}

function outcomeOf(m: QueuedAppend, row: AppendRow): Outcome<AppendResult> {
  switch (row.o_outcome) {
    case 'appended':
      return { ok: true, value: { message: newMessage(m, row.o_seq!, row.o_created_at!), duplicate: false } };
    case 'duplicate':
      return {
        ok: true,
        value: {
          message: {
            id: row.o_id!, conversationId: m.conversationId, seq: row.o_seq!, senderId: m.senderId, text: row.o_text!,
            meta: row.o_meta === null ? null : JSON.parse(row.o_meta), key: m.key, createdAt: row.o_created_at!,
            editedAt: row.o_edited_at, deleted: row.o_deleted!,
          },
          duplicate: true,
        },
      };
    case 'not_member': return { ok: false, error: new ParleyError('NOT_MEMBER') };
    case 'banned': return { ok: false, error: new ParleyError('BANNED') };
    case 'no_conversation': return { ok: false, error: new ParleyError('NOT_FOUND', 'No such conversation') };
  }
}

/** An item failed with an error that aborted the transaction: the batch must be redone item by item. */
class AbortedTransaction extends Error {
  constructor(readonly original: unknown) {
    super('an append aborted its transaction');
  }
}

export function createAppendBatch(pool: Pool): (items: QueuedAppend[]) => Promise<Outcome<AppendResult>[]> {
  const fast = (items: QueuedAppend[]) => pool.transaction(async (db) => {
    try {
      return await appendAll(db, items);
    } catch (error) {
      // Engine failures fail the batch (a deadlock runs it again); anything else is an item's own fault.
      throw isConnectionFailure(error) || isRetryable(error) ? error : new AbortedTransaction(error);
    }
  });

  const safe = (items: QueuedAppend[]) => pool.transaction(async (db) => {
    const outcomes: Outcome<AppendResult>[] = [];
    for (const item of items) {
      await db.query('SAVEPOINT item');
      try {
        outcomes.push(...await appendAll(db, [item]));
        await db.query('RELEASE SAVEPOINT item');
      } catch (error) {
        if (isConnectionFailure(error) || isRetryable(error)) throw error;
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
