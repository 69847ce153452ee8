import type { BackoffPolicy, Rate, RateDecision, RateLimiter } from '../limiter.js';
import { TokenBucket } from '../token-bucket.js';

export interface MemoryLimiterOptions {
  /** Most keys kept of each kind (buckets, failure records, memories); past it the least recently used is dropped. */
  maxKeys?: number;
  /** How often idle keys are swept out, in ms. */
  sweepIntervalMs?: number;
  clock?: () => number;
}

interface Failures {
  count: number;
  lastAt: number;
  blockedUntil: number;
  forgetAfterMs: number;
}

const ALLOWED: RateDecision = { allowed: true, retryAfterMs: 0 };

/**
 * The in-process rate limiter: limits hold per instance. Memory is bounded twice: a sweep drops keys that are idle
 * (full buckets, forgotten failures, expired memories), and each map keeps at most `maxKeys`, dropping the least
 * recently used first — under a flood of fresh keys (one per spoofed name) the oldest state is lost, never memory.
 */
export class MemoryRateLimiter implements RateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly failures = new Map<string, Failures>();
  private readonly memories = new Map<string, number>();
  private readonly maxKeys: number;
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout;

  constructor(options: MemoryLimiterOptions = {}) {
    this.maxKeys = options.maxKeys ?? 100_000;
    this.now = options.clock ?? Date.now;
    this.sweeper = setInterval(() => this.sweep(), options.sweepIntervalMs ?? 60_000);
    this.sweeper.unref();
  }

  /** Keys currently held, of every kind (for tests and metrics). */
  get size(): number {
    return this.buckets.size + this.failures.size + this.memories.size;
  }

  async take(key: string, rate: Rate): Promise<RateDecision> {
    const now = this.now();
    const bucket = touch(this.buckets, key) ?? new TokenBucket(rate.perSecond, rate.burst, now);
    this.put(this.buckets, key, bucket);
    if (bucket.take(now)) return ALLOWED;
    return { allowed: false, retryAfterMs: Math.max(1, bucket.waitMs(now)) };
  }

  async refund(key: string, _rate: Rate): Promise<void> {
    this.buckets.get(key)?.refund(this.now());
  }

  async blockedFor(key: string): Promise<number> {
    const record = this.liveFailures(key, this.now());
    return record ? Math.max(0, record.blockedUntil - this.now()) : 0;
  }

  async fail(key: string, policy: BackoffPolicy): Promise<number> {
    const now = this.now();
    const record = this.liveFailures(key, now) ?? { count: 0, lastAt: now, blockedUntil: 0, forgetAfterMs: policy.forgetAfterMs };
    record.count++;
    record.lastAt = now;
    record.forgetAfterMs = policy.forgetAfterMs;
    const over = record.count - policy.freeFailures;
    if (over > 0) {
      // 2^(over-1) overflows to Infinity long before it matters; min() keeps the cap.
      record.blockedUntil = now + Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(over - 1, 40));
    }
    this.put(this.failures, key, record);
    return Math.max(0, record.blockedUntil - now);
  }

  async clear(key: string): Promise<void> {
    this.failures.delete(key);
  }

  async remember(key: string, ttlMs: number): Promise<void> {
    this.memories.delete(key);
    this.put(this.memories, key, this.now() + ttlMs);
  }

  async recalls(key: string): Promise<boolean> {
    const until = this.memories.get(key);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.memories.delete(key);
    return false;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }

  /** Drop every key that holds nothing a fresh key would not. */
  sweep(): void {
    const now = this.now();
    for (const [key, bucket] of this.buckets) if (bucket.isFull(now)) this.buckets.delete(key);
    for (const [key, record] of this.failures) if (isForgotten(record, now)) this.failures.delete(key);
    for (const [key, until] of this.memories) if (until <= now) this.memories.delete(key);
  }

  private liveFailures(key: string, now: number): Failures | undefined {
    const record = this.failures.get(key);
    if (record && isForgotten(record, now)) {
      this.failures.delete(key);
      return undefined;
    }
    return record;
  }

  /** Insert or refresh `key` as the most recently used, dropping the least recently used past the cap. */
  private put<V>(map: Map<string, V>, key: string, value: V): void {
    map.delete(key);
    map.set(key, value);
    if (map.size > this.maxKeys) map.delete(map.keys().next().value!);
  }
}

/** The value of `key`, removed from the map (put() re-inserts it as the most recent). */
function touch<V>(map: Map<string, V>, key: string): V | undefined {
  const value = map.get(key);
  if (value !== undefined) map.delete(key);
  return value;
}

function isForgotten(record: Failures, now: number): boolean {
  return now >= record.blockedUntil && now - record.lastAt >= record.forgetAfterMs;
}

export function createMemoryRateLimiter(options: MemoryLimiterOptions = {}): RateLimiter {
  return new MemoryRateLimiter(options);
}
