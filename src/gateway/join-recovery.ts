import type { Message } from '../protocol/types.js';

/** Messages read back for one join: a join's window is milliseconds, so more means something else went wrong. */
export const JOIN_RECOVERY_LIMIT = 100;
/** Live events held while a recovery reads: past this many the recovery gives up on them and asks for a resync. */
const MAX_HELD = 1000;
/** How long live copies of recovered messages are looked for (and dropped) after a recovery. */
const RECOVERED_FILTER_MS = 30_000;

export interface JoinRecoveryDeps {
  /** The conversation's messages after `afterSeq` (not deleted), as every member's `message.new` carries them. */
  readAfter(conversationId: string, afterSeq: number, limit: number): Promise<Message[]>;
  /** Queue `message.new` of these messages to the conversation's local connections, in order. */
  sendMessages(conversationId: string, messages: Message[]): void;
  /** Tell the conversation's local connections to `sync` (what could not be recovered here). */
  askResync(conversationId: string): void;
  /** Deliver a bus payload of the conversation's topic that was held, as if it arrived now. */
  redeliver(conversationId: string, payload: Buffer): void;
  onError(err: unknown): void;
}

/**
 * Closes the window between a join and this instance's subscription to the conversation (Centrifugo calls the same
 * step "recovery"). A user's join reaches each instance as an event on the user's topic, and only then does an
 * instance that had no connection in the conversation subscribe to it: on a network bus, messages published between
 * the join and the subscription never reach it. So when a join makes this instance subscribe, it holds the topic's
 * live events, reads the messages stored after the `lastSeq` the join event carried, sends them, and then delivers
 * what it held, dropping live copies of messages it already sent (by `seq`, also for a while afterwards: a message
 * committed before the read can be published after it). A read that fails, or finds more than it may send, or live
 * events beyond what may be held, ends with a `resync` to the conversation's connections instead.
 *
 * Cost: only joins that start a subscription on this instance (the first local connection of a conversation) read
 * once; live traffic is inspected only for conversations recovering or just recovered.
 */
export class JoinRecovery {
  /** conversationId → live payloads held while its recovery reads (null after too many: resync instead). */
  private readonly holding = new Map<string, Buffer[] | null>();
  /** conversationId → the highest seq a recovery sent, and until when live copies up to it are dropped (ms). */
  private readonly recovered = new Map<string, { upTo: number; until: number }>();

  constructor(private readonly deps: JoinRecoveryDeps, private readonly now: () => number = Date.now) {}

  /** Whether any conversation needs its live events looked at (one check per delivery on the hot path). */
  get active(): boolean {
    return this.holding.size > 0 || this.recovered.size > 0;
  }

  /** A join made this instance subscribe to the conversation (`subscription` resolves once it is in place). */
  async recover(conversationId: string, afterSeq: number, subscription: Promise<void>): Promise<void> {
    if (this.holding.has(conversationId)) return; // another join's recovery covers this one
    this.holding.set(conversationId, []);
    let messages: Message[] | null = null;
    try {
      await subscription;
      messages = await this.deps.readAfter(conversationId, afterSeq, JOIN_RECOVERY_LIMIT);
    } catch (err) {
      this.deps.onError(err);
    }
    const held = this.holding.get(conversationId);
    this.holding.delete(conversationId);
    if (messages && messages.length > 0) {
      this.deps.sendMessages(conversationId, messages);
      this.recovered.set(conversationId, { upTo: messages[messages.length - 1]!.seq, until: this.now() + RECOVERED_FILTER_MS });
    }
    if (!messages || messages.length >= JOIN_RECOVERY_LIMIT || held === null) this.deps.askResync(conversationId);
    for (const payload of held ?? []) this.deps.redeliver(conversationId, payload);
  }

  /**
   * A live event of the conversation's topic: 'hold' while its recovery reads (kept, delivered after), 'drop' for a
   * copy of a message a recovery already sent, otherwise 'deliver'. `frame` is the event's JSON, as bytes.
   */
  admit(conversationId: string, payload: Buffer, frame: Buffer): 'hold' | 'drop' | 'deliver' {
    if (this.holding.has(conversationId)) {
      const held = this.holding.get(conversationId);
      if (held && held.length < MAX_HELD) held.push(payload);
      else this.holding.set(conversationId, null);
      return 'hold';
    }
    const recovered = this.recovered.get(conversationId);
    if (!recovered) return 'deliver';
    if (this.now() > recovered.until) {
      this.recovered.delete(conversationId);
      return 'deliver';
    }
    const seq = messageNewSeq(frame);
    return seq !== null && seq <= recovered.upTo ? 'drop' : 'deliver';
  }

  /** The instance no longer has connections in the conversation. */
  forget(conversationId: string): void {
    this.recovered.delete(conversationId);
  }
}

const MESSAGE_NEW = Buffer.from('{"event":"message.new"');

/** The seq of a `message.new` event frame, or null for any other event (only those are decoded). */
function messageNewSeq(frame: Buffer): number | null {
  if (frame.length < MESSAGE_NEW.length || MESSAGE_NEW.compare(frame, 0, MESSAGE_NEW.length) !== 0) return null;
  const data = (JSON.parse(frame.toString()) as { data?: { seq?: unknown } }).data;
  return typeof data?.seq === 'number' ? data.seq : null;
}
