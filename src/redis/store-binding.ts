import type { Redis } from 'ioredis';
import { ParleyError } from '../protocol/errors.js';
import { connectRedis, createRedisClient, type RedisConnectionOptions } from './connection.js';

/**
 * One store per cluster. Instances on one Redis and key prefix are one cluster: they must share one store, or each
 * would hold its own messages and members while their events cross (an instance on its own SQLite file beside others
 * on PostgreSQL, or two PostgreSQL databases). Each instance keeps `<prefix>store` set to its store's id
 * (Store.storeId), expiring after `ttlMs` and refreshed every second; an instance whose store differs from the
 * one a live instance keeps there is refused at start. When every instance of a cluster has stopped, the key expires
 * and the cluster may start on another store.
 *
 * A Redis that restarts empty (or is flushed) forgets the key: each instance sets it again as soon as its connection
 * is back ('ready'), at each refresh, and at each `check` (which /readyz runs), so that a newcomer on another store
 * finds it set again within moments instead of a refresh period. An instance whose refresh finds another store's id
 * (such a newcomer won the race) says so in an error log and stays ready: the newcomer is the one at fault, and
 * taking the whole cluster out of its balancer for it would be an outage. The key then expires `ttlMs` after that
 * newcomer stops, and the cluster's instances set it again.
 */
export interface StoreBindingOptions extends RedisConnectionOptions {
  keyPrefix: string;
  storeId: string;
  /** How long the key outlives the last instance, ms. @default 20000 */
  ttlMs?: number;
  /** A refresh failed (Redis unreachable: retried at the next one) or found another store's id. */
  onError?: (error: unknown) => void;
}

/** How often each instance sets the key again, ms. */
const REFRESH_MS = 1000;

/** SET the key to ARGV[1] unless it holds another value; returns that other value, or false. */
const BIND = `
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return current end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false`;

export class StoreBinding {
  private readonly timer: NodeJS.Timeout;

  private constructor(private readonly redis: Redis, private readonly options: StoreBindingOptions) {
    const refresh = (): void => void this.bind().catch((err: unknown) => this.options.onError?.(err));
    // Every second (one EVAL): a Redis emptied without a restart (FLUSHALL, eviction) gives no 'ready' to react to,
    // and until the key is set again an instance on another store could start.
    this.timer = setInterval(refresh, Math.min(REFRESH_MS, this.ttlMs / 4));
    this.timer.unref();
    // After a reconnect: the Redis may be a new, empty one.
    redis.on('ready', refresh);
  }

  /**
   * Set the key again now (/readyz runs this). Rejects when Redis cannot be reached; another store's id in the key is
   * reported to `onError` (see above) and resolves.
   */
  async check(): Promise<void> {
    try {
      await this.bind();
    } catch (err) {
      if (!(err instanceof ParleyError && err.code === 'CONFLICT')) throw err;
      this.options.onError?.(err);
    }
  }

  /** Connect, and refuse (CONFLICT, details `{otherStoreId}`) when a live instance of the cluster uses another store. */
  static async bind(options: StoreBindingOptions): Promise<StoreBinding> {
    const redis = createRedisClient({ ...options, name: `${options.name ?? 'parley'}:store-binding` });
    await connectRedis(redis, options.url, options.connectTimeoutMs);
    const binding = new StoreBinding(redis, options);
    try {
      await binding.bind();
    } catch (err) {
      await binding.close();
      throw err;
    }
    return binding;
  }

  private get ttlMs(): number {
    return this.options.ttlMs ?? 20_000;
  }

  private async bind(): Promise<void> {
    const other = await this.redis.eval(BIND, 1, `${this.options.keyPrefix}store`, this.options.storeId, String(this.ttlMs));
    if (typeof other === 'string') {
      throw new ParleyError('CONFLICT', `instances on this Redis and key prefix use another store (id ${other}; this one's is ${this.options.storeId})`, { otherStoreId: other });
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.redis.disconnect();
  }
}
