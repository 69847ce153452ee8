import type { Redis } from 'ioredis';
import { ParleyError } from '../protocol/errors.js';
import { connectRedis, createRedisClient, type RedisConnectionOptions } from './connection.js';

/**
 * One store per cluster. Instances on one Redis and key prefix are one cluster: they must share one store, or each
 * would hold its own messages and members while their events cross (an instance on its own SQLite file beside others
 * on PostgreSQL, or two PostgreSQL databases). Each instance keeps `<prefix>store` set to its store's id
 * (Store.storeId), expiring after `ttlMs` and refreshed every `ttlMs` / 3; an instance whose store differs from the
 * one a live instance keeps there is refused at start. When every instance of a cluster has stopped, the key expires
 * and the cluster may start on another store.
 */
export interface StoreBindingOptions extends RedisConnectionOptions {
  keyPrefix: string;
  storeId: string;
  /** @default 60000 */
  ttlMs?: number;
  /** A refresh failed (Redis unreachable: retried at the next one) or found another store's id. */
  onError?: (error: unknown) => void;
}

/** SET the key to ARGV[1] unless it holds another value; returns that other value, or false. */
const BIND = `
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return current end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false`;

export class StoreBinding {
  private readonly timer: NodeJS.Timeout;

  private constructor(private readonly redis: Redis, private readonly options: StoreBindingOptions) {
    this.timer = setInterval(() => void this.bind().catch((err: unknown) => this.options.onError?.(err)), this.ttlMs / 3);
    this.timer.unref();
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
    return this.options.ttlMs ?? 60_000;
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
