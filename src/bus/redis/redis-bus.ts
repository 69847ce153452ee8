import type { Redis } from 'ioredis';
import type { Bus } from '../bus.js';
import { ParleyError } from '../../protocol/errors.js';
import { connectRedis, createRedisClient, unavailable, type RedisConnectionOptions } from '../../redis/connection.js';

export interface RedisBusOptions extends RedisConnectionOptions {
  /**
   * Put before every topic to make its channel (`parley:` + `c.<conversationId>`), so that several deployments (or
   * test runs) can share one Redis. @default 'parley:'
   */
  channelPrefix?: string;
  /** Publishes sent and not yet answered, at most; one more fails at once with UNAVAILABLE. @default 10000 */
  maxPendingPublishes?: number;
  /** Topics per SUBSCRIBE / UNSUBSCRIBE command. @default 1000 */
  batchSize?: number;
  /**
   * How often the subscriber connection is asked PING, in ms. A subscriber only reads, so a connection that went
   * silent (a stalled Redis, a network that drops packets without closing) is otherwise noticed only by TCP
   * keep-alive, minutes later, while the instance delivers nothing. @default 5000
   */
  healthCheckMs?: number;
  /** Where a throwing handler's error goes. @default console.error */
  onHandlerError?: (error: unknown, topic: string) => void;
  /** Connection events worth a log line (lost, back, subscriptions restored). @default ignored */
  onConnectionEvent?: (event: 'lost' | 'restored', detail: string) => void;
}

/**
 * The bus on Redis pub/sub (Redis 6.2 or newer; ioredis): one connection publishes (and answers `ping`), one
 * subscribes. Every guarantee of src/bus/bus.ts, and where it comes from:
 *
 * - Interest-based, batched, in call order. The instance keeps its own interest (`wanted`, changed at once by every
 *   `subscribe` / `unsubscribe` call, in call order) and reconciles Redis with it: the calls of one event-loop turn
 *   become one SUBSCRIBE and one UNSUBSCRIBE of up to `batchSize` topics each, sent on the subscriber connection, whose
 *   commands Redis applies in order. So the instance receives only its own connections' topics, and for each topic
 *   Redis ends in the state of the last call. A payload that arrives for a topic no longer wanted is dropped, so
 *   `unsubscribe` stops delivery at once, as on the memory bus.
 * - `subscribe` resolves once Redis confirmed a SUBSCRIBE sent after the call (payloads published afterwards arrive);
 *   while the subscriber connection is down it rejects at once with UNAVAILABLE, and the interest is kept: it is
 *   restored with the others when the connection is back.
 * - Ordered per topic per publisher: one publishing connection, commands written in call order, and Redis delivers a
 *   channel's messages to each subscriber in the order it executed the PUBLISHes.
 * - At most once: a message is sent once to each subscribed connection (no retry, no replay).
 * - `publish` fails fast: while the publishing connection is not ready it rejects at once with ParleyError UNAVAILABLE
 *   (temporary: retry later); nothing is queued while disconnected (no offline queue, src/redis/connection.ts);
 *   while connected, at most `maxPendingPublishes` wait for their reply and each at most `commandTimeoutMs`.
 * - Resets: when the subscriber connection drops, Redis forgets its subscriptions and whatever was published
 *   meanwhile is lost to this instance. After the reconnect the bus subscribes every wanted topic again (batched) and
 *   only then runs the `onReset` listeners, so clients resynchronise when delivery works again. A SUBSCRIBE or
 *   UNSUBSCRIBE that fails on a live connection (a timeout) drops the connection on purpose, which takes the same path.
 *   `ping` fails from the drop until the subscriptions are restored, so /readyz says the instance is not delivering
 *   (never green while subscriptions are lost). A subscriber connection that goes silent without closing is found by
 *   a PING every `healthCheckMs` (and by each `ping`): one unanswered within `commandTimeoutMs` drops the connection,
 *   which takes the same path.
 *
 * Topic names: a channel is `channelPrefix` + the topic, byte for byte; Redis channels are binary-safe and a SUBSCRIBE
 * channel is never a pattern, so any id of the id alphabet (src/protocol/ids.ts) is carried as is.
 * Payloads travel as bytes: PUBLISH of the Buffer, and `messageBuffer` on receipt (ioredis then leaves the payload
 * undecoded), so a frame reaches the gateway as the bytes it writes to sockets.
 */
export class RedisBus implements Bus {
  private readonly prefix: string;
  private readonly maxPendingPublishes: number;
  private readonly batchSize: number;
  private readonly onHandlerError: (error: unknown, topic: string) => void;
  private readonly onConnectionEvent: (event: 'lost' | 'restored', detail: string) => void;
  /** This instance's interest: the topics it wants, as of the last call. */
  private readonly wanted = new Set<string>();
  /** The topics Redis holds for the subscriber connection once every command sent on it has run. */
  private readonly sent = new Set<string>();
  /** Callers waiting for the next reconciliation. */
  private waiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private scheduled = false;
  private reconciling: Promise<void> | null = null;
  /** The subscriber connection dropped since the last restore: payloads may have been lost. */
  private lost = false;
  /** Counts the drops of the subscriber connection. */
  private generation = 0;
  private pendingPublishes = 0;
  private handler: ((topic: string, payload: Buffer) => void) | null = null;
  private readonly resetListeners: Array<() => void> = [];
  private closed = false;
  private readonly healthCheck: NodeJS.Timeout;

  constructor(private readonly pub: Redis, private readonly sub: Redis, options: RedisBusOptions) {
    this.prefix = options.channelPrefix ?? 'parley:';
    this.maxPendingPublishes = options.maxPendingPublishes ?? 10_000;
    this.batchSize = options.batchSize ?? 1000;
    this.onHandlerError =
      options.onHandlerError ?? ((error, topic) => console.error(`redis bus: handler failed for topic ${topic}`, error));
    this.onConnectionEvent = options.onConnectionEvent ?? (() => {});
    sub.on('messageBuffer', (channel: Buffer, payload: Buffer) => this.receive(channel.toString(), payload));
    sub.on('close', () => {
      if (this.closed) return;
      // Redis keeps no subscriptions for a closed connection: nothing is subscribed until the restore.
      this.sent.clear();
      this.generation++;
      if (!this.lost) this.onConnectionEvent('lost', 'the subscriber connection to Redis closed: payloads may be lost until it is back');
      this.lost = true;
    });
    sub.on('ready', () => {
      if (this.closed || !this.lost) return;
      this.schedule();
    });
    this.healthCheck = setInterval(() => void this.checkSubscriber().catch(() => undefined), options.healthCheckMs ?? 5000);
    this.healthCheck.unref();
  }

  async publish(topic: string, payload: Buffer): Promise<void> {
    if (this.closed) throw new ParleyError('UNAVAILABLE', 'redis bus: closed');
    if (this.pub.status !== 'ready') throw new ParleyError('UNAVAILABLE', `redis bus: not connected to Redis (${this.pub.status})`);
    if (this.pendingPublishes >= this.maxPendingPublishes) {
      throw new ParleyError('UNAVAILABLE', `redis bus: ${this.pendingPublishes} publishes waiting for Redis`);
    }
    this.pendingPublishes++;
    try {
      await this.pub.publish(this.prefix + topic, payload);
    } catch (err) {
      throw unavailable('redis bus: publish failed', err);
    } finally {
      this.pendingPublishes--;
    }
  }

  subscribe(topic: string): Promise<void> {
    if (this.closed) return Promise.reject(new ParleyError('UNAVAILABLE', 'redis bus: closed'));
    this.wanted.add(topic);
    // Already subscribed and confirmed (nothing in flight): payloads published from now on arrive.
    if (this.sent.has(topic) && this.reconciling === null && !this.scheduled && !this.lost) return Promise.resolve();
    return this.next();
  }

  unsubscribe(topic: string): Promise<void> {
    if (!this.wanted.delete(topic) || this.closed) return Promise.resolve();
    // Delivery stopped with the line above; Redis follows with the next batch. A failure there drops the connection
    // (see reconcile), after which Redis holds only what is wanted: nothing for the caller to do.
    return this.next().catch(() => undefined);
  }

  onMessage(handler: (topic: string, payload: Buffer) => void): void {
    if (this.handler) throw new Error('redis bus: onMessage handler already set');
    this.handler = handler;
  }

  onReset(listener: () => void): void {
    this.resetListeners.push(listener);
  }

  async ping(): Promise<void> {
    if (this.closed) throw new ParleyError('UNAVAILABLE', 'redis bus: closed');
    if (this.sub.status !== 'ready' || this.lost) {
      throw new ParleyError('UNAVAILABLE', 'redis bus: subscriptions lost (connection to Redis down or being restored)');
    }
    try {
      await Promise.all([this.pub.ping(), this.checkSubscriber()]);
    } catch (err) {
      throw unavailable('redis bus: ping failed', err);
    }
  }

  /** PING on the subscriber connection; one that does not answer is dropped (and so restored, then reset). */
  private async checkSubscriber(): Promise<void> {
    if (this.closed || this.sub.status !== 'ready') return;
    try {
      await this.sub.ping();
    } catch (err) {
      if (!this.closed && this.sub.status === 'ready') this.sub.disconnect(true);
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.healthCheck);
    this.wanted.clear();
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.reject(new ParleyError('UNAVAILABLE', 'redis bus: closed'));
    // disconnect(): no reconnect; the bus holds nothing that a QUIT would let finish.
    this.pub.disconnect();
    this.sub.disconnect();
  }

  /** Topics this instance is subscribed to in Redis now (for tests and metrics). */
  get subscribedCount(): number {
    return this.sent.size;
  }

  private receive(channel: string, payload: Buffer): void {
    if (!channel.startsWith(this.prefix)) return;
    const topic = channel.slice(this.prefix.length);
    if (!this.handler || !this.wanted.has(topic)) return; // unsubscribed since: delivery stops at the call
    try {
      this.handler(topic, payload);
    } catch (error) {
      this.onHandlerError(error, topic);
    }
  }

  /** A promise settled by the next reconciliation (scheduled for the end of this turn, batching the turn's calls). */
  private next(): Promise<void> {
    const promise = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.schedule();
    return promise;
  }

  private schedule(): void {
    // While a reconciliation runs, its end schedules the next one (see run).
    if (this.scheduled || this.reconciling) return;
    this.scheduled = true;
    queueMicrotask(() => void this.run());
  }

  /** One reconciliation at a time; calls made meanwhile wait for the next one, which starts when this one ends. */
  private async run(): Promise<void> {
    this.scheduled = false;
    const waiters = this.waiters;
    this.waiters = [];
    const restoring = this.lost;
    const generation = this.generation;
    const running = this.reconcile();
    this.reconciling = running;
    try {
      await running;
      for (const waiter of waiters) waiter.resolve();
      // Restored only if no drop happened since this run started (a drop bumps the generation and needs its own).
      if (restoring && generation === this.generation && !this.closed) this.restored();
    } catch (err) {
      const error = err instanceof ParleyError ? err : unavailable('redis bus: subscribe failed', err);
      for (const waiter of waiters) waiter.reject(error);
    } finally {
      this.reconciling = null;
      if (!this.closed && (this.waiters.length > 0 || (this.lost && this.sub.status === 'ready'))) this.schedule();
    }
  }

  /** Send what makes Redis hold `wanted`: batched UNSUBSCRIBEs and SUBSCRIBEs, awaited. */
  private async reconcile(): Promise<void> {
    if (this.closed) throw new ParleyError('UNAVAILABLE', 'redis bus: closed');
    if (this.sub.status !== 'ready') {
      throw new ParleyError('UNAVAILABLE', `redis bus: not connected to Redis (${this.sub.status}); the subscription is restored when it is back`);
    }
    const add: string[] = [];
    const drop: string[] = [];
    for (const topic of this.wanted) if (!this.sent.has(topic)) add.push(this.prefix + topic);
    for (const topic of this.sent) if (!this.wanted.has(topic)) drop.push(this.prefix + topic);
    for (const channel of add) this.sent.add(channel.slice(this.prefix.length));
    for (const channel of drop) this.sent.delete(channel.slice(this.prefix.length));
    const commands: Array<Promise<unknown>> = [];
    for (let i = 0; i < drop.length; i += this.batchSize) commands.push(this.sub.unsubscribe(...drop.slice(i, i + this.batchSize)));
    for (let i = 0; i < add.length; i += this.batchSize) commands.push(this.sub.subscribe(...add.slice(i, i + this.batchSize)));
    const results = await Promise.allSettled(commands);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      // Redis's state is unknown now (a timeout, or the connection dropped): start over on a new connection, which
      // restores every wanted topic and then resets.
      if (this.sub.status === 'ready') this.sub.disconnect(true);
      throw unavailable('redis bus: subscribe failed', failed.reason);
    }
  }

  private restored(): void {
    this.lost = false;
    this.onConnectionEvent('restored', `resubscribed ${this.sent.size} topics after a reconnect: asking clients to resynchronise`);
    for (const listener of this.resetListeners) {
      try {
        listener();
      } catch (error) {
        this.onHandlerError(error, '(reset)');
      }
    }
  }
}

/** Connect both connections (failing the start with UNAVAILABLE when Redis cannot be reached) and make the bus. */
export async function createRedisBus(options: RedisBusOptions): Promise<RedisBus> {
  const pub = createRedisClient({ ...options, name: `${options.name ?? 'parley'}:bus-pub` });
  const sub = createRedisClient({ ...options, name: `${options.name ?? 'parley'}:bus-sub` });
  try {
    await Promise.all([connectRedis(pub, options.url, options.connectTimeoutMs), connectRedis(sub, options.url, options.connectTimeoutMs)]);
  } catch (err) {
    pub.disconnect();
    sub.disconnect();
    throw err;
  }
  return new RedisBus(pub, sub, options);
}
