import { Redis, type RedisOptions } from 'ioredis';
import { ParleyError } from '../protocol/errors.js';

/**
 * How Parley's Redis engines (bus, presence, rate limiter) talk to Redis: one place for the client's options, because
 * ioredis's defaults are made for scripts that may wait, and a chat server must not.
 *
 * - `enableOfflineQueue: false`: a command while disconnected fails at once instead of waiting in an unbounded queue
 *   for a Redis that may be gone for minutes (what the bus's fail-fast `publish` and the limiter's "admit when down"
 *   stand on).
 * - `maxRetriesPerRequest: 0` and `autoResendUnfulfilledCommands: false`: commands in flight when the connection drops
 *   are rejected at the drop, never replayed later (a replayed PUBLISH would arrive after what was published since).
 * - `commandTimeout`: a command on a connection that went silent (a paused or partitioned Redis: no close, no reply)
 *   fails after this many ms instead of hanging; `socketTimeout` then drops such a connection.
 * - `retryStrategy`: reconnect for ever, 50 ms doubling to at most 2 s apart (bounded in rate, not in count: an outage
 *   of any length must end with the instance back, not dead).
 * - `autoResubscribe: false`: the bus restores its own subscriptions after a reconnect, so that it knows when they
 *   are back and can then tell clients to resynchronise (src/bus/redis/redis-bus.ts).
 * - `protocol: 2`: RESP2, the wire protocol pub/sub has been proven on for years (ioredis 6 defaults to RESP3); the
 *   bus uses a connection of its own for subscriptions, so RESP3's mixing of both on one connection is not needed.
 */
export interface RedisConnectionOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…` for TLS. */
  url: string;
  /** Longest wait for one command's reply, in ms. @default 2000 */
  commandTimeoutMs?: number;
  /** Longest wait for a connection to be made (and for the first one at start), in ms. @default 5000 */
  connectTimeoutMs?: number;
  /** A name shown by `CLIENT LIST` (which engine, which instance). */
  name?: string;
}

export const DEFAULT_COMMAND_TIMEOUT_MS = 2000;
const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

/** Reconnect delays: 50 ms doubling to 2 s, with up to 20% jitter so that a cluster's instances do not come back in step. */
export function reconnectDelayMs(attempt: number): number {
  const base = Math.min(2000, 50 * 2 ** Math.min(attempt - 1, 10));
  return Math.round(base * (1 + Math.random() * 0.2));
}

/** A client with the options above, connecting at once (`ready()` waits for it). */
export function createRedisClient(options: RedisConnectionOptions): Redis {
  const commandTimeout = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  const redisOptions: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    commandTimeout,
    socketTimeout: Math.max(commandTimeout * 2, 5000),
    connectTimeout: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    retryStrategy: reconnectDelayMs,
    protocol: 2,
    lazyConnect: true,
    // CLIENT SETINFO is refused by Redis before 7.2; the name below is enough to find a connection.
    disableClientInfo: true,
    connectionName: options.name,
  };
  const client = new Redis(options.url, redisOptions);
  // Every failure also reaches the caller (a rejected command, a 'close'), which the engines answer; without a
  // listener ioredis prints each connection error of an outage to stderr.
  client.on('error', () => {});
  return client;
}

/**
 * Connect `client`, waiting at most `timeoutMs` (the start of the server: a Redis that cannot be reached is said in
 * one line rather than waited for). Rejects with ParleyError UNAVAILABLE naming the address (never the password).
 */
export async function connectRedis(client: Redis, url: string, timeoutMs = DEFAULT_CONNECT_TIMEOUT_MS): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  // ioredis reports a refused AUTH (WRONGPASS, NOAUTH) as an 'error' event and then rejects connect() with only
  // "Connection is closed": the event says what to fix.
  let reason: Error | undefined;
  const remember = (error: Error) => { reason = error; };
  client.on('error', remember);
  try {
    await Promise.race([
      client.connect(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    client.disconnect();
    const told = reason !== undefined && /WRONGPASS|NOAUTH|NOPERM|invalid password|AUTH/i.test(reason.message) ? reason : (err as Error);
    // A Redis without TLS never answers a TLS handshake (it waits for the end of an inline command): only a timeout.
    const hint = reason === undefined && url.startsWith('rediss:')
      ? ' (a rediss:// URL: is TLS enabled on that Redis? A Redis without TLS never answers the TLS handshake; use redis:// for it)'
      : '';
    throw new ParleyError('UNAVAILABLE', `cannot reach Redis at ${redactUrl(url)}: ${told.message}${hint}`);
  } finally {
    clearTimeout(timer);
    client.off('error', remember);
  }
}

/**
 * The URL without its password, for messages and logs. With `hideLoneUser` (Redis URLs), a user name without a password
 * is hidden too: `redis://secret@host` is a common slip for `redis://:secret@host`.
 */
export function redactUrl(url: string, hideLoneUser = true): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    else if (parsed.username && hideLoneUser) parsed.username = '***';
    return parsed.toString();
  } catch {
    return '(an unparsable Redis URL)';
  }
}

/** Any failure of a Redis command as the retryable error callers expect (ParleyError UNAVAILABLE, temporary). */
export function unavailable(what: string, err: unknown): ParleyError {
  if (err instanceof ParleyError) return err;
  return new ParleyError('UNAVAILABLE', `${what}: Redis is unavailable (${(err as Error)?.message ?? String(err)})`);
}
