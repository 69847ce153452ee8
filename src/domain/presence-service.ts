import { ParleyError } from '../protocol/errors.js';
import type { PresenceInfo } from '../protocol/types.js';
import type { Presence } from '../presence/presence.js';
import type { Store } from '../store/store.js';
import type { ConnectionScope } from './operations.js';
import type { Publisher } from './publisher.js';

/** Presence publishes of one window in flight at once, at most. */
const PUBLISH_SLICE = 1000;

export interface PresenceOptions {
  batchMs: number;
  ttlMs: number;
  /** Presence is pushed to direct conversations and groups of at most this many members (see `presence` event). */
  maxGroupSize: number;
  /** `presence.subscribe` subscriptions one connection may hold. */
  maxSubscriptions: number;
}

/**
 * Presence as users see it: online / offline / last seen of the users they share a conversation with.
 *
 * Changes are collected for `batchMs` and then pushed as ONE `presence` event per affected conversation, so a
 * reconnect storm of a thousand users in one group becomes one event to that group per window, not a thousand.
 * A user who goes offline and back online within a window produces no event at all.
 *
 * Pushed by interest, so the cost of a change is its watchers, not the size of the groups the user is in:
 * - to each direct conversation and each group of at most `maxGroupSize` members the user is in;
 * - to the user's presence topic, which reaches only connections that subscribed to that user (`presence.subscribe`,
 *   at most `maxSubscriptions` each): how a client shows presence of members of a large group it displays.
 * A large group gets no presence events: with N members online, pushing to it cost N² frames.
 *
 * A change that could not be published (bus or store unreachable) goes into the next window again, so watchers
 * converge once the bus is back; presence is never owed a `resync` (src/domain/publisher.ts).
 */
export class PresenceService {
  private pending = new Map<string, PresenceInfo>();
  private timer: NodeJS.Timeout | null = null;
  private readonly sweeper: NodeJS.Timeout;
  /** After close() no timer is armed again: a disconnect finishing late must not start a flush on a closed store. */
  private closed = false;
  /** A flush or sweep in progress: close() waits for it, as it reads the store. */
  private readonly running = new Set<Promise<void>>();
  /**
   * The connections this instance registered and has not disconnected: userId → connectionIds. What `touch` may
   * register again when the engine forgot them (a restarted Redis), and only those: a connection closed meanwhile
   * must not come back as a ghost. A user with one connection maps to its id, not to a Set of one: a Set costs 150 bytes
   * per idle connection, a third of what issue 9's work had added to each.
   */
  private readonly held = new Map<string, string | Set<string>>();

  constructor(
    private readonly presence: Presence,
    private readonly store: Store,
    private readonly publisher: Publisher,
    private readonly options: PresenceOptions,
    private readonly now: () => number = Date.now,
    private readonly onError: (err: unknown) => void = () => {},
  ) {
    this.sweeper = setInterval(() => this.run(() => this.sweep()), Math.max(1000, Math.floor(options.ttlMs / 2)));
    this.sweeper.unref();
  }

  async connected(userId: string, connectionId: string): Promise<void> {
    const connections = this.held.get(userId);
    if (connections === undefined) this.held.set(userId, connectionId);
    else if (typeof connections === 'string') {
      if (connections !== connectionId) this.held.set(userId, new Set([connections, connectionId]));
    } else connections.add(connectionId);
    const { becameOnline } = await this.presence.connect(userId, connectionId, this.now());
    if (becameOnline) this.changed({ userId, online: true, lastSeen: this.now() });
  }

  async disconnected(userId: string, connectionId: string): Promise<void> {
    const connections = this.held.get(userId);
    if (connections === connectionId) this.held.delete(userId);
    else if (typeof connections === 'object' && connections.delete(connectionId) && connections.size === 0) this.held.delete(userId);
    const now = this.now();
    const { becameOffline } = await this.presence.disconnect(userId, connectionId, now);
    if (becameOffline) {
      this.changed({ userId, online: false, lastSeen: now });
      await this.store.setLastSeen(userId, now).catch(this.onError);
    }
  }

  /**
   * Refresh these connections' liveness (each heartbeat round). Those the engine no longer holds live (a restarted
   * Redis forgot them, or this instance was too slow to touch them in time) are registered again when this instance
   * still holds them: a user whose connections are open is online, whatever the engine lost (an `online` event
   * follows when the engine had reported them offline).
   */
  async touch(entries: Array<{ userId: string; connectionId: string }>): Promise<void> {
    const gone = await this.presence.touch(entries, this.now());
    // Checked now, and registered in the same turn: a disconnect after this reaches the engine after the connect, and wins.
    const again = gone.filter(({ userId, connectionId }) => this.holds(userId, connectionId));
    await Promise.all(again.map(({ userId, connectionId }) => this.connected(userId, connectionId)));
  }

  private holds(userId: string, connectionId: string): boolean {
    const connections = this.held.get(userId);
    return connections === connectionId || (typeof connections === 'object' && connections.has(connectionId));
  }

  /** Presence of the requested users who share a conversation with `userId` (others are left out). */
  async get(userId: string, userIds: string[]): Promise<PresenceInfo[]> {
    return this.states(await this.visible(userId, userIds));
  }

  /**
   * `presence.subscribe`: the connection receives the presence changes of the requested users who share a
   * conversation with `userId` (others are left out, as in `get`), until it unsubscribes or closes. Answers their
   * presence now; a change after the answer is pushed (the subscription is in place before the states are read).
   * LIMIT_EXCEEDED, and nothing changes, when the connection would hold more than `maxSubscriptions`.
   */
  async subscribe(userId: string, userIds: string[], scope: ConnectionScope | undefined): Promise<{ users: PresenceInfo[]; subscribed: number }> {
    if (!scope) throw new ParleyError('INVALID_REQUEST', 'presence.subscribe needs a WebSocket connection');
    const visible = await this.visible(userId, userIds);
    // Checked and added with no await between: concurrent subscribes of one connection cannot pass the bound together.
    const added = visible.filter((id) => !scope.presenceWatches.has(id)).length;
    const max = this.options.maxSubscriptions;
    if (scope.presenceWatches.size + added > max) {
      throw new ParleyError('LIMIT_EXCEEDED', `at most ${max} presence subscriptions per connection`, { max, subscribed: scope.presenceWatches.size });
    }
    await scope.watchPresence(visible);
    return { users: await this.states(visible), subscribed: scope.presenceWatches.size };
  }

  /** `presence.unsubscribe`: ids not subscribed are ignored. */
  unsubscribe(userIds: string[], scope: ConnectionScope | undefined): { subscribed: number } {
    if (!scope) throw new ParleyError('INVALID_REQUEST', 'presence.unsubscribe needs a WebSocket connection');
    scope.unwatchPresence(userIds);
    return { subscribed: scope.presenceWatches.size };
  }

  /** The requested users (each once) who share a conversation with `userId`, and `userId` itself. */
  private async visible(userId: string, userIds: string[]): Promise<string[]> {
    const contacts = new Set(await this.store.listContacts(userId));
    contacts.add(userId);
    return [...new Set(userIds)].filter((id) => contacts.has(id));
  }

  private async states(visible: string[]): Promise<PresenceInfo[]> {
    if (visible.length === 0) return [];
    const states = await this.presence.get(visible, this.now());
    const missingLastSeen = states.filter((s) => !s.online && s.lastSeen === null);
    // The presence engine may have forgotten a user; the store keeps the last disconnect time.
    for (const state of missingLastSeen) state.lastSeen = (await this.store.getUser(state.userId))?.lastSeen ?? null;
    return states;
  }

  /**
   * Stop the timers, publish the changes still waiting for their window (a draining instance's users going offline
   * must reach the other instances' clients), and resolve once that and any flush or sweep already running have
   * finished (the store and bus may close then).
   */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await Promise.allSettled([...this.running]);
    if (this.pending.size > 0) await this.flush();
  }

  private run(work: () => Promise<void>): void {
    if (this.closed) return;
    const running = work();
    this.running.add(running);
    void running.finally(() => this.running.delete(running));
  }

  private async sweep(): Promise<void> {
    try {
      const now = this.now();
      const expired = await this.presence.sweep(now);
      for (const userId of expired) this.changed({ userId, online: false, lastSeen: now });
      // The engine forgets offline users after the ttl: the store keeps when an expired user was last seen.
      const states = expired.length > 0 ? await this.presence.get(expired, now) : [];
      await this.store.setLastSeenMany(states.map((state) => ({ userId: state.userId, at: state.lastSeen ?? now }))).catch(this.onError);
    } catch (err) {
      this.onError(err);
    }
  }

  private changed(info: PresenceInfo): void {
    if (this.closed) return;
    // The window's last state is told, even when it is the one before the window (a flap costs one event that changes
    // nothing): dropping an offline followed by an online lost a quick reconnect's online for a user the others saw
    // offline (connect, close, connect within one window: outside check), and someone may have read the state in
    // between (presence.get, presence.subscribe's answer).
    this.pending.set(info.userId, info);
    this.arm();
  }

  private arm(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => this.run(() => this.flush()), this.options.batchMs);
    this.timer.unref();
  }

  private async flush(): Promise<void> {
    this.timer = null;
    const taken = [...this.pending.values()];
    this.pending = new Map();
    const batch = await this.stillTrue(taken);
    if (batch.length === 0) return;
    let audiences: string[][];
    try {
      // Direct conversations and groups of at most maxGroupSize members get presence events: one store call a window.
      audiences = await this.store.listPresenceConversations(batch.map((info) => info.userId), this.options.maxGroupSize);
    } catch (err) {
      this.onError(err);
      return this.retryLater(batch);
    }
    const byConversation = new Map<string, PresenceInfo[]>();
    for (const [i, info] of batch.entries()) {
      for (const conversationId of audiences[i]!) {
        let list = byConversation.get(conversationId);
        if (!list) byConversation.set(conversationId, (list = []));
        list.push(info);
      }
    }
    const conversations = [...byConversation];
    const publishes = [
      ...conversations.map(([id, users]) => () => this.publisher.toConversation(id, 'presence', { conversationId: id, users })),
      ...batch.map((info) => () => this.publisher.toPresenceWatchers(info.userId, 'presence', { users: [info] })),
    ];
    // In slices: a window of many users in many small groups must not pass the bus's bound on pending publishes.
    const results: Array<PromiseSettledResult<void>> = [];
    for (let i = 0; i < publishes.length; i += PUBLISH_SLICE) {
      results.push(...(await Promise.allSettled(publishes.slice(i, i + PUBLISH_SLICE).map((publish) => publish()))));
    }
    const unpublished = new Set<PresenceInfo>();
    for (const [i, result] of results.entries()) {
      if (result.status === 'fulfilled') continue;
      if (unpublished.size === 0) this.onError(result.reason);
      if (i < conversations.length) for (const info of conversations[i]![1]) unpublished.add(info);
      else unpublished.add(batch[i - conversations.length]!);
    }
    this.retryLater([...unpublished]);
  }

  /**
   * Changes that could not be published (the bus or the store was unreachable) go into the next window again, unless
   * a newer change of the user is waiting: presence is state, so publishing it again (to every audience, some of which
   * may have had it) is how watchers converge, and the next window checks first that it still holds (stillTrue).
   */
  private retryLater(infos: PresenceInfo[]): void {
    if (this.closed) return;
    for (const info of infos) if (!this.pending.has(info.userId)) this.pending.set(info.userId, info);
    if (this.pending.size > 0) this.arm();
  }

  /**
   * The changes of `batch` that the engine still holds true. With several instances on one engine, a user's offline
   * on one instance and their later online on another are each published by their own instance, each after its own
   * window: the late one to flush must not undo the other. A change the engine no longer holds (the user is online
   * again, or went offline) is dropped: the instance that made the newer change publishes it. When the engine cannot
   * answer, the batch goes out as it is (a client that missed a change still converges with `presence.get`).
   */
  private async stillTrue(batch: PresenceInfo[]): Promise<PresenceInfo[]> {
    if (batch.length === 0) return batch;
    try {
      const now = await this.presence.get(batch.map((info) => info.userId), this.now());
      return batch.filter((info, i) => now[i]?.online === info.online);
    } catch (err) {
      this.onError(err);
      return batch;
    }
  }
}
