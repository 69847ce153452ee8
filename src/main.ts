import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Accounts } from './auth/accounts.js';
import { Authenticator } from './auth/authenticator.js';
import { resolveOwnSecret } from './auth/secret.js';
import { createTokenService } from './auth/tokens.js';
import { createMemoryBus } from './bus/memory/memory-bus.js';
import type { Config } from './config/schema.js';
import { Admin } from './domain/admin.js';
import { Chat, chatLimitsFrom } from './domain/chat.js';
import type { Services } from './domain/operations.js';
import { PresenceService } from './domain/presence-service.js';
import { Publisher } from './domain/publisher.js';
import { TypingService } from './domain/typing.js';
import { Gateway } from './gateway/gateway.js';
import { buildHttpApp } from './http/app.js';
import { Metrics } from './http/metrics.js';
import { createLogger, type Logger } from './logging.js';
import { createMemoryPresence } from './presence/memory/memory-presence.js';
import { createSqliteStore } from './store/sqlite/sqlite-store.js';
import { createThreadedSqliteStore } from './store/sqlite/threaded-store.js';
import type { Store } from './store/store.js';

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

export async function openStore(config: Config): Promise<Store> {
  const options = { path: config.store.sqlite.path ?? join(config.dataDir, 'parley.db'), synchronous: config.store.sqlite.synchronous };
  const store = config.store.sqlite.thread ? createThreadedSqliteStore(options) : createSqliteStore(options);
  await store.migrate();
  return store;
}

export async function startServer(config: Config, options: { logger?: Logger } = {}): Promise<RunningServer> {
  const logger = options.logger ?? createLogger(config);
  const store = await openStore(config);
  const bus = createMemoryBus();
  const presenceEngine = createMemoryPresence({ ttlMs: config.presence.ttlMs });
  const tokens = createTokenService(config.auth, await resolveOwnSecret(config));
  const authenticator = new Authenticator(tokens, store);
  const publisher = new Publisher(bus);
  const onPublishError = (err: unknown): void => logger.warn({ err }, 'event publish failed; clients will recover with sync');
  const chat = new Chat({ store, publisher, limits: chatLimitsFrom(config), onPublishError });
  const services: Services = {
    chat,
    typing: new TypingService(store, publisher, config.typing, Date.now, onPublishError),
    presence: new PresenceService(presenceEngine, store, publisher, config.presence, Date.now, onPublishError),
  };
  const metrics = new Metrics();
  const gateway = new Gateway({
    options: {
      path: '/ws',
      ...config.limits,
      heartbeat: config.heartbeat,
      presenceTtlMs: config.presence.ttlMs,
      tokenClockToleranceMs: config.auth.jwt.clockToleranceSeconds * 1000,
    },
    authenticator,
    store,
    bus,
    services,
    metrics,
    logger,
  });
  const app = buildHttpApp({
    services,
    accounts: new Accounts(store, tokens, config.auth.accounts),
    admin: new Admin(store, chat, publisher, onPublishError),
    authenticator,
    metrics,
    logger,
    adminToken: config.admin.token,
    ready: async () => {
      await Promise.all([store.ping(), bus.ping()]);
    },
    bodyLimit: config.limits.maxFrameBytes,
  });
  app.server.on('upgrade', (req, socket, head) => gateway.handleUpgrade(req, socket as import('node:net').Socket, head));
  await app.listen({ host: config.server.host, port: config.server.port });
  const { port } = app.server.address() as AddressInfo;
  const host = config.server.host === '0.0.0.0' || config.server.host === '::' ? '127.0.0.1' : config.server.host;
  const url = config.server.publicUrl ?? `http://${host}:${port}`;
  logger.info({ url, port, store: config.store.kind, bus: config.bus.kind }, 'parley listening');

  let closing: Promise<void> | null = null;
  return {
    url,
    port,
    close: () => (closing ??= (async () => {
      logger.info('draining: closing connections with 4000 (reconnect elsewhere)');
      // Order matters: nothing may touch the bus or store after they close. The drain waits for the connections'
      // in-flight work (requests, presence disconnects); REST requests finish in app.close; then no timer is armed
      // again, and whatever started meanwhile is waited for before the engines close.
      await gateway.drain(config.shutdown.drainMs);
      gateway.close();
      await app.close();
      services.typing.close();
      await services.presence.close();
      await gateway.settled();
      await bus.close();
      await presenceEngine.close();
      await store.close();
      logger.info('stopped');
    })()),
  };
}
