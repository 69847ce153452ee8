import type { Message } from '@parley/protocol';

/** Seqs `from`..`to` (inclusive) of a conversation are missing; fetch them with `history.after {afterSeq: from - 1}`. */
export interface GapRange {
  conversationId: string;
  from: number;
  to: number;
}

export interface Position {
  conversationId: string;
  /** The highest seq delivered to the app (what `sync` and `history.after` take as `afterSeq`). */
  afterSeq: number;
  /** The conversation's change counter up to which changes were applied (what `sync` takes as `rev`), when known. */
  rev?: number;
}

interface Track {
  last: number;
  rev: number | undefined;
  /** Messages received ahead of a gap, by seq, waiting for the gap to be filled. */
  buffer: Map<number, Message>;
}

/**
 * The ordering and deduplication buffer behind the client's `message` event. Pure logic: no I/O, no timers.
 *
 * Per known conversation it keeps `last`, the highest seq delivered. `offer(message)`:
 * - `seq <= last`: a duplicate, dropped;
 * - `seq === last + 1`: delivered, followed by any buffered messages that are now contiguous;
 * - `seq > last + 1`: buffered; `gap(conversationId)` then reports the missing range for the caller to fetch.
 * A message of a conversation it does not know makes that conversation known with `last = seq - 1` (nothing older
 * than the moment it became known is delivered unless the app fetches history itself).
 *
 * `onChange` is called after any call that changed `positions()` (so that they can be persisted).
 */
export class Sequencer {
  private readonly convs = new Map<string, Track>();

  constructor(private readonly onChange: () => void = () => {}) {}

  isKnown(conversationId: string): boolean {
    return this.convs.has(conversationId);
  }

  /** The highest delivered seq, or undefined for an unknown conversation. */
  last(conversationId: string): number | undefined {
    return this.convs.get(conversationId)?.last;
  }

  conversationIds(): string[] {
    return [...this.convs.keys()];
  }

  positions(): Position[] {
    return [...this.convs].map(([conversationId, t]) =>
      t.rev === undefined ? { conversationId, afterSeq: t.last } : { conversationId, afterSeq: t.last, rev: t.rev });
  }

  /** The change counter applied so far, or undefined. */
  rev(conversationId: string): number | undefined {
    return this.convs.get(conversationId)?.rev;
  }

  /** Records that changes up to `rev` were applied; never moves backward. Ignored for an unknown conversation. */
  setRev(conversationId: string, rev: number): void {
    const t = this.convs.get(conversationId);
    if (t && Number.isInteger(rev) && rev >= 0 && (t.rev === undefined || rev > t.rev)) {
      t.rev = rev;
      this.onChange();
    }
  }

  /**
   * Makes a conversation known at `lastSeq`, or moves a known one forward to it (never backward: that would deliver
   * twice). Returns buffered messages that this makes deliverable, in order.
   */
  track(conversationId: string, lastSeq: number, rev?: number): Message[] {
    if (!Number.isInteger(lastSeq) || lastSeq < 0) throw new RangeError('lastSeq must be an integer >= 0');
    const t = this.convs.get(conversationId);
    if (!t) {
      this.convs.set(conversationId, { last: lastSeq, rev: undefined, buffer: new Map() });
      if (rev !== undefined) this.setRev(conversationId, rev);
      this.onChange();
      return [];
    }
    if (rev !== undefined) this.setRev(conversationId, rev);
    if (lastSeq <= t.last) return [];
    t.last = lastSeq;
    for (const seq of [...t.buffer.keys()]) if (seq <= lastSeq) t.buffer.delete(seq);
    this.onChange();
    return this.flush(t);
  }

  /** Forgets a conversation (left, kicked, deleted) and its buffer. */
  forget(conversationId: string): void {
    if (this.convs.delete(conversationId)) this.onChange();
  }

  /** Forgets every conversation (the client now speaks for another user). */
  clear(): void {
    if (this.convs.size === 0) return;
    this.convs.clear();
    this.onChange();
  }

  /** Offers one message; returns the messages to deliver now, in order (possibly none). */
  offer(message: Message): Message[] {
    let t = this.convs.get(message.conversationId);
    if (!t) {
      t = { last: Math.max(0, message.seq - 1), rev: undefined, buffer: new Map() };
      this.convs.set(message.conversationId, t);
      this.onChange();
    }
    if (message.seq <= t.last) return [];
    if (message.seq > t.last + 1) {
      if (!t.buffer.has(message.seq)) t.buffer.set(message.seq, message);
      return [];
    }
    t.last = message.seq;
    this.onChange();
    return [message, ...this.flush(t)];
  }

  /** Offers several messages (any order, any conversations); returns what to deliver, in delivery order. */
  offerMany(messages: readonly Message[]): Message[] {
    const sorted = [...messages].sort((a, b) => a.seq - b.seq);
    const out: Message[] = [];
    for (const m of sorted) out.push(...this.offer(m));
    return out;
  }

  /** Replaces a buffered (not yet delivered) copy of a message with a newer version (an edit or delete). */
  update(message: Message): void {
    const t = this.convs.get(message.conversationId);
    if (t?.buffer.has(message.seq)) t.buffer.set(message.seq, message);
  }

  /** The first missing range of a conversation, or null if nothing is buffered ahead of a gap. */
  gap(conversationId: string): GapRange | null {
    const t = this.convs.get(conversationId);
    if (!t || t.buffer.size === 0) return null;
    const min = minKey(t.buffer);
    return { conversationId, from: t.last + 1, to: min - 1 };
  }

  gaps(): GapRange[] {
    const out: GapRange[] = [];
    for (const id of this.convs.keys()) {
      const g = this.gap(id);
      if (g) out.push(g);
    }
    return out;
  }

  /** How many messages wait behind a gap. */
  bufferedCount(conversationId: string): number {
    return this.convs.get(conversationId)?.buffer.size ?? 0;
  }

  /**
   * Gives up on the first gap (the server could not fill it): moves `last` to just before the lowest buffered seq and
   * returns the messages that become deliverable.
   */
  skipGap(conversationId: string): Message[] {
    const t = this.convs.get(conversationId);
    if (!t || t.buffer.size === 0) return [];
    t.last = minKey(t.buffer) - 1;
    this.onChange();
    return this.flush(t);
  }

  private flush(t: Track): Message[] {
    const out: Message[] = [];
    for (let next = t.buffer.get(t.last + 1); next; next = t.buffer.get(t.last + 1)) {
      t.buffer.delete(next.seq);
      t.last = next.seq;
      out.push(next);
    }
    return out;
  }
}

function minKey(map: Map<number, unknown>): number {
  let min = Infinity;
  for (const k of map.keys()) if (k < min) min = k;
  return min;
}
