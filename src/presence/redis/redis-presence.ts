import { randomUUID } from 'node:crypto';
import type { Redis, Result } from 'ioredis';
import type { Presence } from '../presence.js';
import { connectRedis, createRedisClient, unavailable, type RedisConnectionOptions } from '../../redis/connection.js';

export interface RedisPresenceOptions extends RedisConnectionOptions {
  /** A connection not touched for this long (in the callers' `now`) counts as gone. */
  ttlMs: number;
  /** Put before every key, so that several deployments can share one Redis. @default 'parley:presence:' */
  keyPrefix?: string;
  /** How long one `sweep` claims the sweeping for its instance, in ms. @default ttlMs */
  sweepClaimMs?: number;
  /**
   * Real time after its last connect or touch after which Redis drops a user's keys by itself (PEXPIRE), so nothing
   * outlives a cluster that stopped. At least three times the ttl. @default 3 × ttlMs
   */
  keyExpiryMs?: number;
}

/*
 * Keys, for user `u` (prefix P):
 *   P c:u     ZSET connectionId → time of its last connect or touch (the callers' `now`, ms)
 *   P u:u     HASH on = '1' while the user is reported online, seen = lastSeen (ms)
 *   P online  ZSET u → the latest touch of u's connections, for users reported online (what sweep looks through)
 *   P offline ZSET u → when u was reported offline (what sweep forgets after the ttl)
 *   P sweep   STRING '<claimed until>|<instance>': who sweeps now
 * A connection is live at `now` when its time ≥ now − ttl (`liveFrom`), as on the memory engine.
 * Every step is one Lua script: atomic, so instances never see half a step. The per-user keys a batch step (touch,
 * get, sweep) reaches are built inside its script, which a single Redis node or a Sentinel pair allows and a Redis
 * Cluster does not (presence on a Cluster is future work).
 */

/** Shared by connect and disconnect: move the user's entry in `online` to their latest live connection. */
const RAISE_ONLINE = `local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] then redis.call('ZADD', KEYS[3], top[2], ARGV[5]) end`;

/** Keep `seen` the latest time any instance reported (a late call with an older `now` leaves it). */
const RAISE_SEEN = `local seen = tonumber(redis.call('HGET', KEYS[2], 'seen'))
if not seen or now > seen then redis.call('HSET', KEYS[2], 'seen', ARGV[2]) end`;

/** KEYS c:u, u:u, online, offline; ARGV connectionId, now, liveFrom, keyExpiryMs, userId. Returns 1 when it became online. */
const CONNECT = `local now = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('ZADD', KEYS[1], now, ARGV[1])
${RAISE_SEEN}
${RAISE_ONLINE}
redis.call('ZREM', KEYS[4], ARGV[5])
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
if redis.call('HGET', KEYS[2], 'on') == '1' then return 0 end
redis.call('HSET', KEYS[2], 'on', '1')
return 1`;

/** Same keys and arguments as CONNECT. Returns 1 when the user went offline (their last live connection went). */
const DISCONNECT = `if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local now = tonumber(ARGV[2])
${RAISE_SEEN}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
if redis.call('HGET', KEYS[2], 'on') ~= '1' then return 0 end
if redis.call('ZCARD', KEYS[1]) > 0 then
  ${RAISE_ONLINE}
  return 0
end
redis.call('HSET', KEYS[2], 'on', '0')
redis.call('ZREM', KEYS[3], ARGV[5])
redis.call('ZADD', KEYS[4], now, ARGV[5])
redis.call('PEXPIRE', KEYS[4], ARGV[4])
return 1`;

/**
 * KEYS online; ARGV now, liveFrom, keyExpiryMs, prefix, then userId, connectionId pairs. Refreshes the live ones;
 * returns the 1-based numbers of the pairs it did not find live.
 */
const TOUCH = `local now = tonumber(ARGV[1])
local liveFrom = tonumber(ARGV[2])
local gone = {}
local n = 0
for i = 5, #ARGV, 2 do
  n = n + 1
  local u = ARGV[i]
  local ck = ARGV[4] .. 'c:' .. u
  local uk = ARGV[4] .. 'u:' .. u
  local t = tonumber(redis.call('ZSCORE', ck, ARGV[i + 1]))
  if not t or t < liveFrom then
    gone[#gone + 1] = n
  else
    if now > t then redis.call('ZADD', ck, now, ARGV[i + 1]) end
    local seen = tonumber(redis.call('HGET', uk, 'seen'))
    if not seen or now > seen then redis.call('HSET', uk, 'seen', ARGV[1]) end
    if redis.call('HGET', uk, 'on') == '1' then redis.call('ZADD', KEYS[1], 'GT', now, u) end
    redis.call('PEXPIRE', ck, ARGV[3])
    redis.call('PEXPIRE', uk, ARGV[3])
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return gone`;

/** ARGV liveFrom, prefix, then userIds. Returns online (0 or 1) and seen ('' when none) for each, flat. */
const GET = `local out = {}
for i = 3, #ARGV do
  local live = redis.call('ZCOUNT', ARGV[2] .. 'c:' .. ARGV[i], ARGV[1], '+inf')
  out[#out + 1] = live > 0 and 1 or 0
  out[#out + 1] = redis.call('HGET', ARGV[2] .. 'u:' .. ARGV[i], 'seen') or ''
end
return out`;

/**
 * KEYS online, offline, sweep; ARGV now, liveFrom, instance, claimedUntil, claimMs, batch, prefix, keyExpiryMs.
 * Returns false when another instance holds the claim; else {users looked at, expired users}.
 */
const SWEEP = `local now = tonumber(ARGV[1])
local claim = redis.call('GET', KEYS[3])
if claim then
  local bar = string.find(claim, '|', 1, true)
  if string.sub(claim, bar + 1) ~= ARGV[3] and tonumber(string.sub(claim, 1, bar - 1)) > now then return false end
end
redis.call('SET', KEYS[3], ARGV[4] .. '|' .. ARGV[3], 'PX', ARGV[5])
local expired = {}
local users = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0, ARGV[6])
for _, u in ipairs(users) do
  local ck = ARGV[7] .. 'c:' .. u
  redis.call('ZREMRANGEBYSCORE', ck, '-inf', '(' .. ARGV[2])
  if redis.call('ZCARD', ck) == 0 then
    redis.call('HSET', ARGV[7] .. 'u:' .. u, 'on', '0')
    redis.call('PEXPIRE', ARGV[7] .. 'u:' .. u, ARGV[8])
    redis.call('ZREM', KEYS[1], u)
    redis.call('ZADD', KEYS[2], now, u)
    expired[#expired + 1] = u
  else
    local top = redis.call('ZRANGE', ck, -1, -1, 'WITHSCORES')
    redis.call('ZADD', KEYS[1], top[2], u)
  end
end
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[2], 'LIMIT', 0, ARGV[6])
for _, u in ipairs(old) do
  redis.call('ZREM', KEYS[2], u)
  local uk = ARGV[7] .. 'u:' .. u
  local ck = ARGV[7] .. 'c:' .. u
  if redis.call('HGET', uk, 'on') ~= '1' and redis.call('ZCARD', ck) == 0 then redis.call('DEL', uk, ck) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[8])
redis.call('PEXPIRE', KEYS[2], ARGV[8])
return {#users + #old, expired}`;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    parleyPresenceConnect(c: string, u: string, online: string, offline: string, ...args: Array<string | number>): Result<number, Context>;
    parleyPresenceDisconnect(c: string, u: string, online: string, offline: string, ...args: Array<string | number>): Result<number, Context>;
    parleyPresenceTouch(online: string, ...args: Array<string | number>): Result<number[], Context>;
    parleyPresenceGet(...args: Array<string | number>): Result<Array<number | string>, Context>;
    parleyPresenceSweep(online: string, offline: string, sweep: string, ...args: Array<string | number>): Result<[number, string[]] | null, Context>;
  }
}

/** Pairs per TOUCH script and users per GET script: one script runs alone in Redis, so keep each short. */
const BATCH = 500;
/** Rounds of one sweep, at most (each looks at up to BATCH users); what is left waits for the next sweep. */
const MAX_SWEEP_ROUNDS = 20;

/**
 * Presence on Redis, shared by every instance (src/presence/presence.ts), with the memory engine's semantics: the
 * same contract runs on both. Where each guarantee comes from:
 * - Atomic steps: each call is one Lua script (ioredis sends EVALSHA, and EVAL when Redis lost its script cache).
 * - Expiry by itself: every time is the callers' `now`; a connection not touched within the ttl is not live, and
 *   the users whose connections all lapsed are found by `sweep` through the `online` set scored by last touch, so a
 *   dead instance's users go offline at the next sweep of any instance. Every key also expires in real time
 *   (`keyExpiryMs` after it was last written; the shared sets are written by every step), so a cluster that stopped
 *   leaves nothing behind.
 * - Forgotten entries: `touch` returns those it did not find live, and PresenceService registers again the ones
 *   whose connection this instance still holds, so a restarted (empty) Redis is refilled by the next heartbeat round.
 * - No overtaking: transitions are judged per connection inside the script, so a disconnect on one instance cannot
 *   report offline a user who has a live connection registered by another; `seen` only moves forward.
 * - One sweeper: `sweep` claims the sweeping for `sweepClaimMs` (a key naming the instance, with an expiry); another
 *   instance's sweep meanwhile returns []. The claim lapses when its holder stops (dies), and the next sweep of any
 *   instance takes it. Correctness does not depend on it: the sweep script is atomic, and reports each user once.
 * Failures reject with ParleyError UNAVAILABLE (PresenceService logs them; presence is not worth failing a chat for).
 */
export class RedisPresence implements Presence {
  private readonly prefix: string;
  private readonly ttlMs: number;
  private readonly claimMs: number;
  private readonly keyExpiryMs: number;
  /** Names this instance in the sweep claim. */
  private readonly instance = randomUUID();

  constructor(private readonly redis: Redis, options: RedisPresenceOptions) {
    if (!Number.isFinite(options.ttlMs) || options.ttlMs <= 0) {
      throw new RangeError(`redis presence: ttlMs must be a positive number, got ${options.ttlMs}`);
    }
    this.ttlMs = options.ttlMs;
    this.prefix = options.keyPrefix ?? 'parley:presence:';
    this.claimMs = Math.max(1, Math.round(options.sweepClaimMs ?? options.ttlMs));
    this.keyExpiryMs = Math.max(3 * options.ttlMs, Math.round(options.keyExpiryMs ?? 3 * options.ttlMs));
    redis.defineCommand('parleyPresenceConnect', { numberOfKeys: 4, lua: CONNECT });
    redis.defineCommand('parleyPresenceDisconnect', { numberOfKeys: 4, lua: DISCONNECT });
    redis.defineCommand('parleyPresenceTouch', { numberOfKeys: 1, lua: TOUCH });
    redis.defineCommand('parleyPresenceGet', { numberOfKeys: 0, lua: GET });
    redis.defineCommand('parleyPresenceSweep', { numberOfKeys: 3, lua: SWEEP });
  }

  async connect(userId: string, connectionId: string, now: number): Promise<{ becameOnline: boolean }> {
    const became = await this.call('connect', () =>
      this.redis.parleyPresenceConnect(...this.userKeys(userId), connectionId, now, now - this.ttlMs, this.keyExpiryMs, userId),
    );
    return { becameOnline: became === 1 };
  }

  async disconnect(userId: string, connectionId: string, now: number): Promise<{ becameOffline: boolean }> {
    const became = await this.call('disconnect', () =>
      this.redis.parleyPresenceDisconnect(...this.userKeys(userId), connectionId, now, now - this.ttlMs, this.keyExpiryMs, userId),
    );
    return { becameOffline: became === 1 };
  }

  async touch(entries: Array<{ userId: string; connectionId: string }>, now: number): Promise<Array<{ userId: string; connectionId: string }>> {
    const gone: Array<{ userId: string; connectionId: string }> = [];
    for (let start = 0; start < entries.length; start += BATCH) {
      const batch = entries.slice(start, start + BATCH);
      const args: Array<string | number> = [now, now - this.ttlMs, this.keyExpiryMs, this.prefix];
      for (const { userId, connectionId } of batch) args.push(userId, connectionId);
      const numbers = await this.call('touch', () => this.redis.parleyPresenceTouch(this.prefix + 'online', ...args));
      for (const n of numbers) gone.push(batch[n - 1]!);
    }
    return gone;
  }

  async get(userIds: string[], now: number): Promise<Array<{ userId: string; online: boolean; lastSeen: number | null }>> {
    const states: Array<{ userId: string; online: boolean; lastSeen: number | null }> = [];
    for (let start = 0; start < userIds.length; start += BATCH) {
      const batch = userIds.slice(start, start + BATCH);
      const flat = await this.call('get', () => this.redis.parleyPresenceGet(now - this.ttlMs, this.prefix, ...batch));
      batch.forEach((userId, i) => {
        const seen = flat[2 * i + 1];
        states.push({ userId, online: flat[2 * i] === 1, lastSeen: seen === '' || seen === undefined ? null : Number(seen) });
      });
    }
    return states;
  }

  async sweep(now: number): Promise<string[]> {
    const expired: string[] = [];
    for (let round = 0; round < MAX_SWEEP_ROUNDS; round++) {
      const result = await this.call('sweep', () =>
        this.redis.parleyPresenceSweep(
          this.prefix + 'online', this.prefix + 'offline', this.prefix + 'sweep',
          now, now - this.ttlMs, this.instance, now + this.claimMs, this.claimMs, BATCH, this.prefix, this.keyExpiryMs,
        ),
      );
      if (result === null) break; // another instance sweeps now
      const [lookedAt, users] = result;
      expired.push(...users);
      if (lookedAt < BATCH) break;
    }
    return expired;
  }

  async close(): Promise<void> {
    // The entries stay: this instance's users are another instance's to sweep (or PresenceService disconnected them).
    this.redis.disconnect();
  }

  private userKeys(userId: string): [string, string, string, string] {
    return [this.prefix + 'c:' + userId, this.prefix + 'u:' + userId, this.prefix + 'online', this.prefix + 'offline'];
  }

  private async call<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      throw unavailable(`redis presence: ${what} failed`, err);
    }
  }
}

export async function createRedisPresence(options: RedisPresenceOptions): Promise<RedisPresence> {
  const redis = createRedisClient({ ...options, name: `${options.name ?? 'parley'}:presence` });
  await connectRedis(redis, options.url, options.connectTimeoutMs);
  return new RedisPresence(redis, options);
}
