import type { Store } from '../store/store.js';
import { ParleyError } from '../protocol/errors.js';
import type { Publisher } from './publisher.js';

/**
 * Typing indicators. A "typing: true" is forwarded to the other members at most once per `throttleMs` per user and
 * conversation, and expires by itself: `ttlMs` after the last "true" without a refresh, the others receive
 * "typing: false". Each event also carries `expiresInMs`, so a client can expire it even if the stop is lost.
 */
export class TypingService {
  private readonly active = new Map<string, { timer: NodeJS.Timeout; lastForwardedAt: number }>();
  /** After close() nothing is armed or published: a request finishing during shutdown must not outlive the bus. */
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly publisher: Publisher,
    private readonly options: { ttlMs: number; throttleMs: number },
    private readonly now: () => number = Date.now,
    private readonly onPublishError: (err: unknown) => void = () => {},
  ) {}

  async typing(userId: string, conversationId: string, typing: boolean): Promise<Record<string, never>> {
    if (!(await this.store.getMember(conversationId, userId))) throw new ParleyError('NOT_MEMBER');
    if (this.closed) return {};
    const key = `${conversationId}\n${userId}`;
    const entry = this.active.get(key);
    if (!typing) {
      if (entry) this.stop(key, conversationId, userId);
      return {};
    }
    const now = this.now();
    if (entry) {
      entry.timer.refresh();
      if (now - entry.lastForwardedAt < this.options.throttleMs) return {};
      entry.lastForwardedAt = now;
    } else {
      const timer = setTimeout(() => this.stop(key, conversationId, userId), this.options.ttlMs);
      timer.unref();
      this.active.set(key, { timer, lastForwardedAt: now });
    }
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
    for (const { timer } of this.active.values()) clearTimeout(timer);
    this.active.clear();
  }

  private stop(key: string, conversationId: string, userId: string): void {
    const entry = this.active.get(key);
    if (entry) clearTimeout(entry.timer);
    this.active.delete(key);
    this.forward(conversationId, userId, false);
  }

  private forward(conversationId: string, userId: string, typing: boolean): void {
    this.publisher
      .toConversation(conversationId, 'typing', { conversationId, userId, typing, expiresInMs: typing ? this.options.ttlMs : 0 }, userId)
      .catch(this.onPublishError);
  }
}
