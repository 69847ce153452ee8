import type { Redis, Result } from 'ioredis';
import type { BackoffPolicy, Rate, RateDecision, RateLimiter } from '../limiter.js';
import { connectRedis, createRedisClient, type RedisConnectionOptions } from '../../redis/connection.js';

export interface RedisLimiterOptions extends RedisConnectionOptions {
  /** Put before every key, so that several deployments can share one Redis. @default 'parley:rl:' */
  keyPrefix?: string;
  /** Called when Redis could not answer (the call admitted); the caller logs it, at a rate of its choosing. */
  onError?: (err: unknown) => void;
}

const ALLOWED: RateDecision = { allowed: true, retryAfterMs: 0 };

/**
 * Time in every script is Redis's own clock (`TIME`), never an instance's: instances whose clocks differ still agree
 * on every bucket. Scripts that read TIME and then write are replicated by their effects (Redis 5 and newer).
 * Each script is one atomic step, so N instances share one bucket and together get its rate, not N times it.
 */
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * take: KEYS[1] the bucket (hash: tokens, ts); ARGV rate per second, burst. Returns {allowed 0|1, retryAfterMs}. The
 * key expires when the bucket would be full again (a full bucket is a fresh one).
 */
const TAKE = `${NOW}
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
  ts = now
end
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.max(1, math.ceil((1 - tokens) * 1000 / rate))
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%d', ts))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
return {allowed, wait}`;

/** refund: as take, giving one token back, never past the burst; a key Redis no longer holds is full already. */
const REFUND = `${NOW}
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
if not state[1] then return 0 end
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if now > ts then
  tokens = tokens + (now - ts) * rate / 1000
  ts = now
end
tokens = math.min(burst, tokens + 1)
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%d', ts))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
return 1`;

/**
 * fail: KEYS[1] the failures (hash: count, blockedUntil); ARGV freeFailures, baseDelayMs, maxDelayMs, forgetAfterMs.
 * Returns the ms the key is now blocked for. The key expires when the failures are forgotten: the block has passed
 * and `forgetAfterMs` went by without a failure (both measured from this failure), as the memory engine forgets them.
 */
const FAIL = `${NOW}
local free = tonumber(ARGV[1])
local base = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local forget = tonumber(ARGV[4])
local count = redis.call('HINCRBY', KEYS[1], 'count', 1)
local blockedUntil = tonumber(redis.call('HGET', KEYS[1], 'blockedUntil')) or 0
local over = count - free
if over > 0 then
  blockedUntil = now + math.min(max, base * 2 ^ math.min(over - 1, 40))
  redis.call('HSET', KEYS[1], 'blockedUntil', string.format('%d', blockedUntil))
end
redis.call('PEXPIRE', KEYS[1], math.max(forget, blockedUntil - now, 1))
return math.max(0, blockedUntil - now)`;

/** blockedFor: KEYS[1] the failures; returns the ms left of the block (0: none). */
const BLOCKED_FOR = `${NOW}
local blockedUntil = tonumber(redis.call('HGET', KEYS[1], 'blockedUntil')) or 0
return math.max(0, blockedUntil - now)`;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    parleyTake(key: string, perSecond: number, burst: number): Result<[number, number], Context>;
    parleyRefund(key: string, perSecond: number, burst: number): Result<number, Context>;
    parleyFail(key: string, free: number, base: number, max: number, forget: number): Result<number, Context>;
    parleyBlockedFor(key: string): Result<number, Context>;
  }
}

/**
 * The rate limiter on Redis: token buckets, failure back-off and memories shared by every instance (src/ratelimit/
 * limiter.ts). Each step is one Lua script (ioredis sends EVALSHA and falls back to EVAL when Redis lost its script
 * cache, after a restart), so concurrent takes from N instances never both spend the last token.
 *
 * Memory: every key expires by itself once its state equals a fresh key's (bucket full again, failures forgotten,
 * memory's time to live over), so Redis holds only keys in use; the number of keys is bounded by Redis's own
 * `maxmemory` (an operator sets it with `volatile-ttl` or `volatile-lru`: every key here has an expiry).
 *
 * Failure: as the seam says, a limiter that cannot answer admits. Commands fail at once while disconnected (no offline
 * queue) and after `commandTimeoutMs` on a silent connection, so a Redis outage costs no request more than that.
 */
export class RedisRateLimiter implements RateLimiter {
  private readonly prefix: string;
  private readonly onError: (err: unknown) => void;

  constructor(private readonly redis: Redis, options: RedisLimiterOptions) {
    this.prefix = options.keyPrefix ?? 'parley:rl:';
    this.onError = options.onError ?? (() => {});
    redis.defineCommand('parleyTake', { numberOfKeys: 1, lua: TAKE });
    redis.defineCommand('parleyRefund', { numberOfKeys: 1, lua: REFUND });
    redis.defineCommand('parleyFail', { numberOfKeys: 1, lua: FAIL });
    redis.defineCommand('parleyBlockedFor', { numberOfKeys: 1, lua: BLOCKED_FOR });
  }

  take(key: string, rate: Rate): Promise<RateDecision> {
    return this.admitOnFailure(async () => {
      const [allowed, retryAfterMs] = await this.redis.parleyTake(this.prefix + 'b:' + key, rate.perSecond, rate.burst);
      return allowed === 1 ? ALLOWED : { allowed: false, retryAfterMs: Math.max(1, retryAfterMs) };
    }, ALLOWED);
  }

  refund(key: string, rate: Rate): Promise<void> {
    return this.admitOnFailure(async () => {
      await this.redis.parleyRefund(this.prefix + 'b:' + key, rate.perSecond, rate.burst);
    }, undefined);
  }

  blockedFor(key: string): Promise<number> {
    return this.admitOnFailure(() => this.redis.parleyBlockedFor(this.prefix + 'f:' + key), 0);
  }

  fail(key: string, policy: BackoffPolicy): Promise<number> {
    return this.admitOnFailure(
      () => this.redis.parleyFail(this.prefix + 'f:' + key, policy.freeFailures, policy.baseDelayMs, policy.maxDelayMs, policy.forgetAfterMs),
      0,
    );
  }

  clear(key: string): Promise<void> {
    return this.admitOnFailure(async () => {
      await this.redis.del(this.prefix + 'f:' + key);
    }, undefined);
  }

  remember(key: string, ttlMs: number): Promise<void> {
    return this.admitOnFailure(async () => {
      await this.redis.set(this.prefix + 'm:' + key, '1', 'PX', Math.max(1, Math.ceil(ttlMs)));
    }, undefined);
  }

  recalls(key: string): Promise<boolean> {
    return this.admitOnFailure(async () => (await this.redis.exists(this.prefix + 'm:' + key)) === 1, false);
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }

  /** The seam's rule: an engine that cannot answer resolves as if nothing limited the caller. */
  private async admitOnFailure<T>(work: () => Promise<T>, admitted: T): Promise<T> {
    try {
      return await work();
    } catch (err) {
      this.onError(err);
      return admitted;
    }
  }
}

export async function createRedisRateLimiter(options: RedisLimiterOptions): Promise<RedisRateLimiter> {
  const redis = createRedisClient({ ...options, name: `${options.name ?? 'parley'}:ratelimit` });
  await connectRedis(redis, options.url, options.connectTimeoutMs);
  return new RedisRateLimiter(redis, options);
}
