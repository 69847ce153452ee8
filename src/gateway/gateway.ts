import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Authenticator, Identity } from '../auth/authenticator.js';
import { clusterTopic, conversationTopic, presenceTopic, userTopic, type Bus } from '../bus/bus.js';
import { decodeEnvelope } from '../bus/envelope.js';
import type { ConnectionScope, Services, UserBudget } from '../domain/operations.js';
import { withinDeadline } from '../domain/deadline.js';
import { ReplyBudget, takeLeading } from '../domain/reply-budget.js';
import type { ConnectionAdmission, Sessions } from '../domain/sessions.js';
import { upgradeSettled } from '../http/connection-guard.js';
import type { Metrics } from '../http/metrics.js';
import { closeCatalogue, type CloseName } from '@parley/protocol';
import { ParleyError, errorCatalogue, isParleyError } from '../protocol/errors.js';
import { encodeEvent, type EventMap } from '../protocol/events.js';
import { CURRENT_VERSION } from '@parley/protocol';
import type { Rate, RateLimiter } from '../ratelimit/limiter.js';
import type { ConversationPosition } from '../protocol/types.js';
import type { RequestType } from '../protocol/requests.js';
import { Connection, ConnectionState, type ConnectionOwner } from './connection.js';
import { Dispatcher, JOINING, PUBLISHING, targetOf, type RequestTarget } from './dispatcher.js';
import { JoinRecovery } from './join-recovery.js';
import { frameText } from './frame.js';
import { readHandshake, selectSubprotocol } from './handshake.js';
import { Heartbeat } from './heartbeat.js';
import { WriteScheduler } from './write-scheduler.js';

export interface GatewayOptions {
  path: string;
  maxFrameBytes: number;
  maxMessageBytes: number;
  maxOutgoingBytes: number;
  /**
   * The byte budget of a reply that can grow, as in force (limits.maxReplyBytes, at most half of maxOutgoingBytes: see
   * replyBudgetOf): what a page request reserves while served; `welcome`'s conversation list keeps within it.
   */
  maxReplyBytes: number;
  slowConsumerMs: number;
  maxOutgoingHardBytes: number;
  /** Requests of one connection served at once; past it the connection is not read until one is answered. */
  maxInflightRequests: number;
  /** Process-wide bound of the connections' backlogs; above it, connections that send requests are paused. */
  maxOutgoingTotalBytes: number;
  /** Least time between two position pings of a connection while bytes flow to it (see Connection). */
  outgoingProbeMs: number;
  /**
   * Most of a conversation's local connections more than this behind (ms, see Connection.delayMs): a connection that
   * publishes a message there is held after that request until they are not (limits.maxDeliveryDelayMs).
   */
  maxDeliveryDelayMs: number;
  /** Unconfirmed bytes a connection may have in flight without a position ping (see Connection). */
  outgoingProbeBytes: number;
  connectionRate: { perSecond: number; burst: number };
  /** The rate of each per-user budget (see userBudgets in domain/operations.ts). */
  userRates: Record<UserBudget, Rate>;
  floodCloseAfter: number;
  maxJsonDepth: number;
  /** WebSocket connections of one user on this instance; one more is closed with 4006. */
  maxConnectionsPerUser: number;
  /** Connection attempts of one user (after authentication); past it the new connection is closed with 4006. */
  userConnectRate: { perSecond: number; burst: number };
  heartbeat: { intervalMs: number; timeoutMs: number };
  presenceTtlMs: number;
  /** How often local users' interests are reconciled with the store (bus.reconcileMs); 0: never. */
  reconcileMs: number;
  /** Whether a browser page of this Origin (with this Host header) may connect; refused with HTTP 403. @default all */
  allowOrigin?: (origin: string | undefined, host: string | undefined) => boolean;
  /**
   * The clock tolerance tokens are verified with (auth.jwt.clockToleranceSeconds, in ms). A connection is closed for
   * expiry (4004) at `exp` plus this, the moment a new connection with the same token would be refused: never while
   * the token is still accepted, so the documented reaction (reconnect at once) cannot loop.
   */
  tokenClockToleranceMs: number;
  /**
   * The time a connection attempt has to send its upgrade request and be upgraded (limits.headersTimeoutMs, ms):
   * authentication that has not finished within half of it (a store that stopped answering) closes the attempt 4005,
   * a code the client can read, before the socket's own deadline would reset it.
   */
  headersTimeoutMs: number;
}

export interface GatewayDeps {
  options: GatewayOptions;
  authenticator: Authenticator;
  /** The setup's reads of the user and their conversations (the domain's; the gateway never reads the store). */
  sessions: Pick<Sessions, 'admit' | 'positions'>;
  bus: Bus;
  services: Services;
  metrics: Metrics;
  logger: Logger;
  limiter: RateLimiter;
}

const kConnection = Symbol('parley.connection');
/** Room kept in welcome's budget for its fields other than the conversation list (user name, limits: well under 1 KiB). */
const WELCOME_FIXED_BYTES = 1024;
/** What an event adds to the content its request carried: event name, ids, seq, times (lean events: well under this). */
const EVENT_ENVELOPE_BYTES = 128;
/** Publishing requests to a conversation after which whether its readers are behind is looked at again. */
const BEHIND_RESCAN_SENDS = 8;
/** Conversations whose last look is kept (the oldest go first): those being published to right now. */
const BEHIND_CACHE_MAX = 10_000;
/** Users whose conversations are re-read at once after a bus reset. */
const RESYNC_CONCURRENCY = 16;

/** A join (`conversation.updated` on the user's topic) or a leave, kick or deletion (`conversation.removed`). */
interface MembershipChange {
  conversationId: string;
  joined: boolean;
  /** For a join: the conversation's lastSeq when the join's event was made (where its recovery reads from). */
  lastSeq?: number;
}

/** What a connection accumulates between registration and `welcome`. */
interface Setup {
  /** Events for the connection, in arrival order, sent right after `welcome`. */
  frames: Buffer[];
  bytes: number;
  /** Membership changes that arrived before the conversation list was read, replayed on top of it. */
  changes: MembershipChange[];
  /** The conversation list is in the interest index: later changes apply directly. */
  listed: boolean;
  /** Requests the client sent before `welcome`, served after it (their replies must not precede it). */
  requests: Array<[RawData, boolean]>;
}

const noop = (): void => {};
const emptyWatches: ReadonlySet<string> = new Set();
type TaggedSocket = WebSocket & { [kConnection]?: Connection };

/**
 * The WebSocket gateway: authenticates upgrades, keeps the local interest index (which connections receive which
 * conversation's events), subscribes the bus to exactly those topics, and fans each bus payload out as one frame
 * written to every interested socket. Requests go to the Dispatcher.
 */
export class Gateway implements ConnectionOwner {
  private readonly wss: WebSocketServer;
  private readonly scheduler: WriteScheduler;
  private readonly connections = new Set<Connection>();
  /** userId → its one connection, or a Set of them when it has several (most users have one; a Set costs ~150 B). */
  private readonly byUser = new Map<string, Connection | Set<Connection>>();
  private readonly byConversation = new Map<string, Set<Connection>>();
  /** Conversation topic subscriptions still on their way to the bus (a join's reply waits for its conversation's). */
  private readonly subscribing = new Map<string, Promise<void>>();
  /**
   * Presence subscriptions (`presence.subscribe`): watched userId → the connections watching, and each watching
   * connection → its watched users. Only connections that subscribed have an entry: an idle one costs nothing here.
   */
  private readonly presenceWatchers = new Map<string, Set<Connection>>();
  private readonly presenceWatches = new Map<Connection, Set<string>>();
  private readonly dispatcher: Dispatcher;
  private readonly recovery: JoinRecovery;
  private readonly heartbeat: Heartbeat;
  private draining = false;
  /** A reconciliation round in progress (reconcileAll), and the timer that starts them. */
  private reconciling: Promise<void> | null = null;
  private readonly reconcileTimer: NodeJS.Timeout | null;
  /** Connections registered but not yet welcomed, with what they are held until then. */
  private readonly setups = new Map<Connection, Setup>();
  /** Presence connects still running, so a disconnect can follow its connect instead of overtaking it. */
  private readonly presenceConnecting = new Map<Connection, Promise<void>>();
  /** Connection work in progress (see settled()). */
  private readonly inFlight = new Set<Promise<void>>();
  /** The backlog of every connection (Connection.backlogBytes): what fan-out has not yet got to its readers. */
  private backlogTotal = 0;
  /** Connections with unanswered position pings (see ConnectionOwner.unansweredChanged); none: nobody is behind. */
  private unanswered = 0;
  /** Whether each conversation's readers were behind when last looked at, when, and the publishing requests since. */
  private readonly behindCache = new Map<string, { behind: boolean; at: number; sends: number }>();
  /** When closeStalled last scanned the connections (ms since the epoch). */
  private stallCheckAt = 0;
  /**
   * The fan-out that requests being served are expected to add (see expectedFanOut), reserved from their start until
   * they are answered: without it, requests admitted while under budget (up to maxInflightRequests per connection)
   * could put far more than the budget on the way before their events are queued and counted.
   */
  private reservedTotal = 0;
  /** Connections whose reading is paused because the process is over its outgoing budget. */
  private readonly paused = new Set<Connection>();
  private resumeTimer: ReturnType<typeof setInterval> | null = null;

  constructor(private readonly deps: GatewayDeps) {
    const { options } = deps;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: options.maxFrameBytes,
      perMessageDeflate: false,
      clientTracking: false,
      handleProtocols: selectSubprotocol,
    });
    this.scheduler = new WriteScheduler(options.outgoingProbeMs);
    this.dispatcher = new Dispatcher(deps.services, deps.metrics, deps.logger, options, deps.limiter, (c) => this.scopeOf(c), (c, name) => this.closeConnection(c, name), (c, type, result) => this.listenOnJoin(c.userId, type, result));
    this.recovery = new JoinRecovery({
      readAfter: (id, afterSeq, limit) => deps.services.chat.messagesForMembers(id, afterSeq, limit),
      sendMessages: (id, messages) => this.sendToAudience(id, messages.map((m) => frameText(encodeEvent('message.new', m)))),
      askResync: (id) => this.sendToAudience(id, [this.resyncFrame('join_recovery')]),
      redeliver: (id, payload) => this.deliver(conversationTopic(id), payload),
      onError: (err) => deps.logger.warn({ err }, 'join recovery could not read: asking for a resync'),
    });
    this.heartbeat = new Heartbeat(this.connections, options.heartbeat, options.presenceTtlMs, deps.services.presence, (c, name) => this.closeConnection(c, name), deps.logger);
    deps.bus.onMessage((topic, payload) => {
      deps.metrics.busReceived.inc();
      deps.metrics.busReceivedBytes.inc(payload.length);
      this.deliver(topic, payload);
    });
    deps.bus.onReset(() => this.resynchroniseAll('bus_reset'));
    // Kept by the bus across reconnects like every interest; a failure now is restored (then reset) when it is back.
    deps.bus.subscribe(clusterTopic).catch((err) => deps.logger.warn({ err }, 'bus subscribe failed (cluster topic): restored when the bus is back'));
    deps.metrics.sources.outgoing = () => this.outgoingBytes();
    this.reconcileTimer = options.reconcileMs > 0 ? setInterval(() => this.reconcileAll(), options.reconcileMs) : null;
    this.reconcileTimer?.unref();
  }

  /** Outgoing bytes held for every connection (metrics, read at scrape time). */
  private outgoingBytes(): { queued: number; socket: number; backlog: number; paused: number } {
    let queued = 0;
    let socket = 0;
    for (const connection of this.connections) {
      queued += connection.queuedByteCount;
      socket += connection.socketBufferedBytes;
    }
    return { queued, socket, backlog: this.backlogTotal, paused: this.paused.size };
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Handle an HTTP upgrade request (wired to the HTTP server's 'upgrade' event). */
  handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== this.deps.options.path) return refuse(socket, 404, 'Not Found');
    if (this.draining) return refuse(socket, 503, 'Service Unavailable');
    // Before authenticating: a page of a foreign origin learns nothing, not even whether its token is valid.
    if (this.deps.options.allowOrigin && !this.deps.options.allowOrigin(req.headers.origin, req.headers.host)) return refuse(socket, 403, 'Forbidden');
    // A shared function, not a closure: a closure here would share this function's context, which holds `req` and
    // `head` for the closures below, and keep the whole request alive as long as the socket (~1.5 KB a connection).
    socket.on('error', destroySocket);
    const { token, version } = readHandshake(req, url);
    const authenticating = withinDeadline(this.deps.authenticator.authenticate(token), this.deps.options.headersTimeoutMs / 2,
      () => new ParleyError('UNAVAILABLE', 'authentication did not complete in time (the store is not answering)'));
    this.track(authenticating.then(
      (identity) => this.admitAttempt(identity.userId).then((admitted) => this.upgrade(req, socket, head, (ws) => admitted
        ? this.accept(ws, socket, identity, version)
        : this.refuseAfterUpgrade(ws, 'TOO_MANY_CONNECTIONS'))),
      // Browsers cannot read an HTTP status of a failed upgrade: complete it and close with a code they can see.
      (err) => {
        if (!isParleyError(err)) this.deps.logger.error({ err }, 'authenticating a connection failed unexpectedly; closed 4005');
        this.upgrade(req, socket, head, (ws) => this.refuseAfterUpgrade(ws, refusalFor(err)));
      },
    ));
  }

  /**
   * Stop accepting and serving, tell every client to reconnect elsewhere (4000), and wait for the sockets to close.
   * A connection is closed once the requests it is being served are answered (within half of `timeoutMs`; then it is
   * closed anyway), so that what was stored is acknowledged; requests that arrive or were held from now on are not
   * served (no reply: the client retries them after reconnecting, with the same key).
   */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    this.heartbeat.stop();
    if (this.resumeTimer !== null) clearInterval(this.resumeTimer);
    this.resumeTimer = null;
    const deadline = Date.now() + timeoutMs;
    const answeredBy = Date.now() + timeoutMs / 2;
    while (this.closeAnswered() > 0 && Date.now() < answeredBy) await new Promise((r) => setTimeout(r, 10));
    for (const connection of this.connections) this.closeConnection(connection, 'SERVER_SHUTDOWN');
    while (this.connections.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const connection of this.connections) connection.ws.terminate();
    // A terminated socket reports 'close' a moment later; its unregister starts work that settled() then waits for.
    const closedBy = Date.now() + 1000;
    while (this.connections.size > 0 && Date.now() < closedBy) await new Promise((r) => setTimeout(r, 10));
    await this.settled();
  }

  /** Close (4000) each open connection that has no request being served; how many are left open. */
  private closeAnswered(): number {
    let open = 0;
    for (const connection of this.connections) {
      if (connection.state !== ConnectionState.Open) continue;
      if (connection.inflight === 0) this.closeConnection(connection, 'SERVER_SHUTDOWN');
      else open++;
    }
    return open;
  }

  /**
   * Resolves once every piece of connection work started so far (authentication, setup, presence connect and
   * disconnect) has finished, so the caller may close the store and bus under it. Work that starts while waiting is
   * waited for too.
   */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  close(): void {
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    this.heartbeat.stop();
    this.scheduler.stop();
    if (this.resumeTimer !== null) clearInterval(this.resumeTimer);
    for (const connection of this.connections) connection.ws.terminate();
    this.wss.close();
  }

  // ---------------------------------------------------------------- connection lifecycle

  /**
   * The user's connection-attempt rate: each connection has its own request budget, so connecting over and over must
   * not mint fresh budgets without bound. A limiter that cannot answer admits (the seam's rule).
   */
  private admitAttempt(userId: string): Promise<boolean> {
    return this.deps.limiter.take(`connect:${userId}`, this.deps.options.userConnectRate).then((d) => d.allowed, () => true);
  }

  /**
   * A request's `track`, ending its reservation (see `answered`) when it settles: one promise and one closure per
   * request, the most frequent piece of work there is (a `finally` before `track` cost three promises and three
   * closures, +10% allocation in the DM bench).
   */
  private trackRequest(work: Promise<unknown>, connection: Connection, reserved: number, reply: number): void {
    const done = (): void => {
      this.inFlight.delete(settled);
      this.answered(connection, reserved, reply);
    };
    const settled: Promise<void> = work.then(done, done);
    this.inFlight.add(settled);
  }

  /** Keep a piece of connection work in `inFlight` until it settles (shutdown waits for it). */
  private track(work: Promise<unknown>): void {
    const settled = work.then(noop, noop);
    this.inFlight.add(settled);
    void settled.then(() => this.inFlight.delete(settled));
  }

  private upgrade(req: IncomingMessage, socket: Socket, head: Buffer, then: (ws: WebSocket) => void): void {
    if (socket.destroyed) return;
    upgradeSettled(socket);
    this.wss.handleUpgrade(req, socket, head, then);
  }

  private refuseAfterUpgrade(ws: WebSocket, name: CloseName): void {
    const { code, reason } = closeCatalogue[name];
    this.deps.metrics.closes.inc({ reason: name });
    ws.close(code, reason);
    setTimeout(() => ws.terminate(), 2000).unref();
  }

  private accept(ws: TaggedSocket, socket: Socket, identity: Identity, version: number | null): void {
    if (version === null) return this.refuseAfterUpgrade(ws, 'UNSUPPORTED_VERSION');
    if (this.draining) return this.refuseAfterUpgrade(ws, 'SERVER_SHUTDOWN');
    // Checked where the connection is registered, synchronously: concurrent upgrades of one user cannot pass it together.
    if (this.deviceCount(identity.userId) >= this.deps.options.maxConnectionsPerUser) return this.refuseAfterUpgrade(ws, 'TOO_MANY_CONNECTIONS');
    const now = Date.now();
    const expiresAt = identity.expiresAt === null ? null : identity.expiresAt + this.deps.options.tokenClockToleranceMs;
    const connection = new Connection(randomUUID(), identity.userId, identity.name, expiresAt, ws, socket, this, this.scheduler, this.deps.options, now);
    connection.sessionId = identity.sessionId;
    connection.tokenGeneration = identity.tokenGeneration;
    ws[kConnection] = connection;
    ws.on('message', onSocketMessage);
    ws.on('pong', onSocketPong);
    ws.on('close', onSocketClose);
    ws.on('error', onSocketError);
    this.register(connection);
    this.deps.metrics.connections.inc();
    this.deps.metrics.connectionsTotal.inc();
    this.track(this.setUp(connection));
  }

  /**
   * From registered to welcomed, without a window in which an event can be lost or overtake `welcome`:
   * 1. subscribe to the user's topic first, so every membership change (join, kick, ban) from now on reaches the
   *    connection's setup record;
   * 2. then read the user (a ban or logout stored before step 1 is seen here) and the conversation list;
   * 3. add the listed conversations to the interest index, then replay the membership changes that arrived meanwhile,
   *    in arrival order (a change committed after the list was read is applied on top of it);
   * 4. wait for the conversation subscriptions, then read the conversations' positions (after the subscriptions, so
   *    that whatever follows a listed position reaches the connection as an event), queue `welcome` with them, then
   *    every event held since step 1, then requests the client sent before `welcome`.
   * A socket that closes at any step stops the setup: `unregister` has already undone what was done, and presence was
   * never marked online.
   */
  private async setUp(connection: Connection): Promise<void> {
    const { userId } = connection;
    const setup = this.setups.get(connection);
    if (!setup) return;
    let topics: string[] = [];
    let positions: ConversationPosition[] = [];
    try {
      await this.deps.bus.subscribe(userTopic(userId));
      if (connection.state !== ConnectionState.Open) return this.releaseAbandoned(userId, topics);
      const admission = await this.deps.sessions.admit(userId, connection.sessionId, connection.tokenGeneration);
      if (connection.state !== ConnectionState.Open) return this.releaseAbandoned(userId, topics);
      if (admission.status === 'unknown_user' || admission.status === 'revoked') return this.closeConnection(connection, 'UNAUTHORIZED');
      if (admission.status === 'banned') return this.closeConnection(connection, 'BANNED');
      const { conversationIds } = admission;
      for (const id of conversationIds) this.addInterest(connection, id);
      for (const change of setup.changes) this.applyChange(connection, change);
      setup.listed = true;
      topics = [...connection.conversations];
      await Promise.all(topics.map((id) => this.deps.bus.subscribe(conversationTopic(id))));
      if (connection.state !== ConnectionState.Open) return this.releaseAbandoned(userId, topics);
      positions = await this.deps.sessions.positions(userId);
      if (connection.state !== ConnectionState.Open) return this.releaseAbandoned(userId, topics);
    } catch (err) {
      if (connection.state !== ConnectionState.Open) return this.releaseAbandoned(userId, topics);
      this.deps.logger.warn({ err, userId }, 'connection setup failed');
      return this.closeConnection(connection, 'UNAVAILABLE');
    }
    this.setups.delete(connection);
    const listed = takeLeading(positions, this.welcomeBudget());
    connection.sendText(encodeEvent('welcome', {
      version: CURRENT_VERSION,
      connectionId: connection.id,
      user: { id: userId, name: connection.userName },
      heartbeatIntervalMs: this.deps.options.heartbeat.intervalMs,
      limits: { maxMessageBytes: this.deps.options.maxMessageBytes, maxFrameBytes: this.deps.options.maxFrameBytes },
      conversations: listed.taken,
      conversationsMore: listed.cut,
    }));
    let sent = 0;
    for (const frame of setup.frames) if (connection.send(frame)) sent++;
    this.deps.metrics.framesOut.inc(sent);
    this.markOnline(connection);
    for (const [data, isBinary] of setup.requests) this.handleFrame(connection, data, isBinary);
  }

  /**
   * The budget of `welcome`'s conversation list: the reply budget (at most half the slow-consumer backlog level, as for
   * replies), less room for welcome's fixed fields.
   */
  private welcomeBudget(): ReplyBudget {
    return new ReplyBudget(this.deps.options.maxReplyBytes - WELCOME_FIXED_BYTES);
  }

  /**
   * A setup stopped by its socket closing: a subscription that resolved after `unregister` released the topics may
   * have re-added them on an engine that does not order the two; release again what no connection here needs.
   */
  private releaseAbandoned(userId: string, conversationIds: string[]): void {
    if (!this.byUser.has(userId)) this.unsubscribe(userTopic(userId));
    for (const id of conversationIds) if (!this.byConversation.has(id)) this.unsubscribe(conversationTopic(id));
  }

  /** Presence goes online once `welcome` is queued; a disconnect waits for this to finish (see unregister). */
  private markOnline(connection: Connection): void {
    const connecting = this.deps.services.presence.connected(connection.userId, connection.id)
      .catch((err) => this.deps.logger.warn({ err }, 'presence connect failed'))
      .finally(() => this.presenceConnecting.delete(connection));
    this.presenceConnecting.set(connection, connecting);
    this.track(connecting);
  }

  private register(connection: Connection): void {
    this.connections.add(connection);
    this.setups.set(connection, { frames: [], bytes: 0, changes: [], listed: false, requests: [] });
    const devices = this.byUser.get(connection.userId);
    if (devices === undefined) this.byUser.set(connection.userId, connection);
    else if (devices instanceof Set) devices.add(connection);
    else this.byUser.set(connection.userId, new Set([devices, connection]));
  }

  /**
   * Called when a connection's socket closes, whoever closed it and at whatever step of its setup. Idempotent: the
   * second call does nothing. Undoes exactly what was done: interests and subscriptions are released, and presence is
   * marked offline only if it was marked online (after its connect finished, so the two cannot cross).
   */
  unregister(connection: Connection): void {
    if (connection.state === ConnectionState.Closed) return;
    connection.state = ConnectionState.Closed;
    if (!this.connections.delete(connection)) return;
    this.deps.metrics.connections.dec();
    this.backlogTotal -= connection.uncount();
    this.paused.delete(connection);
    for (const id of [...connection.conversations]) this.removeInterest(connection, id);
    const watches = this.presenceWatches.get(connection);
    if (watches) this.unwatchPresence(connection, [...watches]);
    const devices = this.byUser.get(connection.userId);
    let lastDevice = false;
    if (devices === connection) {
      lastDevice = true;
    } else if (devices instanceof Set && devices.delete(connection) && devices.size === 1) {
      this.byUser.set(connection.userId, devices.values().next().value!);
    }
    if (lastDevice) {
      this.byUser.delete(connection.userId);
      this.unsubscribe(userTopic(connection.userId));
    }
    const welcomed = !this.setups.delete(connection);
    if (!welcomed) return;
    const connecting = this.presenceConnecting.get(connection) ?? Promise.resolve();
    this.track(connecting
      .then(() => this.deps.services.presence.disconnected(connection.userId, connection.id))
      .catch((err) => this.deps.logger.warn({ err }, 'presence disconnect failed')));
  }

  closeConnection(connection: Connection, name: CloseName): void {
    connection.close(name);
  }

  countClose(name: CloseName): void {
    this.deps.metrics.closes.inc({ reason: name });
  }

  backlogChanged(delta: number): void {
    this.backlogTotal += delta;
  }

  unansweredChanged(delta: 1 | -1): void {
    this.unanswered += delta;
  }

  // ---------------------------------------------------------------- backpressure on requesting connections

  /**
   * While publishers are held, readers that confirm nothing for a whole `slowConsumerMs` are stuck, whatever their own
   * backlog: several of them, each under its own limit, could otherwise hold the budget (and every publisher) forever.
   * Checked every `outgoingProbeMs` while over budget: a connection that has owed bytes without confirming any for
   * `slowConsumerMs` (for one whose pongs wait unread: whose socket buffer the kernel did not take from) is closed
   * (4002) at once, so non-readers hold publishers for about `slowConsumerMs` from when they stopped reading, not
   * from when the budget filled.
   */
  private closeStalled(overBudget = false): void {
    const now = Date.now();
    // Also reached from every answered request while someone is paused: about one scan per outgoingProbeMs is enough.
    if (now - this.stallCheckAt < this.deps.options.outgoingProbeMs / 2) return;
    this.stallCheckAt = now;
    const limit = this.deps.options.slowConsumerMs;
    for (const connection of [...this.connections]) {
      if (connection.state !== ConnectionState.Open) continue;
      // Over the process-wide budget, readers that left bytes unread for slowConsumerMs are closed too, though they
      // still read: a few slow readers of one busy group would otherwise fill the budget and hold every publisher on
      // the server (outside check: 6 readers at 100 KB/s held an unrelated publisher up to 19 s, again and again).
      // Judged by the measured age of an unanswered ping, not by delayMs's estimates: those closed 48 of 1,000
      // readers in bench:overload whose deliveries were never more than 1.6 s late.
      if (connection.stalledMs(now) >= limit || (overBudget && connection.unreadForMs(now) >= limit)) connection.abandon('SLOW_CONSUMER');
    }
  }

  /** Over the process-wide outgoing budget: the connections' backlogs plus what requests being served will add. */
  private overBudget(): boolean {
    return this.backlogTotal + this.reservedTotal > this.deps.options.maxOutgoingTotalBytes;
  }

  /**
   * Over the process-wide outgoing budget, a connection that sends a request is not served (its requests are held,
   * and past a frame's worth its socket is no longer read: TCP backpressure) until fan-out caught up. Only requesting
   * connections are paused: a connection that only receives is never slowed.
   */
  private pause(connection: Connection): void {
    if (connection.paused || connection.state !== ConnectionState.Open) return;
    connection.paused = true;
    this.deps.metrics.backpressurePauses.inc();
    this.paused.add(connection);
    if (this.resumeTimer === null) {
      this.resumeTimer = setInterval(this.resumeIfCaughtUp, this.deps.options.outgoingProbeMs);
    }
  }

  /**
   * Resume the paused connections once the backlog (with what requests being served will add) is back under 3/4 of
   * the budget, each one also once its own backlog is. A paused connection whose socket is not read counts what our socket buffer holds for it (see
   * Connection.backlogBytes), which the kernel drains without telling us: counted afresh here.
   */
  private readonly resumeIfCaughtUp = (): void => {
    for (const connection of this.paused) if (connection.socketPaused) connection.recount();
    if (this.backlogTotal + this.reservedTotal > (this.deps.options.maxOutgoingTotalBytes * 3) / 4) return this.closeStalled(true);
    // A connection paused for its own backlog waits until that is back under 3/4 of limits.maxOutgoingBytes (or it is
    // closed as a slow consumer); one held for a conversation whose readers are behind waits until they are not; the
    // others go on.
    const own = (this.deps.options.maxOutgoingBytes * 3) / 4;
    const now = Date.now();
    const resuming = [...this.paused].filter(
      (connection) => connection.owedBytes() <= own && (connection.heldFor === null || !this.readersBehind(connection.heldFor, now)),
    );
    // Readers that stopped altogether must not hold a conversation's publishers for ever.
    if (resuming.length < this.paused.size && [...this.paused].some((connection) => connection.heldFor !== null)) this.closeStalled();
    for (const connection of resuming) {
      this.paused.delete(connection);
      connection.heldFor = null;
    }
    if (this.paused.size === 0 && this.resumeTimer !== null) {
      clearInterval(this.resumeTimer);
      this.resumeTimer = null;
    }
    for (const connection of resuming) {
      connection.paused = false;
      this.readAgain(connection);
    }
  };

  /**
   * Once neither paused nor throttled: serve the requests held meanwhile, in order, then read the socket again. A held
   * request that pauses or throttles the connection anew leaves the rest held, ahead of anything read later.
   */
  private readAgain(connection: Connection): void {
    if (!connection.serving || connection.state !== ConnectionState.Open) return;
    const held = connection.held;
    connection.held = null;
    connection.heldBytes = 0;
    if (held) {
      for (let i = 0; i < held.length; i++) {
        if (connection.state !== ConnectionState.Open) return;
        if (!connection.serving) {
          for (let j = i; j < held.length; j++) this.holdRequest(connection, held[j]![0], held[j]![1]);
          return;
        }
        this.handleFrame(connection, held[i]![0], held[i]![1]);
      }
    }
    if (connection.serving && connection.state === ConnectionState.Open) connection.resumeSocket();
  }

  /**
   * Keep a request of a connection that is not serving, in order. The socket keeps being read (its pongs still confirm
   * what it read) until the held requests pass one frame's worth (`maxFrameBytes`); then it is paused too.
   */
  private holdRequest(connection: Connection, data: RawData, isBinary: boolean): void {
    (connection.held ??= []).push([data, isBinary]);
    connection.heldBytes += rawDataBytes(data);
    if (connection.heldBytes > this.deps.options.maxFrameBytes) connection.pauseSocket();
  }

  // ---------------------------------------------------------------- interest index

  /**
   * Add the connection to the conversation's local audience; the first one subscribes this instance to its topic.
   * Returns that subscription (it never rejects: a failure is logged), or null when the topic was subscribed already.
   */
  private addInterest(connection: Connection, conversationId: string, subscribe = true): Promise<void> | null {
    connection.addConversation(conversationId);
    let members = this.byConversation.get(conversationId);
    let subscribing: Promise<void> | null = null;
    if (!members) {
      this.byConversation.set(conversationId, (members = new Set()));
      if (subscribe) {
        const pending = (subscribing = this.deps.bus.subscribe(conversationTopic(conversationId)).catch((err) => this.deps.logger.error({ err }, 'bus subscribe failed')));
        // Kept while on its way: a later joiner here waits for it too (listenOnJoin).
        this.subscribing.set(conversationId, pending);
        void pending.then(() => {
          if (this.subscribing.get(conversationId) === pending) this.subscribing.delete(conversationId);
        });
      }
    }
    members.add(connection);
    return subscribing;
  }

  private removeInterest(connection: Connection, conversationId: string): void {
    connection.removeConversation(conversationId);
    if (connection.heldFor === conversationId) {
      // Held for a conversation it has left or was removed from: how its readers are doing is no longer its business,
      // and every request of it waited on them (outside check: a kicked member's next requests, to other groups too,
      // waited 4.6 s). Still held while the process is over budget or its own backlog is high.
      connection.heldFor = null;
      this.resumeIfCaughtUp();
    }
    const members = this.byConversation.get(conversationId);
    if (!members) return;
    members.delete(connection);
    if (members.size === 0) {
      this.byConversation.delete(conversationId);
      this.recovery.forget(conversationId);
      this.unsubscribe(conversationTopic(conversationId));
    }
  }

  /** What requests may change on this connection (presence subscriptions). */
  private scopeOf(connection: Connection): ConnectionScope {
    const watches = this.presenceWatches;
    return {
      get presenceWatches() {
        return watches.get(connection) ?? emptyWatches;
      },
      watchPresence: (userIds) => this.watchPresence(connection, userIds),
      unwatchPresence: (userIds) => this.unwatchPresence(connection, userIds),
    };
  }

  /** Adds the watches at once (the caller's bound holds); resolves once the new presence topics are subscribed. */
  private watchPresence(connection: Connection, userIds: readonly string[]): Promise<void> {
    if (connection.state === ConnectionState.Closed || userIds.length === 0) return Promise.resolve();
    let watches = this.presenceWatches.get(connection);
    if (!watches) this.presenceWatches.set(connection, (watches = new Set()));
    const subscribing: Array<Promise<void>> = [];
    for (const userId of userIds) {
      watches.add(userId);
      let watchers = this.presenceWatchers.get(userId);
      if (!watchers) {
        this.presenceWatchers.set(userId, (watchers = new Set()));
        subscribing.push(this.deps.bus.subscribe(presenceTopic(userId)));
      }
      watchers.add(connection);
    }
    return Promise.all(subscribing).then(noop);
  }

  private unwatchPresence(connection: Connection, userIds: readonly string[]): void {
    const watches = this.presenceWatches.get(connection);
    if (!watches) return;
    for (const userId of userIds) {
      if (!watches.delete(userId)) continue;
      const watchers = this.presenceWatchers.get(userId);
      if (!watchers) continue;
      watchers.delete(connection);
      if (watchers.size === 0) {
        this.presenceWatchers.delete(userId);
        this.unsubscribe(presenceTopic(userId));
      }
    }
    if (watches.size === 0) this.presenceWatches.delete(connection);
  }

  private unsubscribe(topic: string): void {
    this.deps.bus.unsubscribe(topic).catch((err) => this.deps.logger.warn({ err, topic }, 'bus unsubscribe failed'));
  }

  // ---------------------------------------------------------------- fan-out

  private deviceCount(userId: string): number {
    const devices = this.byUser.get(userId);
    return devices === undefined ? 0 : devices instanceof Set ? devices.size : 1;
  }

  /** A user's connections on this instance. */
  private devicesOf(userId: string): Set<Connection> | Connection[] {
    const devices = this.byUser.get(userId);
    return devices === undefined ? [] : devices instanceof Set ? devices : [devices];
  }

  /** One bus payload: framed once, queued to every interested local connection (held for one still setting up). */
  private deliver(topic: string, payload: Buffer): void {
    const envelope = decodeEnvelope(payload);
    const isUserTopic = topic.charCodeAt(0) === 0x75; /* u */
    const isPresenceTopic = topic.charCodeAt(0) === 0x70; /* p */
    const id = topic.slice(2);
    if (envelope.kind === 'control') return this.control(topic, id, envelope.command);
    const targets = isUserTopic ? this.devicesOf(id) : isPresenceTopic ? this.presenceWatchers.get(id) : this.byConversation.get(id);
    if (!targets || (targets instanceof Set ? targets.size : targets.length) === 0) return;
    if (this.recovery.active && !isUserTopic && !isPresenceTopic && this.recovery.admit(id, payload, envelope.frame) !== 'deliver') return;
    if (isUserTopic) {
      const change = membershipChange(envelope.frame);
      if (change) for (const c of [...targets]) this.noteChange(c, change);
    }
    const frame = frameText(envelope.frame);
    const except = envelope.exceptUser;
    const exceptConnection = envelope.exceptConnection;
    let sent = 0;
    for (const connection of targets) {
      if (except !== null && connection.userId === except) continue;
      if (exceptConnection !== null && connection.id === exceptConnection) continue;
      const setup = this.setups.size > 0 ? this.setups.get(connection) : undefined;
      if (setup) this.hold(connection, setup, frame);
      else if (connection.send(frame)) sent++;
    }
    this.deps.metrics.framesOut.inc(sent);
  }

  /**
   * A control message. `ban` and `revoke[:<session>]` on a user topic close that user's connections. `resync`: an
   * instance could not publish an event of this topic (src/domain/publisher.ts): a conversation's audience is asked to
   * `resync`; a user's connections are admitted again and their interests read from the store first (the lost event
   * may be a membership change or a ban); on the cluster topic, every connection is.
   */
  private control(topic: string, id: string, command: string): void {
    const kind = topic.charCodeAt(0);
    if (kind === 0x75 /* u */) {
      if (command === 'ban') for (const c of [...this.devicesOf(id)]) this.closeConnection(c, 'BANNED');
      else if (command.startsWith('revoke')) this.closeRevoked(id, command.slice('revoke:'.length) || null);
      else if (command === 'resync' && this.byUser.has(id)) this.track(this.resynchroniseUser(id, this.resyncFrame('events_lost')));
    } else if (command === 'resync') {
      if (kind === 0x63 /* c */) this.sendToAudience(id, [this.resyncFrame('events_lost')]);
      else if (topic === clusterTopic) this.resynchroniseAll('events_lost');
    }
  }

  private resyncFrame(reason: EventMap['resync']['reason']): Buffer {
    return frameText(encodeEvent('resync', { reason }));
  }

  /** Queue frames to every local connection of the conversation (held for one still setting up). */
  private sendToAudience(conversationId: string, frames: Buffer[]): void {
    for (const connection of this.byConversation.get(conversationId) ?? []) {
      const setup = this.setups.size > 0 ? this.setups.get(connection) : undefined;
      for (const frame of frames) {
        if (setup) this.hold(connection, setup, frame);
        else connection.send(frame);
      }
    }
  }

  /** Close the user's connections of a logged-out session (or all of them: null) with 4500. */
  private closeRevoked(userId: string, sessionId: string | null): void {
    for (const c of [...this.devicesOf(userId)]) {
      // "Everywhere" revokes the server's own tokens only: a connection made with a product token keeps its valid token.
      const revoked = sessionId === null ? c.tokenGeneration !== null : c.sessionId === sessionId;
      if (revoked) this.closeConnection(c, 'UNAUTHORIZED');
    }
  }

  /** Keep an event for a connection that has not been welcomed yet; bounded like its outgoing queue. */
  private hold(connection: Connection, setup: Setup, frame: Buffer): void {
    if (connection.state !== ConnectionState.Open) return;
    setup.bytes += frame.length;
    if (setup.bytes > this.deps.options.maxOutgoingBytes) return connection.abandon('SLOW_CONSUMER');
    setup.frames.push(frame);
  }

  /** A membership change of the connection's user: applied now, or after the conversation list during setup. */
  private noteChange(connection: Connection, change: MembershipChange): void {
    const setup = this.setups.get(connection);
    if (setup && !setup.listed) setup.changes.push(change);
    else this.applyChange(connection, change);
  }

  /** A user's own events say when they joined or left a conversation: keep the interest index in step. */
  private applyChange(connection: Connection, change: MembershipChange): void {
    if (connection.state === ConnectionState.Closed) return;
    if (!change.joined) return this.removeInterest(connection, change.conversationId);
    const subscription = this.addInterest(connection, change.conversationId);
    // The first local connection of the conversation: what was published before the subscription is recovered.
    if (subscription && change.lastSeq !== undefined) this.track(this.recovery.recover(change.conversationId, change.lastSeq, subscription));
  }

  /**
   * A request that made its user a member (JOINING), over WebSocket or REST: the user's connections here listen on the
   * conversation's topic, and the reply waits for the subscription (the first local interest's, or one still on its
   * way for an earlier joiner here). Waiting for the user's own `conversation.updated` to come back over the bus (as
   * other instances' members do) left a window after the reply: an event of the conversation published then, such as
   * another instance's member joining, reached no connection here (a member.joined was lost under load). Messages
   * published before the subscription are recovered from the store, as for any first local interest.
   */
  listenOnJoin(userId: string, type: RequestType, result: unknown): Promise<void> | null {
    if (!JOINING.has(type)) return null;
    const conversation = (result as { conversation?: { id?: unknown; lastSeq?: unknown } }).conversation;
    if (typeof conversation?.id !== 'string' || typeof conversation.lastSeq !== 'number') return null;
    const change: MembershipChange = { conversationId: conversation.id, joined: true, lastSeq: conversation.lastSeq };
    for (const device of [...this.devicesOf(userId)]) this.noteChange(device, change);
    return this.subscribing.get(conversation.id) ?? null;
  }

  /**
   * The bus lost events (it reconnected, and resubscribed this instance's topics: `bus_reset`), or an instance lost more
   * of its publishes than it could remember (`events_lost`, on the cluster topic). Membership and control events may be
   * among them, so each local connection is admitted again as at its setup (a ban or logout whose event was lost
   * closes it) and its interests brought in step with the store (a kick or group ban whose event was lost stops
   * delivery here; a join whose event was lost starts it); once the subscriptions
   * are in place, the user's connections get `resync` and catch up with `sync`, staying open (closing every connection
   * of every instance at once would be a reconnect storm). Users are done `RESYNC_CONCURRENCY` at a time: a bounded
   * stream of reads, not one burst. A user whose conversations cannot be read is closed with 4005 (reconnect, sync).
   */
  private resynchroniseAll(reason: 'bus_reset' | 'events_lost'): void {
    const why = reason === 'bus_reset' ? 'bus reset' : 'an instance (this one or another) lost more events than it could track';
    this.deps.logger.warn({ users: this.byUser.size, connections: this.connections.size, reason }, `${why}: reconciling interests and asking clients to resynchronise`);
    const frame = this.resyncFrame(reason);
    this.track(this.eachLocalUser((userId) => this.resynchroniseUser(userId, frame)));
  }

  /**
   * The periodic reconciliation (`bus.reconcileMs`): every local user is admitted again and its interests brought in
   * step with the store, as at a reset, a few users at a time; only connections whose conversations changed get
   * `resync` (banned or revoked ones are closed). What it bounds: a removal or ban whose event no instance delivered
   * (owed by an instance that died before it could publish) stops delivery here within one period. A round still
   * running when the next is due makes that one wait.
   */
  private reconcileAll(): void {
    if (this.reconciling !== null || this.draining) return;
    const frame = this.resyncFrame('events_lost');
    let unreadable = 0;
    let firstError: unknown = null;
    const round = this.eachLocalUser(async (userId) => {
      const outcome = await this.resynchroniseUser(userId, frame, true);
      if (outcome === 'done') return;
      unreadable++;
      firstError ??= outcome.unreadable;
    }, () => this.draining).then(() => {
      if (unreadable > 0) this.deps.logger.warn({ users: unreadable, err: firstError }, 'reconciliation could not read some users from the store: their connections are kept, read again next period');
    });
    this.reconciling = round.finally(() => {
      this.reconciling = null;
    });
    this.track(this.reconciling);
  }


  /**
   * `work` for each user with connections here now, `RESYNC_CONCURRENCY` users at a time (a bounded stream of store
   * reads, not one burst), until `stop` says so.
   */
  private async eachLocalUser(work: (userId: string) => Promise<unknown>, stop: () => boolean = () => false): Promise<void> {
    const users = [...this.byUser.keys()];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < users.length && !stop()) await work(users[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(RESYNC_CONCURRENCY, users.length) }, worker));
  }

  /**
   * One user after a bus reset. Each connection is admitted again as at its setup (the user may have been banned, or
   * its token revoked, while the bus was down: those control events may be lost too), and its interests brought in
   * step with the user's conversations as the store has them now.
   */
  private async resynchroniseUser(userId: string, frame: Buffer, onlyIfChanged = false): Promise<'done' | { unreadable: unknown }> {
    const subscribing: Array<Promise<void>> = [];
    const ready: Connection[] = [];
    let unreadable: { unreadable: unknown } | null = null;
    for (const connection of [...this.devicesOf(userId)]) {
      if (connection.state !== ConnectionState.Open) continue;
      const setup = this.setups.get(connection);
      // Still setting up: it reads the user and lists its conversations after subscribing; the event follows welcome.
      if (setup) {
        if (!onlyIfChanged) this.hold(connection, setup, frame);
        continue;
      }
      let admission: ConnectionAdmission;
      try {
        admission = await this.deps.sessions.admit(userId, connection.sessionId, connection.tokenGeneration);
      } catch (err) {
        // A periodic round keeps the connections (nothing says they are wrong; the next round reads again): closing
        // every connection of every instance whenever the store is briefly away would be a reconnect storm.
        if (onlyIfChanged) {
          unreadable ??= { unreadable: err };
          continue;
        }
        this.deps.logger.warn({ err, userId }, 'resync: the user could not be read, closing the connection (it reconnects and syncs)');
        this.closeConnection(connection, 'UNAVAILABLE');
        continue;
      }
      if (connection.state !== ConnectionState.Open) continue;
      if (admission.status === 'banned') {
        this.closeConnection(connection, 'BANNED');
        continue;
      }
      if (admission.status !== 'admitted') {
        this.closeConnection(connection, 'UNAUTHORIZED');
        continue;
      }
      const wanted = new Set(admission.conversationIds);
      let changed = false;
      for (const id of [...connection.conversations]) {
        if (wanted.has(id)) continue;
        this.removeInterest(connection, id);
        changed = true;
      }
      for (const id of wanted) {
        if (connection.conversations.has(id)) continue;
        changed = true;
        const subscription = this.addInterest(connection, id);
        if (subscription) subscribing.push(subscription);
      }
      if (changed || !onlyIfChanged) ready.push(connection);
    }
    await Promise.all(subscribing);
    for (const connection of ready) if (connection.state === ConnectionState.Open) connection.send(frame);
    return unreadable ?? 'done';
  }

  // ---------------------------------------------------------------- socket events (shared functions, `this` is the socket)

  handleFrame(connection: Connection, data: RawData, isBinary: boolean): void {
    if (this.draining) return; // not served: the connection is closed 4000 once what it is being served is answered
    const setup = this.setups.size > 0 ? this.setups.get(connection) : undefined;
    if (setup) {
      // Held, not refused: a client may send before `welcome` (documented), and its replies must follow `welcome`.
      if (setup.requests.length >= this.deps.options.connectionRate.burst) return this.closeConnection(connection, 'FLOOD');
      setup.requests.push([data, isBinary]);
      return;
    }
    if (!connection.serving) return this.holdRequest(connection, data, isBinary);
    // A connection that does not read what it asked for is not served more: its own backlog with what its running
    // requests may add stays near limits.maxOutgoingBytes, whatever the process-wide budget has left.
    if (this.overBudget() || connection.owedBytes() > this.deps.options.maxOutgoingBytes) {
      this.pause(connection);
      return this.holdRequest(connection, data, isBinary);
    }
    const bytes = rawDataBytes(data);
    const now = Date.now();
    const started = this.dispatcher.handle(connection, data, isBinary, now);
    if (!started) return;
    // The reply is its requester's alone: reserved on the connection too (fan-out goes to others' backlogs).
    const reply = started.pageReply ? this.deps.options.maxReplyBytes : 0;
    const reserved = this.expectedFanOut(connection, started.target, bytes) + reply;
    this.reservedTotal += reserved;
    connection.reserved += reply;
    connection.inflight++;
    this.trackRequest(started.settled, connection, reserved, reply);
    if (connection.inflight >= this.deps.options.maxInflightRequests) connection.throttled = true;
    // Served, like a request that passes the budget; what the publisher sends next waits until the readers catch up.
    const conversationId = started.target.conversationId;
    // A member's only (the conversations it receives): a stranger's send is refused NOT_MEMBER and holds nothing, so
    // that a hold tells nobody outside how its readers are doing.
    if (started.publishes && conversationId !== undefined && connection.conversations.has(conversationId) && this.readersBehind(conversationId, now, true)) {
      this.holdFor(connection, conversationId);
    }
  }

  /**
   * Whether most of the conversation's users on this instance are more than limits.maxDeliveryDelayMs behind
   * (mostUsersBehind, Connection.delayMs). The audience is scanned again after BEHIND_RESCAN_SENDS publishing requests to it or
   * `outgoingProbeMs`, whichever comes first: a publisher that the store answers within milliseconds must not get a
   * whole interval of sends past a stale answer, and a fast publisher to a large group costs a lookup for most sends.
   */
  private readersBehind(conversationId: string, now: number, publishing = false): boolean {
    // A reader is behind only by an unanswered ping (its age, or a bound from it) or by unconfirmed bytes past its
    // threshold at its measured rate; and past the threshold with every ping answered, the next write carries one (its
    // bytes since the last ping are over the spacing). So with no ping unanswered anywhere, nobody is behind: the
    // usual case of a DM load, answered without a lookup.
    if (this.unanswered === 0) return false;
    let seen = this.behindCache.get(conversationId);
    if (seen === undefined || seen.sends >= BEHIND_RESCAN_SENDS || now - seen.at >= this.deps.options.outgoingProbeMs) {
      const behind = this.mostUsersBehind(conversationId, now);
      if (seen === undefined) {
        seen = { behind, at: now, sends: 0 };
        this.behindCache.set(conversationId, seen);
        if (this.behindCache.size > BEHIND_CACHE_MAX) this.behindCache.delete(this.behindCache.keys().next().value!);
      } else {
        // Updated in place: an object per rescan was one more allocation per few sends of every conversation.
        seen.behind = behind;
        seen.at = now;
        seen.sends = 0;
      }
    }
    if (publishing) seen.sends++;
    return seen.behind;
  }

  /**
   * Whether more than half of the users with connections to the conversation here are behind: a user is behind when
   * none of their connections keeps within limits.maxDeliveryDelayMs. Counted by user, not connection: one user's many
   * connections that never answer a ping (each closed only after slowConsumerMs, and opened again) would otherwise
   * make a majority of a public group and hold every publisher in it.
   */
  private mostUsersBehind(conversationId: string, now: number): boolean {
    const audience = this.byConversation.get(conversationId);
    if (audience === undefined) return false;
    const limit = this.deps.options.maxDeliveryDelayMs;
    // Usually nobody is behind: one pass without allocating says so.
    let late = 0;
    for (const connection of audience) if (connection.delayMs(now) > limit) late++;
    if (late === 0) return false;
    const onTime = new Map<string, boolean>();
    for (const connection of audience) {
      if (onTime.get(connection.userId) !== true) onTime.set(connection.userId, connection.delayMs(now) <= limit);
    }
    let behind = 0;
    for (const ok of onTime.values()) if (!ok) behind++;
    return behind * 2 > onTime.size;
  }

  /**
   * A publishing request (PUBLISHING) that came over REST, which cannot be held like a WebSocket connection's next
   * requests: how long (ms) to tell it to wait before retrying (answered RATE_LIMITED with retryAfterMs), or null to
   * serve it. Refused while the process-wide outgoing budget is spent or while most of its conversation's readers here
   * are behind (limits.maxDeliveryDelayMs), as a WebSocket publisher would be held. Before, REST sends skipped both:
   * 1,000-2,800 sends/s to 20 slow readers grew the server to 363 MiB and got every reader closed (outside check).
   */
  restPublishWaitMs(type: RequestType, data: unknown): number | null {
    if (!PUBLISHING.has(type)) return null;
    const { conversationId } = targetOf(data as object);
    if (this.overBudget() || (conversationId !== undefined && this.readersBehind(conversationId, Date.now(), true))) return this.deps.options.maxDeliveryDelayMs;
    return null;
  }

  /** Pause a connection that published to a conversation whose readers are behind, until they are not. */
  private holdFor(connection: Connection, conversationId: string): void {
    if (connection.state !== ConnectionState.Open) return;
    connection.heldFor = conversationId;
    this.pause(connection);
  }

  /**
   * What a request may add to the outgoing backlog: its own size (an event carries what the request carried, plus a
   * small envelope) once per local connection its events go to: the conversation's, or for a direct message by user
   * id both users' devices. An estimate, erring high for requests whose events are smaller than they are.
   */
  private expectedFanOut(connection: Connection, target: RequestTarget, requestBytes: number): number {
    let recipients = 1;
    if (target.conversationId !== undefined) recipients = this.byConversation.get(target.conversationId)?.size ?? 0;
    else if (target.to !== undefined) recipients = this.deviceCount(target.to) + this.deviceCount(connection.userId);
    return recipients * (requestBytes + EVENT_ENVELOPE_BYTES);
  }

  /** One request of the connection was answered: its reservation ends, and a throttled connection is read again. */
  private answered(connection: Connection, reserved: number, reply: number): void {
    this.reservedTotal -= reserved;
    connection.reserved -= reply;
    // A reservation can be most of the budget (a large group): its end may be what lets the paused go on.
    if (this.paused.size > 0) this.resumeIfCaughtUp();
    connection.inflight--;
    if (!connection.throttled || connection.inflight >= this.deps.options.maxInflightRequests) return;
    connection.throttled = false;
    this.readAgain(connection);
  }

  markAlive(connection: Connection, payload: Buffer): void {
    connection.awaitingPong = false;
    connection.confirm(payload);
  }
}

function rawDataBytes(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((sum, part) => sum + part.length, 0);
  return data.byteLength;
}

function onSocketMessage(this: TaggedSocket, data: RawData, isBinary: boolean): void {
  const connection = this[kConnection];
  if (connection) connection.owner.handleFrame(connection, data, isBinary);
}
function onSocketPong(this: TaggedSocket, payload: Buffer): void {
  const connection = this[kConnection];
  if (connection) connection.owner.markAlive(connection, payload);
}
function onSocketClose(this: TaggedSocket): void {
  const connection = this[kConnection];
  if (connection) connection.owner.unregister(connection);
}
function destroySocket(this: Socket): void {
  this.destroy();
}
function onSocketError(this: TaggedSocket): void {
  // 'close' follows; the error itself (for example a frame over maxPayload, closed with 1009 by ws) needs no action.
}

/** The membership change an event on a user's topic carries, if any. */
function membershipChange(frame: Buffer): MembershipChange | null {
  const { event, data } = JSON.parse(frame.toString()) as { event: string; data: { id?: string; conversationId?: string; lastSeq?: number } };
  if (event === 'conversation.updated' && data.id) return { conversationId: data.id, joined: true, lastSeq: data.lastSeq };
  if (event === 'conversation.removed' && data.conversationId) return { conversationId: data.conversationId, joined: false };
  return null;
}

/**
 * The close code for a connection attempt whose authentication failed. Only a refusal of the credentials themselves
 * may say "do not reconnect" (4500; 4502 for a ban): a temporary failure behind them (the store away or busy, a
 * timeout) and an unexpected error close 4005, which clients retry with backoff. A do-not-reconnect code for a
 * passing fault would take the client offline until a person acts.
 */
export function refusalFor(err: unknown): CloseName {
  if (!isParleyError(err)) return 'UNAVAILABLE';
  if (err.code === 'BANNED') return 'BANNED';
  return errorCatalogue[err.code].temporary ? 'UNAVAILABLE' : 'UNAUTHORIZED';
}

function refuse(socket: Socket, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}
