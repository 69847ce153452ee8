import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawClient } from './raw-client.js';
import { startServer, type TestServer } from './server.js';
import { startRedis, type RedisService } from './services/redis.js';

/**
 * Server processes on one real redis-server (bus, presence and rate limits all `redis`) and, standing in for the
 * shared database of a cluster, one SQLite file: what crosses instances then crosses only through Redis. `env` adds
 * settings to every instance; `connect` opens a RawClient that `close` closes with everything else.
 */
export interface RedisInstances {
  readonly redis: RedisService;
  readonly servers: TestServer[];
  /** The SQLite file every instance uses as its store. */
  readonly storePath: string;
  /** Start one more instance with the same settings (the caller stops it, or `close` does). */
  start(): Promise<TestServer>;
  connect(server: TestServer, token: string): Promise<RawClient>;
  close(): Promise<void>;
}

export async function startRedisInstances(count: number, env: Record<string, string> = {}): Promise<RedisInstances> {
  const redis = await startRedis();
  const shared = mkdtempSync(join(tmpdir(), 'parley-shared-db-'));
  const servers: TestServer[] = [];
  const clients: RawClient[] = [];
  const settings = {
    PARLEY_BUS_KIND: 'redis',
    PARLEY_PRESENCE_KIND: 'redis',
    PARLEY_RATELIMIT_KIND: 'redis',
    PARLEY_REDIS_URL: redis.url,
    PARLEY_REDIS_COMMAND_TIMEOUT_MS: '1000',
    PARLEY_STORE_SQLITE_PATH: join(shared, 'parley.db'),
    ...env,
  };
  const instances: RedisInstances = {
    redis,
    servers,
    storePath: settings.PARLEY_STORE_SQLITE_PATH,
    async start() {
      const server = await startServer(settings);
      servers.push(server);
      return server;
    },
    async connect(server, token) {
      const client = await RawClient.connect(server.wsUrl, token);
      clients.push(client);
      return client;
    },
    async close() {
      for (const client of clients) client.close();
      for (const server of servers) await server.stop();
      await redis.close();
      rmSync(shared, { recursive: true, force: true });
    },
  };
  try {
    for (let i = 0; i < count; i++) await instances.start();
  } catch (err) {
    await instances.close();
    throw err;
  }
  return instances;
}
