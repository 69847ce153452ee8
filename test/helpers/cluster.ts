import { register, startServer, type TestServer } from './server.js';
import { startNginx, type TestNginx } from './services/nginx.js';
import { startPostgres, type PostgresService } from './services/postgres.js';
import { startRedis, type RedisService } from './services/redis.js';

/**
 * A Parley cluster for multi-instance tests: real PostgreSQL and Redis processes started here, `size` server
 * processes on them (store postgres; bus, presence and rate limits on Redis), and optionally nginx in front running
 * deploy/nginx.conf. Everything on loopback, random ports, temporary folders; `stop()` ends it all.
 */
export interface TestCluster {
  postgres: PostgresService;
  redis: RedisService;
  databaseUrl: string;
  instances: TestServer[];
  nginx: TestNginx | null;
  /** The environment every instance runs with (for starting one again). */
  env: Record<string, string>;
  /** Start instance `i` again (after stop or kill) on its port, so nginx finds it. */
  restart(i: number): Promise<TestServer>;
  stop(): Promise<void>;
}

export async function startCluster(options: { size?: number; nginx?: boolean; env?: Record<string, string> } = {}): Promise<TestCluster> {
  const postgres = await startPostgres();
  const redis = await startRedis();
  const databaseUrl = await postgres.createDatabase();
  const env: Record<string, string> = {
    PARLEY_STORE_KIND: 'postgres',
    PARLEY_STORE_POSTGRES_URL: databaseUrl,
    PARLEY_BUS_KIND: 'redis',
    PARLEY_PRESENCE_KIND: 'redis',
    PARLEY_RATELIMIT_KIND: 'redis',
    PARLEY_REDIS_URL: redis.url,
    ...options.env,
  };
  const instances: TestServer[] = [];
  const stopping = new Set<TestServer>();
  /** An instance that exits without being told to is a failure of the test: say so, with its last log lines. */
  const watch = (server: TestServer, i: number): TestServer => {
    const { stop, kill } = server;
    server.stop = () => (stopping.add(server), stop());
    server.kill = (signal) => (stopping.add(server), kill(signal));
    server.process.once('exit', (code, signal) => {
      if (stopping.has(server)) return;
      const last = server.logs.slice(-5).map((l) => JSON.stringify(l)).join('\n');
      process.stderr.write(`cluster instance ${i} exited on its own (code ${code}, signal ${signal}); last log lines:\n${last}\n`);
    });
    return server;
  };
  for (let i = 0; i < (options.size ?? 3); i++) instances.push(watch(await startServer(env), i));
  const nginx = options.nginx ? await startNginx(instances.map((s) => s.port)) : null;
  return {
    postgres, redis, databaseUrl, instances, nginx, env,
    async restart(i) {
      instances[i] = watch(await startServer(env, { port: instances[i]!.port }), i);
      return instances[i]!;
    },
    async stop() {
      await nginx?.stop();
      await Promise.allSettled(instances.map((s) => s.stop()));
      await redis.close();
      await postgres.destroy();
    },
  };
}
