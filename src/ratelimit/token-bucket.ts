/** A rate: `burst` at once at most, refilled at `perSecond`. */
export interface Rate {
  perSecond: number;
  burst: number;
}

/**
 * A token bucket: `burst` tokens at most, refilled at `perSecond`. `take()` spends one token if there is one.
 * Time comes from the caller, so one clock read serves many buckets and tests need no timers.
 */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(private readonly perSecond: number, private readonly burst: number, now: number) {
    this.tokens = burst;
    this.updatedAt = now;
  }

  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Give back one token `take` spent (the work it paid for was refused further on and changed nothing); never past `burst`. */
  refund(now: number): void {
    this.refill(now);
    this.tokens = Math.min(this.burst, this.tokens + 1);
  }

  /** Milliseconds from `now` until a token is available (0 if one is). */
  waitMs(now: number): number {
    this.refill(now);
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) * 1000) / this.perSecond);
  }

  /** Whether the bucket is full at `now`: it then behaves exactly like a new one and may be forgotten. */
  isFull(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.burst;
  }

  private refill(now: number): void {
    const elapsed = now - this.updatedAt;
    if (elapsed > 0) {
      this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.perSecond) / 1000);
      this.updatedAt = now;
    }
  }
}
