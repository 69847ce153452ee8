import type { Rate } from './token-bucket.js';

export type { Rate } from './token-bucket.js';

/** The answer of a rate check: allowed, or refused with the time until a retry can succeed. */
export interface RateDecision {
  allowed: boolean;
  /** 0 when allowed; otherwise milliseconds until one more is allowed (an integer ≥ 1). */
  retryAfterMs: number;
}

/**
 * Growing delays after failures: the first `freeFailures` cost nothing; failure number `freeFailures + n` blocks the
 * key for `baseDelayMs · 2^(n-1)`, at most `maxDelayMs`. A key without a failure for `forgetAfterMs` starts over.
 */
export interface BackoffPolicy {
  freeFailures: number;
  baseDelayMs: number;
  maxDelayMs: number;
  forgetAfterMs: number;
}

/**
 * The rate-limit seam: named counters shared by everything that limits a user or a client address (the gateway's
 * per-user message rate, the REST API's per-address rates, login throttling). Keys are opaque strings chosen by the
 * caller (`message:<userId>`, `rest:<address>`…). An engine shared by several instances (for example over Redis)
 * makes every limit hold across them; the memory engine holds per process.
 *
 * Guarantees every engine gives:
 * - Bounded memory: a key whose state equals a fresh key's (a full bucket, failures forgotten, a memory expired) may
 *   be dropped at any time, and is when idle; the number of keys is capped.
 * - Every method resolves; an engine that cannot answer resolves "allowed" (a limiter outage must not stop the chat).
 */
export interface RateLimiter {
  /** Spend one token of the bucket `key` (a new key starts full, at `rate`). */
  take(key: string, rate: Rate): Promise<RateDecision>;
  /**
   * Give back one token `take` spent on `key` (the work it paid for was refused further on, for example by a busy
   * store, and changed nothing); never past the bucket's burst. A key the engine no longer holds is full already.
   */
  refund(key: string, rate: Rate): Promise<void>;
  /** Milliseconds `key` stays blocked by its failures (0: not blocked). */
  blockedFor(key: string): Promise<number>;
  /** Record a failure of `key` under `policy`; resolves with the milliseconds it is now blocked for. */
  fail(key: string, policy: BackoffPolicy): Promise<number>;
  /** Forget the failures of `key` (after a success). */
  clear(key: string): Promise<void>;
  /** Remember `key` for `ttlMs` (for example "this address logged in to this account"). */
  remember(key: string, ttlMs: number): Promise<void>;
  /** Whether `key` is remembered now. */
  recalls(key: string): Promise<boolean>;
  close(): Promise<void>;
}

/** The key of a user's budget (`message`, `search`…), shared by the WebSocket and REST APIs. */
export const userBudgetKey = (budget: string, userId: string): string => `${budget}:${userId}`;
