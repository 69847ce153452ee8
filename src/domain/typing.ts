import type { Store } from '../store/store.js';
import { ParleyError } from '../protocol/errors.js';
import type { RateLimiter } from '../ratelimit/limiter.js';
import type { Publisher } from './publisher.js';

/**
 * Typing indicators. A "typing: true" is forwarded to the other members at most once per `throttleMs` per user and
 * conversation (a bucket of one token in the rate limiter: shared by every instance when the limiter is, so a user
 * typing on two devices on two instances is not forwarded twice as often), and expires by itself: `ttlMs` after the
 * last "true" this instance saw without a refresh, the others receive "typing: false". Each event also carries
 * `expiresInMs`, so a client can expire it even if the stop is lost. In a group of more than `largeGroupSize` members
 * the starts of all members together are forwarded at most `largeGroupPerSecond` a second (burst twice that): without
 * it, N members typing at once sent N indicators to each of the group's members (the square of the group's size);
 * a start not forwarded is not followed by its stop.
 */
export class TypingService {
  private readonly active = new Map<string, NodeJS.Timeout>();
  /** Keys (conversation and user) whose current "typing: true" was forwarded: only those get their "false". */
  private readonly announced = new Set<string>();
  private readonly groupThrottle: { perSecond: number; burst: number };
  /** After close() nothing is armed or published: a request finishing during shutdown must not outlive the bus. */
  private closed = false;

  private readonly throttle: { perSecond: number; burst: number };

  constructor(
    private readonly store: Store,
    private readonly publisher: Publisher,
    private readonly limiter: Pick<RateLimiter, 'take' | 'refund'>,
    private readonly options: { ttlMs: number; throttleMs: number; largeGroupSize: number; largeGroupPerSecond: number },
    private readonly onPublishError: (err: unknown) => void = () => {},
  ) {
    this.throttle = { perSecond: 1000 / options.throttleMs, burst: 1 };
    this.groupThrottle = { perSecond: options.largeGroupPerSecond, burst: Math.max(1, Math.round(options.largeGroupPerSecond * 2)) };
  }

  async typing(userId: string, conversationId: string, typing: boolean): Promise<Record<string, never>> {
    const membership = await this.store.getMembership(conversationId, userId);
    if (!membership) throw new ParleyError('NOT_MEMBER');
    const large = membership.conversation.kind === 'group' && membership.conversation.memberCount > this.options.largeGroupSize;
    if (this.closed) return {};
    const key = `${conversationId}\n${userId}`;
    const entry = this.active.get(key);
    if (!typing) {
      if (entry) this.stop(key, conversationId, userId);
      return {};
    }
    if (entry) entry.refresh();
    else {
      const timer = setTimeout(() => this.stop(key, conversationId, userId), this.options.ttlMs);
      timer.unref();
      this.active.set(key, timer);
    }
    if (!(await this.limiter.take(throttleKey(conversationId, userId), this.throttle)).allowed) return {};
    if (large && !(await this.limiter.take(groupThrottleKey(conversationId), this.groupThrottle)).allowed) return {};
    // Stopped (or closed) while the limiter answered: a late "true" would outlive the "false" already sent.
    if (this.closed || !this.active.has(key)) return {};
    this.announced.add(key);
    this.forward(conversationId, userId, true);
    return {};
  }

  /** A message from the user ends their typing in that conversation. */
  clearOnSend(userId: string, conversationId: string): void {
    const key = `${conversationId}\n${userId}`;
    if (this.active.has(key)) this.stop(key, conversationId, userId);
  }

  close(): void {
    this.closed = true;
    for (const timer of this.active.values()) clearTimeout(timer);
    this.active.clear();
    this.announced.clear();
  }

  private stop(key: string, conversationId: string, userId: string): void {
    const timer = this.active.get(key);
    if (timer) clearTimeout(timer);
    this.active.delete(key);
    if (this.announced.delete(key)) this.forward(conversationId, userId, false);
    // Typing again right after a stop is news: its "true" goes out at once, not after the throttle.
    void this.limiter.refund(throttleKey(conversationId, userId), this.throttle);
  }

  private forward(conversationId: string, userId: string, typing: boolean): void {
    this.publisher
      .toConversation(conversationId, 'typing', { conversationId, userId, typing, expiresInMs: typing ? this.options.ttlMs : 0 }, userId)
      .catch(this.onPublishError);
  }
}

const throttleKey = (conversationId: string, userId: string): string => `typing:${conversationId}:${userId}`;
const groupThrottleKey = (conversationId: string): string => `typing-group:${conversationId}`;
