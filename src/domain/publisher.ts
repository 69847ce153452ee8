import { clusterTopic, conversationTopic, presenceTopic, probeTopic, userTopic, type Bus } from '../bus/bus.js';
import { encodeControl, encodeFrame } from '../bus/envelope.js';
import { encodeEvent, type EventMap, type EventName } from '../protocol/events.js';

export interface PublisherOptions {
  /**
   * Topics whose events were lost that are remembered, at most, until their `resync` is published. One more and the
   * instance forgets them all and owes one cluster-wide `resync` instead (every connection of every instance syncs
   * once): memory stays bounded however long the bus is away. @default 10000
   */
  maxLostTopics?: number;
  /**
   * How often an owed `resync` is tried while the bus still refuses it, in ms (one publish per try: the first owed
   * topic's; the rest follow once it passes). Short, because until it goes out a member removed meanwhile may still
   * receive the conversation's events on another instance. @default 100
   */
  retryMs?: number;
  /** How long `close` keeps trying to publish what is owed, in ms. @default 2000 */
  closeTimeoutMs?: number;
  /** Told when `close` gives up with resyncs still owed (topics, and whether the cluster-wide one). */
  onDropped?: (topics: number, cluster: boolean) => void;
  /** Told once a round of owed `resync`s was published (topics, and whether it was the cluster-wide one). */
  onRecovered?: (topics: number, cluster: boolean) => void;
  /** Told of each event the bus refused (a metric); the caller of the publish gets the error as well. */
  onFailed?: () => void;
}

/** Events whose loss needs no `resync`: presence is published again by the presence service, typing expires. */
const EPHEMERAL: ReadonlySet<EventName> = new Set<EventName>(['typing', 'presence']);
/** Owed `resync`s published at once, at most: well within the bus's bound on pending publishes. */
const RESYNC_BATCH = 500;

/**
 * How the domain announces what happened. Each event is serialised once, here; the bus carries the bytes.
 *
 * Publishing is best effort (the bus is at-most-once): the durable record is the store, so a publish failure is
 * logged by the caller, never turned into a failed request after the change was stored. What the publisher adds is
 * that a lost event does not stay lost to live clients until their next periodic sync: when a publish fails (the
 * bus is unreachable, or its publishing connection is still reconnecting after a restart while the subscribers are
 * back), the topic is remembered, and once the bus takes publishes again (the next publish that passes, or a retry every
 * `retryMs`) a `#resync` control goes to it. Each
 * instance that receives it tells the topic's local connections to `resync` (a user topic: they are admitted again and
 * their interests read from the store first, as a membership event may be the one lost), and they `sync`, which reads
 * the store, where the lost change already is (it was stored before its publish). Instances that did not receive it
 * (their own subscriptions were down) reset themselves when they are back (src/bus/bus.ts, `onReset`), which covers
 * the same events. Ephemeral events (typing, presence) are not tracked: see EPHEMERAL.
 *
 * What is owed lives in this process: an instance killed while it owes drops it (its own clients reconnect and sync;
 * members on other instances recover at their next sync, or at the gap the next message of the conversation shows);
 * `close` keeps trying for `closeTimeoutMs` and reports what it drops.
 */
export class Publisher {
  private readonly maxLostTopics: number;
  private readonly retryMs: number;
  private readonly onRecovered: (topics: number, cluster: boolean) => void;
  private readonly onFailed: () => void;
  private readonly closeTimeoutMs: number;
  private readonly onDropped: (topics: number, cluster: boolean) => void;
  /** Topics whose events were lost and whose `resync` has not been published yet. */
  private readonly lost = new Set<string>();
  /** More topics were lost than remembered: one cluster-wide `resync` is owed instead (`lost` stays empty). */
  private lostAll = false;
  /** Owed `resync`s being published now (taken out of `lost` / `lostAll` until they pass or fail). */
  private sending = 0;
  private sendingCluster = false;
  private retrying: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly bus: Bus, options: PublisherOptions = {}) {
    this.maxLostTopics = options.maxLostTopics ?? 10_000;
    this.retryMs = options.retryMs ?? 100;
    this.closeTimeoutMs = options.closeTimeoutMs ?? 2000;
    this.onDropped = options.onDropped ?? (() => {});
    this.onRecovered = options.onRecovered ?? (() => {});
    this.onFailed = options.onFailed ?? (() => {});
  }

  /** To every member's connections, except those of `exceptUser`, or except the one connection `exceptConnection`. */
  toConversation<E extends EventName>(
    conversationId: string, event: E, data: EventMap[E], exceptUser: string | null = null, exceptConnection: string | null = null,
  ): Promise<void> {
    return this.publish(conversationTopic(conversationId), encodeFrame(encodeEvent(event, data), exceptUser, exceptConnection), !EPHEMERAL.has(event));
  }

  /** To the user's connections, except the one connection `exceptConnection` (the one that caused it, if any). */
  toUser<E extends EventName>(userId: string, event: E, data: EventMap[E], exceptConnection: string | null = null): Promise<void> {
    return this.publish(userTopic(userId), encodeFrame(encodeEvent(event, data), null, exceptConnection), !EPHEMERAL.has(event));
  }

  /** To the connections subscribed to the user's presence (presence.subscribe), wherever they are. */
  toPresenceWatchers<E extends EventName>(userId: string, event: E, data: EventMap[E]): Promise<void> {
    return this.publish(presenceTopic(userId), encodeFrame(encodeEvent(event, data)), false);
  }

  /**
   * `ban`: close the user's connections (4502); `revoke`: close them all (4500); `revoke:<sessionId>`: those of one
   * session. A lost control is recovered like a lost event: the user's connections are admitted again.
   */
  controlUser(userId: string, command: 'ban' | 'revoke' | `revoke:${string}`): Promise<void> {
    return this.publish(userTopic(userId), encodeControl(command), true);
  }

  /**
   * Resolves when the bus takes a publish now (to a topic nobody subscribes to); rejects with its UNAVAILABLE
   * otherwise. Every removal of access (kick, group ban, leave, logout, account ban) asks first and is refused while
   * the bus refuses: its event is what stops delivery to the removed member on other instances, and lost, it would let
   * them receive until the owed `resync` (or the next reconciliation).
   */
  probe(): Promise<void> {
    return this.bus.publish(probeTopic, encodeControl('probe'));
  }

  /** The `resync`s owed now: per topic, and whether the cluster-wide one is. For metrics and tests. */
  get owed(): { topics: number; cluster: boolean } {
    return { topics: this.lost.size + this.sending, cluster: this.lostAll || this.sendingCluster };
  }

  /**
   * Stop, after trying for up to `closeTimeoutMs` (every `retryMs`) to publish what is owed: a draining instance's
   * lost events must still reach the other instances' clients. What is still owed then goes to `onDropped`. Call
   * before the bus closes.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.retrying;
    const deadline = Date.now() + this.closeTimeoutMs;
    while (this.lostAll || this.lost.size > 0) {
      await this.resyncOwed();
      if ((!this.lostAll && this.lost.size === 0) || Date.now() + this.retryMs > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, this.retryMs));
    }
    if (this.lostAll || this.lost.size > 0) this.onDropped(this.lost.size, this.lostAll);
  }

  private publish(topic: string, payload: Buffer, recoverable: boolean): Promise<void> {
    return this.bus.publish(topic, payload).then(
      this.published,
      (err: unknown) => {
        this.onFailed();
        if (recoverable) this.remember(topic);
        throw err;
      },
    );
  }

  /** A publish passed: the bus takes publishes again, so what is owed goes now rather than at the next retry. One function for every publish. */
  private readonly published = (): void => {
    if ((this.lostAll || this.lost.size > 0) && this.retrying === null) this.retry();
  };

  private remember(topic: string): void {
    if (!this.lostAll) {
      if (this.lost.has(topic) || this.lost.size < this.maxLostTopics) this.lost.add(topic);
      else {
        this.lostAll = true;
        this.lost.clear();
      }
    }
    this.retryLater();
  }

  private retryLater(): void {
    if (this.closed) return;
    this.timer ??= setTimeout(() => {
      this.timer = null;
      this.retry();
    }, this.retryMs).unref();
  }

  private retry(): void {
    if (this.retrying !== null || this.closed) return;
    this.retrying = this.resyncOwed().finally(() => {
      this.retrying = null;
    });
  }

  /** Publish the owed `resync`s; those that fail are remembered again (and retried after `retryMs`). */
  private async resyncOwed(): Promise<void> {
    if (this.lostAll) {
      this.lostAll = false;
      this.sendingCluster = true;
      try {
        await this.bus.publish(clusterTopic, encodeControl('resync'));
        this.onRecovered(0, true);
      } catch {
        this.lostAll = true;
        this.retryLater();
        return;
      } finally {
        this.sendingCluster = false;
      }
      // Topics lost while it was published stay owed (their events may have been stored after it went out): below.
    }
    let published = 0;
    // The first try is one publish: while the bus still refuses, each retry costs one command, not a batch.
    let size = 1;
    while (this.lost.size > 0 && !this.lostAll) {
      const batch: string[] = [];
      for (const topic of this.lost) {
        batch.push(topic);
        if (batch.length === size) break;
      }
      size = RESYNC_BATCH;
      for (const topic of batch) this.lost.delete(topic);
      this.sending = batch.length;
      const results = await Promise.allSettled(batch.map((topic) => this.bus.publish(topic, encodeControl('resync'))));
      this.sending = 0;
      let failed = 0;
      for (const [i, result] of results.entries()) {
        if (result.status === 'fulfilled') published++;
        else {
          failed++;
          this.remember(batch[i]!);
        }
      }
      if (failed > 0) break; // the bus refuses again: remember() armed the retry
    }
    if (published > 0) this.onRecovered(published, false);
  }
}
