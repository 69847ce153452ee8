import type { Change, Message, MyConversation, ResultMap } from '@parley/protocol';
import { splitForFrame } from './frame-batches.js';
import type { Sequencer } from './sequencer.js';

/**
 * The `sync` request accepts at most this many conversations; more are synced in several requests. The frame size
 * (`maxFrameBytes`) may make a batch smaller still: see splitForFrame.
 */
export const SYNC_BATCH = 1000;

export interface CatchUpContext {
  sequencer: Sequencer;
  /** Sends `history.after`. */
  historyAfter(data: { conversationId: string; afterSeq: number; limit?: number }): Promise<ResultMap['history.after']>;
  /** Sends `sync`. */
  sync(data: { conversations: Array<{ conversationId: string; afterSeq: number; rev?: number }>; limit?: number }): Promise<ResultMap['sync']>;
  /** Sends `conversation.list` (a page after the cursor `after`). */
  listConversations(data: { after?: string }): Promise<ResultMap['conversation.list']>;
  /** Hands messages to the app, already in order and deduplicated. */
  deliver(messages: Message[]): void;
  /** Hands the app one caught-up change of a conversation it holds (after the messages of the same reply). */
  applyChange(conversationId: string, change: Change): void;
  /** Hands the app a conversation whose rev was behind (renamed, member count changed). */
  applyConversation(conversation: MyConversation): void;
  /** Reports a gap the server could not fill (it was skipped). */
  onSkippedGap?(conversationId: string, from: number, to: number): void;
  pageSize?: number;
  /** `welcome.limits.maxFrameBytes`: each `sync` request is cut to fit it (unknown: batches of SYNC_BATCH only). */
  maxFrameBytes?: number;
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

/** A bound on follow-up `sync` rounds (changesMore) and list pages: each makes progress, so this is a safety net. */
const MAX_ROUNDS = 10_000;

/**
 * The catch-up after every (re)connect, and the periodic head check: `sync` with every known conversation's delivered
 * position and rev (in batches of at most SYNC_BATCH that each fit one frame). Per conversation it delivers the returned page in seq order and pages
 * the rest with `history.after` while `more` (so a head learned here also fills a lost last message), applies the
 * changes (edits, deletes, members, read cursors) and stores the returned rev, and syncs again while `changesMore`.
 * Conversations in `unknown` become known at their lastSeq and rev; those in `removed` are forgotten. When a reply's
 * `unknown` was cut by its byte budget (`unknownMore`), the rest is read with `conversation.list`, whose pages are
 * budgeted on their own: syncing again would give `unknown` only what the named conversations' entries leave, which
 * shrinks as more become known.
 */
export async function runSync(ctx: CatchUpContext): Promise<SyncOutcome> {
  const unknown = new Map<string, MyConversation>();
  const removed = new Set<string>();
  let positions = ctx.sequencer.positions();
  const named = new Set(positions.map((p) => p.conversationId));
  const cut = { unknownMore: false };
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const again = await syncRound(ctx, positions, named, unknown, removed, cut);
    if (again.length === 0) {
      if (cut.unknownMore) await listUnknown(ctx, named, unknown);
      return { unknown: [...unknown.values()], removed: [...removed] };
    }
    const next = new Set(again);
    positions = ctx.sequencer.positions().filter((p) => next.has(p.conversationId));
    for (const p of positions) named.add(p.conversationId);
  }
  throw new Error('sync did not converge');
}

/** Every conversation of the user that neither the sync named nor its `unknown` listed: all pages of conversation.list. */
async function listUnknown(ctx: CatchUpContext, named: Set<string>, unknown: Map<string, MyConversation>): Promise<void> {
  let after: string | undefined;
  for (let page = 0; page < MAX_ROUNDS; page++) {
    const res = await ctx.listConversations(after === undefined ? {} : { after });
    for (const conv of res.conversations) {
      if (named.has(conv.id) || unknown.has(conv.id)) continue;
      if (!ctx.sequencer.isKnown(conv.id)) ctx.sequencer.track(conv.id, conv.lastSeq, conv.rev);
      unknown.set(conv.id, conv);
    }
    if (!res.more || res.next === null) return;
    after = res.next;
  }
}

/** One pass over `positions`; returns the conversations to sync again (changes or unknown conversations left). */
async function syncRound(
  ctx: CatchUpContext, positions: ReturnType<Sequencer['positions']>, named: Set<string>,
  unknown: Map<string, MyConversation>, removed: Set<string>, cut: { unknownMore: boolean },
): Promise<string[]> {
  const batches = splitForFrame(positions, SYNC_BATCH, ctx.maxFrameBytes);
  if (batches.length === 0) batches.push([]);
  const again: string[] = [];
  for (const batch of batches) {
    const res = await ctx.sync(withLimit({ conversations: batch }, ctx.pageSize));
    const askedRev = new Map(batch.map((p) => [p.conversationId, p.rev]));
    for (const c of res.conversations) {
      if (!ctx.sequencer.isKnown(c.conversationId)) continue; // forgotten meanwhile
      await applyEntry(ctx, c);
      const asked = askedRev.get(c.conversationId);
      if (c.changesMore && asked !== undefined && c.rev > asked) again.push(c.conversationId);
    }
    for (const id of res.removed) {
      if (!named.has(id)) continue;
      ctx.sequencer.forget(id);
      removed.add(id);
    }
    for (const conv of res.unknown) {
      // Each batch lists the conversations of the other batches as "unknown" too: only genuinely new ones count.
      if (named.has(conv.id) || unknown.has(conv.id)) continue;
      if (!ctx.sequencer.isKnown(conv.id)) ctx.sequencer.track(conv.id, conv.lastSeq, conv.rev);
      unknown.set(conv.id, conv);
    }
    // The reply was cut by its byte budget (messages and changes come first, `unknown` gets the rest): the rest is
    // listed once the rounds are done (see listUnknown).
    if (res.unknownMore) cut.unknownMore = true;
  }
  return again;
}

async function applyEntry(ctx: CatchUpContext, c: ResultMap['sync']['conversations'][number]): Promise<void> {
  ctx.deliver(ctx.sequencer.offerMany(c.messages ?? []));
  const last = ctx.sequencer.last(c.conversationId) ?? 0;
  if (c.more || last < c.lastSeq || ctx.sequencer.gap(c.conversationId)) {
    await catchUp(ctx, c.conversationId, true);
  }
  if (!ctx.sequencer.isKnown(c.conversationId)) return;
  if (c.conversation) ctx.applyConversation(c.conversation);
  for (const change of c.changes ?? []) {
    if (change.kind === 'message') ctx.sequencer.update(change.message);
    ctx.applyChange(c.conversationId, change);
  }
  ctx.sequencer.setRev(c.conversationId, c.rev);
}

function withLimit<T extends object>(data: T, limit: number | undefined): T & { limit?: number } {
  return limit === undefined ? data : { ...data, limit };
}
