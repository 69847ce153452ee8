import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Authenticator, Identity } from '../auth/authenticator.js';
import { conversationTopic, userTopic, type Bus } from '../bus/bus.js';
import { decodeEnvelope } from '../bus/envelope.js';
import type { Services } from '../domain/operations.js';
import type { Metrics } from '../http/metrics.js';
import { closeCatalogue, type CloseName } from '../protocol/close-codes.js';
import { isParleyError } from '../protocol/errors.js';
import { encodeEvent } from '../protocol/events.js';
import { CURRENT_VERSION } from '../protocol/version.js';
import type { Store } from '../store/store.js';
import { Connection, ConnectionState, type ConnectionOwner } from './connection.js';
import { Dispatcher } from './dispatcher.js';
import { frameText } from './frame.js';
import { readHandshake, selectSubprotocol } from './handshake.js';
import { Heartbeat } from './heartbeat.js';
import { WriteScheduler } from './write-scheduler.js';

export interface GatewayOptions {
  path: string;
  maxFrameBytes: number;
  maxMessageBytes: number;
  maxOutgoingBytes: number;
  slowConsumerMs: number;
  maxOutgoingHardBytes: number;
  connectionRate: { perSecond: number; burst: number };
  userMessageRate: { perSecond: number; burst: number };
  floodCloseAfter: number;
  heartbeat: { intervalMs: number; timeoutMs: number };
  presenceTtlMs: number;
}

export interface GatewayDeps {
  options: GatewayOptions;
  authenticator: Authenticator;
  store: Store;
  bus: Bus;
  services: Services;
  metrics: Metrics;
  logger: Logger;
}

const kConnection = Symbol('parley.connection');
type TaggedSocket = WebSocket & { [kConnection]?: Connection };

/**
 * The WebSocket gateway: authenticates upgrades, keeps the local interest index (which connections receive which
 * conversation's events), subscribes the bus to exactly those topics, and fans each bus payload out as one frame
 * written to every interested socket. Requests go to the Dispatcher.
 */
export class Gateway implements ConnectionOwner {
  private readonly wss: WebSocketServer;
  private readonly scheduler = new WriteScheduler();
  private readonly connections = new Set<Connection>();
  /** userId → its one connection, or a Set of them when it has several (most users have one; a Set costs ~150 B). */
  private readonly byUser = new Map<string, Connection | Set<Connection>>();
  private readonly byConversation = new Map<string, Set<Connection>>();
  private readonly dispatcher: Dispatcher;
  private readonly heartbeat: Heartbeat;
  private draining = false;

  constructor(private readonly deps: GatewayDeps) {
    const { options } = deps;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: options.maxFrameBytes,
      perMessageDeflate: false,
      clientTracking: false,
      handleProtocols: selectSubprotocol,
    });
    this.dispatcher = new Dispatcher(deps.services, deps.metrics, deps.logger, options);
    this.heartbeat = new Heartbeat(this.connections, options.heartbeat, options.presenceTtlMs, deps.services.presence, (c, name) => this.closeConnection(c, name), deps.logger);
    deps.bus.onMessage((topic, payload) => this.deliver(topic, payload));
    deps.bus.onReset(() => this.resynchroniseAll());
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Handle an HTTP upgrade request (wired to the HTTP server's 'upgrade' event). */
  handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== this.deps.options.path) return refuse(socket, 404, 'Not Found');
    if (this.draining) return refuse(socket, 503, 'Service Unavailable');
    // A shared function, not a closure: a closure here would share this function's context, which holds `req` and
    // `head` for the closures below, and keep the whole request alive as long as the socket (~1.5 KB a connection).
    socket.on('error', destroySocket);
    const { token, version } = readHandshake(req, url);
    this.deps.authenticator.authenticate(token).then(
      (identity) => this.loadInterests(identity).then(
        (conversationIds) => this.upgrade(req, socket, head, (ws) => this.accept(ws, socket, identity, conversationIds, version)),
        () => this.upgrade(req, socket, head, (ws) => this.refuseAfterUpgrade(ws, 'UNAVAILABLE')),
      ),
      // Browsers cannot read an HTTP status of a failed upgrade: complete it and close with a code they can see.
      (err) => this.upgrade(req, socket, head, (ws) => this.refuseAfterUpgrade(ws, refusalFor(err))),
    );
  }

  /** Stop accepting, tell every client to reconnect elsewhere (4000), and wait for the sockets to close. */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    this.heartbeat.stop();
    for (const connection of this.connections) this.closeConnection(connection, 'SERVER_SHUTDOWN');
    const deadline = Date.now() + timeoutMs;
    while (this.connections.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const connection of this.connections) connection.ws.terminate();
  }

  close(): void {
    this.heartbeat.stop();
    for (const connection of this.connections) connection.ws.terminate();
    this.wss.close();
  }

  // ---------------------------------------------------------------- connection lifecycle

  private loadInterests(identity: Identity): Promise<string[]> {
    return this.deps.store.listConversationIds(identity.userId);
  }

  private upgrade(req: IncomingMessage, socket: Socket, head: Buffer, then: (ws: WebSocket) => void): void {
    if (socket.destroyed) return;
    this.wss.handleUpgrade(req, socket, head, then);
  }

  private refuseAfterUpgrade(ws: WebSocket, name: CloseName): void {
    const { code, reason } = closeCatalogue[name];
    this.deps.metrics.closes.inc({ reason: name });
    ws.close(code, reason);
    setTimeout(() => ws.terminate(), 2000).unref();
  }

  private accept(ws: TaggedSocket, socket: Socket, identity: Identity, conversationIds: string[], version: number | null): void {
    if (version === null) return this.refuseAfterUpgrade(ws, 'UNSUPPORTED_VERSION');
    if (this.draining) return this.refuseAfterUpgrade(ws, 'SERVER_SHUTDOWN');
    const now = Date.now();
    const connection = new Connection(randomUUID(), identity.userId, identity.name, identity.expiresAt, ws, socket, this, this.scheduler, this.deps.options, now);
    ws[kConnection] = connection;
    ws.on('message', onSocketMessage);
    ws.on('pong', onSocketPong);
    ws.on('close', onSocketClose);
    ws.on('error', onSocketError);
    this.register(connection, conversationIds);
    this.deps.metrics.connections.inc();
    this.deps.metrics.connectionsTotal.inc();
    void this.welcome(connection);
  }

  private async welcome(connection: Connection): Promise<void> {
    const { userId } = connection;
    try {
      await Promise.all([
        this.deps.bus.subscribe(userTopic(userId)),
        ...[...connection.conversations].map((id) => this.deps.bus.subscribe(conversationTopic(id))),
      ]);
      connection.sendText(encodeEvent('welcome', {
        version: CURRENT_VERSION,
        connectionId: connection.id,
        user: { id: userId, name: connection.userName },
        heartbeatIntervalMs: this.deps.options.heartbeat.intervalMs,
        limits: { maxMessageBytes: this.deps.options.maxMessageBytes, maxFrameBytes: this.deps.options.maxFrameBytes },
      }));
      await this.deps.services.presence.connected(userId, connection.id);
    } catch (err) {
      this.deps.logger.warn({ err, userId }, 'connection setup failed');
      this.closeConnection(connection, 'UNAVAILABLE');
    }
  }

  private register(connection: Connection, conversationIds: string[]): void {
    this.connections.add(connection);
    const devices = this.byUser.get(connection.userId);
    if (devices === undefined) this.byUser.set(connection.userId, connection);
    else if (devices instanceof Set) devices.add(connection);
    else this.byUser.set(connection.userId, new Set([devices, connection]));
    for (const id of conversationIds) this.addInterest(connection, id, false);
  }

  /** Called once per connection when its socket closes, whoever closed it. */
  unregister(connection: Connection): void {
    if (connection.state === ConnectionState.Closed) return;
    connection.state = ConnectionState.Closed;
    this.connections.delete(connection);
    this.deps.metrics.connections.dec();
    for (const id of connection.conversations) this.removeInterest(connection, id);
    const devices = this.byUser.get(connection.userId);
    let lastDevice = false;
    if (devices === connection) {
      lastDevice = true;
    } else if (devices instanceof Set && devices.delete(connection) && devices.size === 1) {
      this.byUser.set(connection.userId, devices.values().next().value!);
    }
    if (lastDevice) {
      this.byUser.delete(connection.userId);
      this.dispatcher.forgetUser(connection.userId);
      this.unsubscribe(userTopic(connection.userId));
    }
    this.deps.services.presence.disconnected(connection.userId, connection.id).catch((err) => this.deps.logger.warn({ err }, 'presence disconnect failed'));
  }

  closeConnection(connection: Connection, name: CloseName): void {
    connection.close(name);
  }

  countClose(name: CloseName): void {
    this.deps.metrics.closes.inc({ reason: name });
  }

  // ---------------------------------------------------------------- interest index

  private addInterest(connection: Connection, conversationId: string, subscribe = true): void {
    connection.addConversation(conversationId);
    let members = this.byConversation.get(conversationId);
    if (!members) {
      this.byConversation.set(conversationId, (members = new Set()));
      if (subscribe) this.deps.bus.subscribe(conversationTopic(conversationId)).catch((err) => this.deps.logger.error({ err }, 'bus subscribe failed'));
    }
    members.add(connection);
  }

  private removeInterest(connection: Connection, conversationId: string): void {
    connection.removeConversation(conversationId);
    const members = this.byConversation.get(conversationId);
    if (!members) return;
    members.delete(connection);
    if (members.size === 0) {
      this.byConversation.delete(conversationId);
      this.unsubscribe(conversationTopic(conversationId));
    }
  }

  private unsubscribe(topic: string): void {
    this.deps.bus.unsubscribe(topic).catch((err) => this.deps.logger.warn({ err, topic }, 'bus unsubscribe failed'));
  }

  // ---------------------------------------------------------------- fan-out

  /** A user's connections on this instance. */
  private devicesOf(userId: string): Set<Connection> | Connection[] {
    const devices = this.byUser.get(userId);
    return devices === undefined ? [] : devices instanceof Set ? devices : [devices];
  }

  /** One bus payload: framed once, queued to every interested local connection. */
  private deliver(topic: string, payload: string): void {
    const envelope = decodeEnvelope(payload);
    const isUserTopic = topic.charCodeAt(0) === 0x75; /* u */
    const id = topic.slice(2);
    if (envelope.kind === 'control') {
      if (isUserTopic && envelope.command === 'ban') for (const c of this.devicesOf(id)) this.closeConnection(c, 'BANNED');
      return;
    }
    const targets = isUserTopic ? this.devicesOf(id) : this.byConversation.get(id);
    if (!targets || (targets instanceof Set ? targets.size : targets.length) === 0) return;
    if (isUserTopic) this.applyMembershipChange(targets, envelope.frame);
    const frame = frameText(envelope.frame);
    const except = envelope.exceptUser;
    let sent = 0;
    for (const connection of targets) {
      if (except !== null && connection.userId === except) continue;
      if (connection.send(frame)) sent++;
    }
    this.deps.metrics.framesOut.inc(sent);
  }

  /** A user's own events say when they joined or left a conversation: keep the interest index in step. */
  private applyMembershipChange(devices: Iterable<Connection>, frame: string): void {
    const { event, data } = JSON.parse(frame) as { event: string; data: { id?: string; conversationId?: string } };
    if (event === 'conversation.updated' && data.id) {
      for (const c of devices) this.addInterest(c, data.id);
    } else if (event === 'conversation.removed' && data.conversationId) {
      for (const c of devices) this.removeInterest(c, data.conversationId);
    }
  }

  /** After the bus lost messages, tell every client to catch up (the SDK answers with `sync`). */
  private resynchroniseAll(): void {
    this.deps.logger.warn({ connections: this.connections.size }, 'bus reset: asking clients to reconnect and resynchronise');
    for (const connection of this.connections) this.closeConnection(connection, 'UNAVAILABLE');
  }

  // ---------------------------------------------------------------- socket events (shared functions, `this` is the socket)

  handleFrame(connection: Connection, data: RawData, isBinary: boolean): void {
    this.dispatcher.handle(connection, data, isBinary, (name) => this.closeConnection(connection, name));
  }

  markAlive(connection: Connection): void {
    connection.awaitingPong = false;
  }
}

function onSocketMessage(this: TaggedSocket, data: RawData, isBinary: boolean): void {
  const connection = this[kConnection];
  if (connection) connection.owner.handleFrame(connection, data, isBinary);
}
function onSocketPong(this: TaggedSocket): void {
  const connection = this[kConnection];
  if (connection) connection.owner.markAlive(connection);
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

/** The close code for a refused token: banned users are told so; everything else is "unauthorized". */
function refusalFor(err: unknown): CloseName {
  if (isParleyError(err) && err.code === 'BANNED') return 'BANNED';
  if (isParleyError(err) && err.code === 'UNAVAILABLE') return 'UNAVAILABLE';
  return 'UNAUTHORIZED';
}

function refuse(socket: Socket, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}
