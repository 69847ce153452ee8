import { rateLimited } from '../protocol/errors.js';

/**
 * At most `max` operations of one kind running at once in this process. One more is refused at once with
 * RATE_LIMITED (never queued: a queue would only hold the caller longer), its `retryAfterMs` being the recent mean
 * duration of one operation, when a slot is likely to be free again.
 */
export class ConcurrencyLimit {
  private running = 0;
  /** Exponentially weighted mean duration of a completed operation, in ms. */
  private meanMs = 0;

  constructor(
    private readonly max: number,
    private readonly refusal: string,
    private readonly clock: () => number = Date.now,
  ) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.running >= this.max) throw rateLimited(Math.max(1, this.meanMs), this.refusal);
    this.running++;
    const started = this.clock();
    try {
      return await work();
    } finally {
      this.running--;
      const took = this.clock() - started;
      this.meanMs = this.meanMs === 0 ? took : this.meanMs * 0.8 + took * 0.2;
    }
  }
}
