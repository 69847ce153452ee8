import type { Change, Message, StoredChange, StoredMessage } from '../protocol/types.js';

/**
 * A stored message as the protocol sends it (docs/protocol.md, "Messages"): fields at their default are left out
 * (`meta` when null, `editedAt` until edited, `deleted` unless true), and the sender's idempotency key only goes back
 * to its sender (`viewer`), never to others and never in live events (viewer null). The fields are written in one
 * fixed order, so every message object has the same shape.
 */
export function toWire(m: StoredMessage, viewer: string | null): Message {
  const out: Message = { id: m.id, conversationId: m.conversationId, seq: m.seq, senderId: m.senderId, text: m.text, createdAt: m.createdAt };
  if (m.meta !== null && m.meta !== undefined) out.meta = m.meta;
  if (viewer !== null && viewer === m.senderId) out.key = m.key;
  if (m.editedAt !== null) out.editedAt = m.editedAt;
  if (m.deleted) out.deleted = true;
  return out;
}

/** Many messages for one viewer (history and sync pages). */
export function toWireAll(messages: readonly StoredMessage[], viewer: string): Message[] {
  return messages.map((m) => toWire(m, viewer));
}

/** A stored change for one viewer: its message, if any, in wire form. */
export function changeToWire(change: StoredChange, viewer: string): Change {
  return change.kind === 'message' ? { rev: change.rev, kind: 'message', message: toWire(change.message, viewer) } : change;
}
