import type { ResultMap } from '../../../src/protocol/results.js';
import type { Message, MyConversation } from '../../../src/protocol/types.js';
import type { Sequencer } from './sequencer.js';

/** The `sync` request accepts at most this many conversations; more are synced in several requests. */
export const SYNC_BATCH = 1000;

export interface CatchUpContext {
  sequencer: Sequencer;
  /** Sends `history.after`. */
  historyAfter(data: { conversationId: string; afterSeq: number; limit?: number }): Promise<ResultMap['history.after']>;
  /** Sends `sync`. */
  sync(data: { conversations: Array<{ conversationId: string; afterSeq: number }>; limit?: number }): Promise<ResultMap['sync']>;
  /** Hands messages to the app, already in order and deduplicated. */
  deliver(messages: Message[]): void;
  /** Reports a gap the server could not fill (it was skipped). */
  onSkippedGap?(conversationId: string, from: number, to: number): void;
  pageSize?: number;
}

export interface SyncOutcome {
  /** Conversations that became known through this sync (joined while away), tracked from their lastSeq. */
  unknown: MyConversation[];
  /** Conversations that were known but that the user no longer belongs to; they are forgotten. */
  removed: string[];
}

/**
 * Pages `history.after` from the conversation's delivered position, delivering what comes back, until the buffered gap
 * is filled and (with `followMore`) the server says no more messages follow. A page that makes no progress while a gap
 * remains means the server cannot fill it: the gap is skipped so that later messages are not held back forever.
 */
export async function catchUp(ctx: CatchUpContext, conversationId: string, followMore: boolean): Promise<void> {
  for (;;) {
    const before = ctx.sequencer.last(conversationId);
    if (before === undefined) return; // forgotten meanwhile
    const page = await ctx.historyAfter(withLimit({ conversationId, afterSeq: before }, ctx.pageSize));
    ctx.deliver(ctx.sequencer.offerMany(page.messages));
    const after = ctx.sequencer.last(conversationId);
    if (after === undefined) return;
    const gap = ctx.sequencer.gap(conversationId);
    if (after === before) {
      if (!gap) return; // nothing new
      ctx.onSkippedGap?.(conversationId, gap.from, gap.to);
      ctx.deliver(ctx.sequencer.skipGap(conversationId));
      continue;
    }
    if (gap) continue;
    if (followMore && page.more) continue;
    return;
  }
}

/**
 * The catch-up after every (re)connect: `sync` with every known conversation's delivered position (in batches of
 * SYNC_BATCH), delivering each returned page in seq order and paging the rest with `history.after` while `more`.
 * Conversations in `unknown` become known at their lastSeq; those in `removed` are forgotten.
 */
export async function runSync(ctx: CatchUpContext): Promise<SyncOutcome> {
  const positions = ctx.sequencer.positions();
  const batches: (typeof positions)[] = [];
  for (let i = 0; i < positions.length; i += SYNC_BATCH) batches.push(positions.slice(i, i + SYNC_BATCH));
  if (batches.length === 0) batches.push([]);

  const named = new Set(positions.map((p) => p.conversationId));
  const unknown = new Map<string, MyConversation>();
  const removed = new Set<string>();

  for (const batch of batches) {
    const res = await ctx.sync(withLimit({ conversations: batch }, ctx.pageSize));
    for (const c of res.conversations) {
      if (!ctx.sequencer.isKnown(c.conversationId)) continue; // forgotten meanwhile
      ctx.deliver(ctx.sequencer.offerMany(c.messages));
      const last = ctx.sequencer.last(c.conversationId) ?? 0;
      if (c.more || last < c.lastSeq || ctx.sequencer.gap(c.conversationId)) {
        await catchUp(ctx, c.conversationId, true);
      }
    }
    for (const id of res.removed) {
      if (!named.has(id)) continue;
      ctx.sequencer.forget(id);
      removed.add(id);
    }
    for (const conv of res.unknown) {
      // Each batch lists the conversations of the other batches as "unknown" too: only genuinely new ones count.
      if (named.has(conv.id) || unknown.has(conv.id)) continue;
      if (!ctx.sequencer.isKnown(conv.id)) ctx.sequencer.track(conv.id, conv.lastSeq);
      unknown.set(conv.id, conv);
    }
  }
  return { unknown: [...unknown.values()], removed: [...removed] };
}

function withLimit<T extends object>(data: T, limit: number | undefined): T & { limit?: number } {
  return limit === undefined ? data : { ...data, limit };
}
