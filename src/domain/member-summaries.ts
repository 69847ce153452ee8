import type { Store } from '../store/store.js';
import type { Publisher } from './publisher.js';

export interface MemberSummaryOptions {
  /** Groups with more members than this get `member.summary` instead of one `member.joined` / `member.left` each. */
  summaryAbove: number;
  /** The summary window, in ms. */
  batchMs: number;
}

/**
 * Joins and departures of large groups, summed: one `member.summary` event per group per `batchMs` window, holding
 * how many joined and left in it and the member count after them (read from the store when the window closes).
 *
 * Why: one `member.joined` per join to every member makes N joins cost N² frames. Members still converge: the
 * member list is in `member.list`, and `sync` returns each member change (the store's change log is unchanged).
 */
export class MemberSummaries {
  private pending = new Map<string, { joined: number; left: number }>();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly store: Store,
    private readonly publisher: Publisher,
    private readonly options: MemberSummaryOptions,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  /** Whether a group of `memberCount` members is announced by summary (true) or one event per change (false). */
  summarises(kind: 'direct' | 'group', memberCount: number): boolean {
    return kind === 'group' && memberCount > this.options.summaryAbove;
  }

  /** Count a join or departure; the window's summary is published when it closes. */
  note(conversationId: string, change: 'joined' | 'left'): void {
    if (this.closed) return;
    let counts = this.pending.get(conversationId);
    if (!counts) this.pending.set(conversationId, (counts = { joined: 0, left: 0 }));
    counts[change]++;
    if (!this.timer) {
      this.timer = setTimeout(() => this.run(), this.options.batchMs);
      this.timer.unref();
    }
  }

  /** Stop the timer (what is pending is dropped: clients converge with `sync`), and wait for a flush running. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await Promise.allSettled([...this.running]);
  }

  private run(): void {
    this.timer = null;
    if (this.closed) return;
    const running = this.flush();
    this.running.add(running);
    void running.finally(() => this.running.delete(running));
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = new Map();
    await Promise.all([...batch].map(async ([conversationId, { joined, left }]) => {
      try {
        const conversation = await this.store.getConversation(conversationId);
        if (!conversation) return; // deleted meanwhile: its members were told with conversation.removed
        await this.publisher.toConversation(conversationId, 'member.summary', { conversationId, joined, left, memberCount: conversation.memberCount });
      } catch (err) {
        this.onError(err);
      }
    }));
  }
}
