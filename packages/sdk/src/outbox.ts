import type { Message, SendReceipt } from '@parley/protocol';
import { ParleyClientError } from './errors.js';

/** What a queued send carries: the `message.send` request data, with its idempotency key fixed once. */
export interface SendData {
  conversationId?: string;
  to?: string;
  key: string;
  text: string;
  meta?: unknown;
}

export type OutboxState = 'queued' | 'sending' | 'waiting';

export interface OutboxEntry {
  readonly data: SendData;
  state: OutboxState;
  /** How many times it was transmitted. */
  attempts: number;
  /** Timer of a scheduled retry while `waiting`. */
  retryTimer?: ReturnType<typeof setTimeout>;
  readonly resolve: (message: Message) => void;
  readonly reject: (err: ParleyClientError) => void;
}

/** A read-only view of an unacknowledged send, for UIs ("sending…" bubbles) and debugging. */
export interface PendingSend {
  key: string;
  conversationId?: string;
  to?: string;
  text: string;
  meta?: unknown;
  state: OutboxState;
  attempts: number;
}

/**
 * Unacknowledged sends, in the order they were made. Bounded: `add` throws OUTBOX_FULL beyond `limit` entries
 * (queued, in flight or waiting to retry all count). An entry leaves only when its send is acknowledged or fails for
 * good; the key never changes, so every retry is deduplicated by the server.
 */
export class Outbox {
  private readonly entries: OutboxEntry[] = [];
  constructor(readonly limit: number = 1000) {
    if (!(limit >= 1)) throw new RangeError('outbox limit must be >= 1');
  }

  get size(): number {
    return this.entries.length;
  }

  add(data: SendData): { entry: OutboxEntry; promise: Promise<Message> } {
    if (this.entries.length >= this.limit) {
      throw new ParleyClientError('OUTBOX_FULL', `The outbox holds ${this.limit} unacknowledged sends`);
    }
    let entry!: OutboxEntry;
    const promise = new Promise<Message>((resolve, reject) => {
      entry = { data, state: 'queued', attempts: 0, resolve, reject };
    });
    this.entries.push(entry);
    return { entry, promise };
  }

  has(entry: OutboxEntry): boolean {
    return this.entries.includes(entry);
  }

  /** Entries ready to transmit, oldest first. */
  queued(): OutboxEntry[] {
    return this.entries.filter((e) => e.state === 'queued');
  }

  /** Takes an entry out (acknowledged or failed for good). */
  remove(entry: OutboxEntry): void {
    const i = this.entries.indexOf(entry);
    if (i >= 0) this.entries.splice(i, 1);
    if (entry.retryTimer !== undefined) clearTimeout(entry.retryTimer);
    entry.retryTimer = undefined;
  }

  /** Puts every in-flight or waiting entry back to `queued` (the connection went; the next one sends them again). */
  requeueAll(): void {
    for (const e of this.entries) {
      if (e.retryTimer !== undefined) clearTimeout(e.retryTimer);
      e.retryTimer = undefined;
      e.state = 'queued';
    }
  }

  /** Fails and removes every entry. */
  rejectAll(makeError: () => ParleyClientError): void {
    const all = this.entries.splice(0, this.entries.length);
    for (const e of all) {
      if (e.retryTimer !== undefined) clearTimeout(e.retryTimer);
      e.reject(makeError());
    }
  }

  snapshot(): PendingSend[] {
    return this.entries.map((e) => {
      const s: PendingSend = { key: e.data.key, text: e.data.text, state: e.state, attempts: e.attempts };
      if (e.data.conversationId !== undefined) s.conversationId = e.data.conversationId;
      if (e.data.to !== undefined) s.to = e.data.to;
      if (e.data.meta !== undefined) s.meta = e.data.meta;
      return s;
    });
  }
}

/**
 * The message a send stored, as others receive it, built from the request and the server's receipt (the receipt holds
 * only what the server assigned; a duplicate's receipt carries the original message, which wins). `senderId`: the
 * connection's user (`welcome.user.id`).
 */
export function sentMessage(data: SendData, receipt: SendReceipt, senderId: string): Message {
  if (receipt.message) return receipt.message;
  const message: Message = { id: receipt.id, conversationId: receipt.conversationId, seq: receipt.seq, senderId, text: data.text, createdAt: receipt.createdAt };
  if (data.meta !== undefined && data.meta !== null) message.meta = data.meta;
  message.key = data.key;
  return message;
}
