import { rateLimited } from '../protocol/errors.js';

/** The least `retryAfterMs` a refusal carries: retrying sooner only spends the caller's and the server's time. */
const MIN_RETRY_MS = 50;

/**
 * At most `max` operations of one kind running at once in this process, and at most `perKey` of them for one key
 * (a user), so that one user cannot take every slot. One more is refused at once with RATE_LIMITED (never queued: a
 * queue would only hold the caller longer). Its `retryAfterMs` is when a slot is likely to be free again: the recent
 * mean duration of one operation, or how long the oldest running one has run if that is longer (no operation may have
 * finished yet), at least MIN_RETRY_MS.
 */
export class ConcurrencyLimit {
  private readonly running = new Map<number, number>(); // ticket → start time
  private readonly byKey = new Map<string, number>();
  private nextTicket = 0;
  /** Exponentially weighted mean duration of a completed operation, in ms. */
  private meanMs = 0;

  constructor(
    private readonly max: number,
    private readonly perKey: number,
    private readonly refusal: string,
    private readonly clock: () => number = Date.now,
  ) {}

  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const mine = this.byKey.get(key) ?? 0;
    if (this.running.size >= this.max || mine >= this.perKey) throw rateLimited(this.retryAfterMs(), this.refusal);
    const ticket = this.nextTicket++;
    const started = this.clock();
    this.running.set(ticket, started);
    this.byKey.set(key, mine + 1);
    try {
      return await work();
    } finally {
      this.running.delete(ticket);
      const left = (this.byKey.get(key) ?? 1) - 1;
      if (left === 0) this.byKey.delete(key);
      else this.byKey.set(key, left);
      const took = this.clock() - started;
      this.meanMs = this.meanMs === 0 ? took : this.meanMs * 0.8 + took * 0.2;
    }
  }

  private retryAfterMs(): number {
    const now = this.clock();
    let oldest = 0;
    for (const started of this.running.values()) oldest = Math.max(oldest, now - started);
    return Math.max(MIN_RETRY_MS, this.meanMs, oldest);
  }
}
