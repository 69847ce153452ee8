import { createHash } from 'node:crypto';
import { ParleyError, isParleyError } from './protocol/errors.js';
import { dirname, join, resolve } from 'node:path';
import { Accounts } from './auth/accounts.js';
import { LoginThrottle } from './auth/login-throttle.js';
import { Authenticator } from './auth/authenticator.js';
import { resolveOwnSecret } from './auth/secret.js';
import { createTokenService } from './auth/tokens.js';
import type { Bus } from './bus/bus.js';
import { createMemoryBus } from './bus/memory/memory-bus.js';
import { createRedisBus } from './bus/redis/redis-bus.js';
import { outgoingProbeBytesOf, replyBudgetOf, type Config } from './config/schema.js';
import { Admin } from './domain/admin.js';
import { Chat, chatLimitsFrom } from './domain/chat.js';
import type { Services } from './domain/operations.js';
import { MemberSummaries } from './domain/member-summaries.js';
import { PresenceService } from './domain/presence-service.js';
import { Sessions } from './domain/sessions.js';
import { Publisher } from './domain/publisher.js';
import { TypingService } from './domain/typing.js';
import { Gateway } from './gateway/gateway.js';
import { buildHttpApp } from './http/app.js';
import { openListener, type Listener } from './http/listener.js';
import { RunningRequests } from './http/running-requests.js';
import { Metrics } from './http/metrics.js';
import { createOriginPolicy } from './http/origin-policy.js';
import { createLogger, throttled, type Logger } from './logging.js';
import { createMemoryPresence } from './presence/memory/memory-presence.js';
import type { Presence } from './presence/presence.js';
import { createRedisPresence } from './presence/redis/redis-presence.js';
import type { RateLimiter } from './ratelimit/limiter.js';
import { createMemoryRateLimiter } from './ratelimit/memory/memory-limiter.js';
import { createRedisRateLimiter } from './ratelimit/redis/redis-limiter.js';
import { redactUrl } from './redis/connection.js';
import { StoreBinding } from './redis/store-binding.js';
import { createPostgresStore } from './store/postgres/postgres-store.js';
import { createSqliteStore } from './store/sqlite/sqlite-store.js';
import { createThreadedSqliteStore } from './store/sqlite/threaded-store.js';
import { StoreHealth, observeStore } from './store/health.js';
import { DiskSpace } from './store/sqlite/disk-space.js';
import type { Store } from './store/store.js';
import { assertWritableFolder } from './store/writable-folder.js';
import { builtWebClientDir } from './http/web-client.js';

/**
 * The composition root: configuration in, engines chosen and wired, server listening. The only module that imports
 * concrete engines.
 */
export interface RunningServer {
  url: string;
  port: number;
  /** Drain (tell clients to reconnect elsewhere, finish writes) and release everything. */
  close(): Promise<void>;
}

/**
 * Open and migrate the store. Refuses (UnwritableFolderError, or the store's UNAVAILABLE saying so) when the data
 * folder, the database's folder or the database itself cannot be written: better to stop at start with one clear
 * line than to serve reads and fail every write.
 */
const sqlitePath = (config: Config): string => config.store.sqlite.path ?? join(config.dataDir, 'parley.db');

/**
 * The free-space check of the store's disk (null for an in-memory database or when turned off), with its gauge and
 * its warn line, checked every 10 s and by each /readyz.
 */
function watchDiskSpace(config: Config, metrics: Metrics, logger: Logger): { check: () => string | null; stop: () => void } | null {
  const path = sqlitePath(config);
  // PostgreSQL's disk is the server's, watched by its operator; only the embedded store's file is ours to watch.
  if (config.store.kind !== 'sqlite') return null;
  if (config.store.sqlite.minFreeBytes === 0 || path === ':memory:' || path.startsWith('file:')) return null;
  const disk = new DiskSpace(dirname(resolve(path)), config.store.sqlite.minFreeBytes, {
    onMeasured: (free) => metrics.storeDiskFree.set(free),
    onLowChange: (low, free) => low
      ? logger.warn({ freeBytes: free, minFreeBytes: config.store.sqlite.minFreeBytes }, 'the disk of the store is nearly full: /readyz answers 503 until space is freed')
      : logger.info({ freeBytes: free }, 'the disk of the store has room again'),
  });
  disk.check();
  const timer = setInterval(() => disk.check(), 10_000);
  timer.unref();
  return { check: () => disk.check(), stop: () => clearInterval(timer) };
}

export async function openStore(config: Config, logger?: Logger): Promise<Store> {
  assertWritableFolder(config.dataDir, 'the data folder (dataDir)');
  const store = config.store.kind === 'postgres' ? openPostgresStore(config, logger) : openSqliteStore(config);
  try {
    await store.migrate();
    await store.ping();
  } catch (err) {
    await store.close().catch(() => undefined);
    if (config.store.kind !== 'postgres') throw err;
    // The driver's message alone ("password authentication failed for user …") does not say which setting to fix.
    const reason = (err as Error)?.message?.split('\n')[0] ?? String(err);
    throw new ParleyError('UNAVAILABLE', `cannot open the PostgreSQL store at ${redactUrl(config.store.postgres.url ?? '', false)} (store.postgres.url): ${reason}`);
  }
  return store;
}

function openSqliteStore(config: Config): Store {
  const path = sqlitePath(config);
  if (path !== ':memory:' && !path.startsWith('file:')) assertWritableFolder(dirname(path), 'the folder of store.sqlite.path');
  const { synchronous, maxQueuedWrites, maxPendingCalls } = config.store.sqlite;
  const options = { path, synchronous, maxQueuedWrites, maxPendingCalls };
  return config.store.sqlite.thread ? createThreadedSqliteStore(options) : createSqliteStore(options);
}

function openPostgresStore(config: Config, logger?: Logger): Store {
  const { url, poolSize, connectTimeoutMs, statementTimeoutMs, maxQueuedWrites } = config.store.postgres;
  // The schema refuses store.kind 'postgres' without a url; this guards a config built by hand.
  if (url === undefined) throw new Error("store.postgres.url is required when store.kind is 'postgres'");
  return createPostgresStore({
    url, poolSize, connectTimeoutMs, statementTimeoutMs, maxQueuedWrites,
    // An idle pooled connection dropped by the server (restart, failover): the pool replaces it on the next call.
    onBackgroundError: (error) => logger?.warn({ error: error.message }, 'an idle PostgreSQL connection failed; the pool opens a new one when needed'),
  });
}

/** Store failures made visible: counted and gauged in metrics, logged at error (at most once per 10 s). */
function storeHealth(metrics: Metrics, logger: Logger): StoreHealth {
  return new StoreHealth({
    onFailure: (op) => metrics.storeErrors.inc({ op }),
    onReadyChange: (ready) => metrics.storeReady.set(ready ? 1 : 0),
    logFailure: (failure, consecutiveFailures, suppressed) =>
      logger.error({ op: failure.op, error: failure.message, consecutiveFailures, suppressed }, 'store write failed: clients get UNAVAILABLE and /readyz answers 503 until a write succeeds'),
    logRecovered: (failures, since) => logger.warn({ failures, failingMs: Date.now() - since }, 'store writes succeed again'),
  });
}

interface Engines {
  bus: Bus;
  presence: Presence;
  limiter: RateLimiter;
  /** Release whichever were opened. */
  close(): Promise<void>;
}

/**
 * The bus, presence and rate-limit engines `config` picks (memory, or Redis at redis.url). A Redis that cannot be
 * reached within redis.connectTimeoutMs stops the start with ParleyError UNAVAILABLE naming its address.
 */
async function openEngines(config: Config, logger: Logger): Promise<Engines> {
  const opened: Array<{ close(): Promise<void> }> = [];
  const closeAll = async () => {
    for (const engine of opened.reverse()) await engine.close().catch(() => undefined);
  };
  const { url, keyPrefix, commandTimeoutMs, connectTimeoutMs } = config.redis;
  const redis = url === undefined ? null : { url, commandTimeoutMs, connectTimeoutMs, name: `parley:${config.server.instanceId ?? process.pid}` };
  const onRedis = (engine: string) => {
    if (!redis) throw new Error(`${engine}.kind is 'redis' but redis.url is not set`); // the schema refuses this first
    return redis;
  };
  try {
    const bus = config.bus.kind === 'redis'
      ? await createRedisBus({
        ...onRedis('bus'),
        channelPrefix: keyPrefix,
        onHandlerError: (err, topic) => logger.error({ err, topic }, 'bus handler failed'),
        onConnectionEvent: (event, detail) => (event === 'lost' ? logger.warn(detail) : logger.info(detail)),
      })
      : createMemoryBus();
    opened.push(bus);
    const presence = config.presence.kind === 'redis'
      ? await createRedisPresence({ ...onRedis('presence'), keyPrefix: `${keyPrefix}presence:`, ttlMs: config.presence.ttlMs })
      : createMemoryPresence({ ttlMs: config.presence.ttlMs });
    opened.push(presence);
    // A limiter that cannot reach Redis admits (src/ratelimit/limiter.ts); said in the log at most once per 10 s.
    let lastLimiterWarning = 0;
    const limiter = config.ratelimit.kind === 'redis'
      ? await createRedisRateLimiter({
        ...onRedis('ratelimit'),
        keyPrefix: `${keyPrefix}rl:`,
        onError: (err) => {
          if (Date.now() - lastLimiterWarning < 10_000) return;
          lastLimiterWarning = Date.now();
          logger.warn({ err }, 'rate limiter cannot reach Redis: requests are admitted unlimited until it is back');
        },
      })
      : createMemoryRateLimiter();
    opened.push(limiter);
    if (redis && [config.bus.kind, config.presence.kind, config.ratelimit.kind].includes('redis')) logger.info({ redis: redactUrl(redis.url), bus: config.bus.kind, presence: config.presence.kind, ratelimit: config.ratelimit.kind }, 'connected to Redis');
    return { bus, presence, limiter, close: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/**
 * With the bus on Redis, bind the cluster (its Redis and key prefix) to this store (src/redis/store-binding.ts):
 * refused, closing the store, when live instances of the cluster use another one.
 */
async function bindStore(config: Config, store: Store, logger: Logger): Promise<StoreBinding | null> {
  if (config.bus.kind !== 'redis' || config.redis.url === undefined) return null;
  const { url, keyPrefix, commandTimeoutMs, connectTimeoutMs } = config.redis;
  let storeId = 'unknown';
  const otherStoreJoined = throttled((suppressed, error: unknown) =>
    logger.error({ error: (error as Error).message, suppressed }, 'an instance on another store has joined this cluster (same Redis and redis.keyPrefix): stop it (this instance stays ready)'));
  const refreshFailed = throttled((suppressed, error: unknown) =>
    logger.warn({ error: (error as Error)?.message, suppressed }, 'could not refresh which store this cluster uses'));
  try {
    storeId = await store.storeId();
    return await StoreBinding.bind({
      url, commandTimeoutMs, connectTimeoutMs, keyPrefix, storeId,
      name: `parley:${config.server.instanceId ?? process.pid}`,
      // Refreshed every second: while it fails, one line per 10 s of each kind.
      onError: (error) => (isParleyError(error) && error.code === 'CONFLICT' ? otherStoreJoined : refreshFailed)(error),
    });
  } catch (err) {
    await store.close().catch(() => undefined);
    if (!isParleyError(err) || err.code !== 'CONFLICT') throw err;
    const other = (err.details as { otherStoreId?: string } | undefined)?.otherStoreId ?? 'unknown';
    throw new ParleyError('CONFLICT', `other Parley instances on this Redis and redis.keyPrefix use another store (its id ${other}; this one's ${storeId}): every instance of a cluster needs the same store (store.kind and store.postgres.url, or one SQLite file). Give this instance the cluster's store, or another redis.keyPrefix for a separate cluster`);
  }
}

/**
 * A fingerprint of the settings every instance of a cluster must share: the Redis server and database (not the
 * password: Redis checks that), the key prefix, and the accounts secret. Six hexadecimal digits of each one's digest,
 * in that order (18 in all), visible to whoever can list the store's sessions: they tell which setting two instances
 * disagree on, not what they hold.
 */
function clusterSettings(config: Config): string {
  let redis = '';
  if (config.redis.url !== undefined) {
    const url = new URL(config.redis.url);
    redis = `${url.protocol}//${url.hostname}:${url.port || '6379'}/${url.pathname.replace(/^\//, '') || '0'}`;
  }
  const secret = config.auth.accounts.secret ?? '';
  return [redis, config.redis.keyPrefix, secret].map((value) => createHash('sha256').update(value).digest('hex').slice(0, SETTING_DIGEST)).join('');
}

/** Hex digits of each setting's digest in the fingerprint; the settings in fingerprint order, as an operator names them. */
const SETTING_DIGEST = 6;
const CLUSTER_SETTINGS = ['redis.url (server and database)', 'redis.keyPrefix', 'auth.accounts.secret'];

/** The settings whose digests differ between this instance's fingerprint and the others'. */
function settingsThatDiffer(mine: string, others: readonly string[]): string[] {
  const part = (fp: string, i: number) => fp.slice(i * SETTING_DIGEST, (i + 1) * SETTING_DIGEST);
  const named = CLUSTER_SETTINGS.filter((_, i) => others.some((other) => part(other, i) !== part(mine, i)));
  // A fingerprint of another shape (another version of Parley): say all of them.
  return named.length > 0 ? named : CLUSTER_SETTINGS;
}

/**
 * Register the instance with its store (Store.claimInstance): an instance whose bus is in its own memory must be the
 * only one on its store, since no other instance would receive its events; refused with a message that says what to
 * change. Closes the store when refused.
 */
function claimInstance(config: Config): (store: Store) => Promise<Store> {
  const sole = config.bus.kind === 'memory';
  const settings = sole ? undefined : clusterSettings(config);
  return async (store) => {
    try {
      await store.claimInstance({ sole, description: `port ${config.server.port}, pid ${process.pid}`, settings });
      return store;
    } catch (err) {
      await store.close().catch(() => undefined);
      if (!isParleyError(err) || err.code !== 'CONFLICT') throw err;
      const details = err.details as { others?: string[]; settingsDiffer?: boolean; otherSettings?: string[] } | undefined;
      const others = (details?.others ?? []).join('; ') || 'unknown';
      if (details?.settingsDiffer && settings !== undefined) {
        const differ = settingsThatDiffer(settings, details.otherSettings ?? []);
        throw new ParleyError('CONFLICT', `other Parley instances on this store run with another ${differ.join(', another ')} (${others}): every instance of a cluster needs the same redis.url (server and database), redis.keyPrefix and auth.accounts.secret, or its users would not see the others' events and presence, or be signed out. Give this instance the same values`);
      }
      throw new ParleyError('CONFLICT', sole
        ? `another Parley instance uses this store (${others}); this one's bus is in its own memory (bus.kind 'memory'), so their clients would not receive each other's events. Run one instance, or set bus.kind (and presence.kind, ratelimit.kind) to 'redis' on every instance`
        : `a Parley instance whose bus is in its own memory uses this store (${others}): stop it, or run it with bus.kind 'redis' like this one`);
    }
  };
}

/**
 * Start serving `config`. `options.listener`: a socket already listening (src/http/listener.ts; `parley serve` opens it
 * before loading this module); without one, the server opens its own first. Connections that arrive while the server
 * starts are held and served once it is ready; "parley listening" is logged then.
 */
export async function startServer(config: Config, options: { logger?: Logger; listener?: Listener } = {}): Promise<RunningServer> {
  if (!options.listener) {
    const listener = await openListener(config);
    return startServer(config, { ...options, listener }).catch((err: unknown) => {
      listener.abort();
      throw err;
    });
  }
  const listener = options.listener;
  const logger = options.logger ?? createLogger(config);
  const metrics = new Metrics();
  const health = storeHealth(metrics, logger);
  const diskSpace = watchDiskSpace(config, metrics, logger);
  const engines = await openEngines(config, logger);
  const { opened, binding } = await openStore(config, logger)
    .then(claimInstance(config))
    .then(async (claimed) => ({ opened: claimed, binding: await bindStore(config, claimed, logger) }))
    .catch(async (err: unknown) => {
      await engines.close();
      throw err;
    });
  const store = observeStore(opened, health);
  const { bus, presence: presenceEngine, limiter } = engines;
  const tokens = createTokenService(config.auth, await resolveOwnSecret(config));
  const authenticator = new Authenticator(tokens, store);
  const publisher = new Publisher(bus, {
    onFailed: () => metrics.busPublishFailures.inc(),
    onDropped: (topics, cluster) =>
      logger.warn({ topics, cluster }, 'stopping with resyncs owed that the bus still refuses: clients of other instances miss those events until their next sync'),
    onRecovered: (topics, cluster) =>
      logger.info({ topics, cluster }, cluster ? 'events were lost while the bus was away: asked every client to resynchronise' : 'events were lost while the bus was away: asked their clients to resynchronise'),
  });
  metrics.sources.resyncsOwed = () => publisher.owed;
  // While the bus is down every send's publish fails: one warn line per 10 s (with how many were not logged), not one per send.
  const onPublishError = throttled((suppressed, err: unknown) =>
    logger.warn({ err, suppressed }, 'event publish failed; clients will recover with sync'));
  const memberSummaries = new MemberSummaries(store, publisher, config.membership, onPublishError);
  const chat = new Chat({ store, publisher, limits: chatLimitsFrom(config), onPublishError, memberSummaries });
  const services: Services = {
    chat,
    typing: new TypingService(store, publisher, limiter, config.typing, onPublishError),
    presence: new PresenceService(presenceEngine, store, publisher, config.presence, Date.now, onPublishError),
  };
  const userRates = { message: config.limits.userMessageRate, search: config.limits.userSearchRate, lookup: config.limits.userLookupRate };
  const originPolicy = createOriginPolicy(config.server.cors.origins, config.server.publicUrl);
  const sessions = new Sessions(store, publisher, config.auth.jwt.clockToleranceSeconds * 1000, Date.now, onPublishError);
  const gateway = new Gateway({
    options: {
      path: '/ws',
      ...config.limits,
      outgoingProbeBytes: outgoingProbeBytesOf(config.limits),
      maxReplyBytes: replyBudgetOf(config.limits),
      userRates,
      heartbeat: config.heartbeat,
      presenceTtlMs: config.presence.ttlMs,
      // The memory bus never loses an event: nothing to reconcile.
      reconcileMs: config.bus.kind === 'memory' ? 0 : config.bus.reconcileMs,
      allowOrigin: originPolicy.allows,
      tokenClockToleranceMs: config.auth.jwt.clockToleranceSeconds * 1000,
    },
    authenticator,
    sessions,
    bus,
    services,
    metrics,
    logger,
    limiter,
  });
  let closing: Promise<void> | null = null;
  const running = new RunningRequests();
  const app = buildHttpApp({
    stopping: () => closing !== null,
    running,
    services,
    accounts: new Accounts(store, tokens, config.auth.accounts),
    admin: new Admin(store, chat, publisher, onPublishError, chatLimitsFrom(config).maxReplyBytes),
    sessions,
    authenticator,
    metrics,
    logger,
    adminToken: config.admin.token,
    listenOnJoin: (userId, type, result) => gateway.listenOnJoin(userId, type, result),
    publishWaitMs: (type, data) => gateway.restPublishWaitMs(type, data),
    ready: async () => {
      // ping commits a tiny write; when it fails, the reason names the run of failed writes, not just this probe. When it
      // succeeds while other writes still fail (a nearly full disk takes the tiny write, not a message), the store
      // stays unready: StoreHealth decides when a run of failures has ended.
      await Promise.all([
        store.ping().catch((err: Error) => Promise.reject(new Error(health.reason() ?? err.message))),
        bus.ping(),
        binding?.check().catch((err: Error) => Promise.reject(new Error(`cluster store binding: ${err.message}`))),
      ]);
      const failing = health.reason() ?? diskSpace?.check();
      if (failing) throw new Error(failing);
    },
    bodyLimit: config.limits.maxFrameBytes,
    requestTimeoutMs: config.limits.requestTimeoutMs,
    maxJsonDepth: config.limits.maxJsonDepth,
    limiter,
    rates: { rest: config.limits.restRate, registration: config.limits.registrationRate, user: userRates },
    loginThrottle: new LoginThrottle(limiter, config.limits.login),
    originPolicy,
    listener,
    trustedProxies: config.server.trustedProxies,
    webClientDir: config.server.webClient ? builtWebClientDir : null,
  });
  listener.onRefused = () => metrics.closes.inc({ reason: 'TOO_MANY_CONNECTIONS' });
  await app.ready();
  listener.serve((req, socket, head) => gateway.handleUpgrade(req, socket as import('node:net').Socket, head));
  const { port } = listener;
  const host = config.server.host === '0.0.0.0' || config.server.host === '::' ? '127.0.0.1' : config.server.host;
  const url = config.server.publicUrl ?? `http://${host}:${port}`;
  logger.info({ url, port, store: config.store.kind, bus: config.bus.kind, presence: config.presence.kind, ratelimit: config.ratelimit.kind }, 'parley listening');

  return {
    url,
    port,
    close: () => (closing ??= (async () => {
      logger.info('draining: closing connections with 4000 (reconnect elsewhere)');
      // Order matters: nothing may touch the bus or store after they close. The drain waits for the connections'
      // in-flight work (requests, presence disconnects); REST connections close as they become idle, and at the end
      // of the drain whatever is still uploading; the REST requests being served are waited for; then no timer is
      // armed again, and whatever started meanwhile is waited for before the engines close.
      const drainEnds = Date.now() + config.shutdown.drainMs;
      await gateway.drain(config.shutdown.drainMs);
      gateway.close();
      await app.close();
      await listener.close(drainEnds);
      await running.settled();
      services.typing.close();
      await services.presence.close();
      await memberSummaries.close();
      await publisher.close();
      await gateway.settled();
      await bus.close();
      await presenceEngine.close();
      await limiter.close();
      await binding?.close();
      diskSpace?.stop();
      await store.close();
      logger.info('stopped');
    })()),
  };
}
