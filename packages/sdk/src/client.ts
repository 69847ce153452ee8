import {
  closeCatalogue, shouldReconnect, type Change, type EventMap, type Message, type MyConversation, type Page,
  type PresenceInfo, type RequestType, type ResultMap,
} from '@parley/protocol';
import { ConversationRequests } from './conversation-requests.js';
import { Backoff, DEFAULT_BACKOFF, fullJitterDelay, type BackoffOptions } from './backoff.js';
import { Emitter, type Handler } from './emitter.js';
import { errorFromBody, ParleyClientError } from './errors.js';
import { splitForFrame } from './frame-batches.js';
import { newIdempotencyKey } from './keys.js';
import { Outbox, sentMessage, type OutboxEntry, type PendingSend, type SendData } from './outbox.js';
import { PendingRequests } from './pending-requests.js';
import { validPositions, type PositionStore } from './positions.js';
import { Sequencer, type Position } from './sequencer.js';
import { CLOSE_ABNORMAL, CLOSE_NORMAL, frameText, normalizeUrl, subprotocols, utf8Length, type WebSocketConstructor, type WebSocketLike } from './socket.js';
import { catchUp, runSync, type CatchUpContext } from './sync.js';
import type {
  ClientEventMap,
  ClientEventName,
  ClientState,
  ParleyClientOptions,
  RequestInput,
  SendOptions,
  SendTarget,
  SyncedInfo,
} from './types.js';

export type Welcome = EventMap['welcome'];

/** `presence.get` accepts at most this many ids; the frame size may make a batch smaller (splitForFrame). */
const PRESENCE_BATCH = 1000;

/** Results that put the caller into a conversation: the client starts tracking it at the reported lastSeq. */
const JOINING_REQUESTS = new Set<string>(['conversation.create', 'direct.open', 'conversation.join', 'invite.accept']);
/** Results that take the caller out of a conversation: the client forgets its position. */
const LEAVING_REQUESTS = new Set<string>(['conversation.leave', 'conversation.delete']);

interface Waiter {
  resolve: (welcome: Welcome) => void;
  reject: (err: ParleyClientError) => void;
}

/**
 * A Parley connection that survives disconnects: typed requests with timeouts, automatic reconnect with jittered
 * backoff, catch-up after every (re)connect, exactly-once in-order `message` delivery, and an outbox whose sends are
 * retried with their idempotency key until acknowledged. See the package's README.
 */
export class ParleyClient extends ConversationRequests {
  private readonly url: string;
  private readonly tokenSource: ParleyClientOptions['token'];
  private readonly WS: WebSocketConstructor;
  private readonly requestTimeoutMs: number;
  private readonly backoffOpts: Required<BackoffOptions>;
  private readonly autoReconnect: boolean;
  private readonly syncPageSize: number | undefined;
  private readonly gapFetchDelayMs: number;
  private readonly headCheckIntervalMs: number;
  private readonly random: () => number;

  private readonly emitter: Emitter<ClientEventMap>;
  private readonly pending = new PendingRequests();
  private readonly outbox: Outbox;
  private readonly sequencer = new Sequencer(() => this.positionsChanged());
  /** Null by default: the positions then live in the sequencer alone, with nothing to copy on every delivery. */
  private readonly positionStore: PositionStore | null;
  /** The user whose positions the sequencer holds (loaded from positionStore at their first welcome). */
  private positionsUser: string | undefined;
  private saveQueued = false;
  private readonly reconnectBackoff: Backoff;
  private readonly syncBackoff: Backoff;

  private stateValue: ClientState = 'closed';
  private ws: WebSocketLike | null = null;
  /** Bumped whenever a socket is abandoned: callbacks of older sockets and requests compare and bail out. */
  private generation = 0;
  private welcomeValue: Welcome | null = null;
  private waiters: Waiter[] = [];
  private userClosed = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  /** Abandons a connection attempt that has not brought `welcome` within requestTimeoutMs (a hung handshake). */
  private attemptTimer: ReturnType<typeof setTimeout> | undefined;
  private watchdogTimer: ReturnType<typeof setInterval> | undefined;
  private pingInFlight = false;
  private lastFrameAt = 0;
  private openedAt = 0;
  private syncing: Promise<SyncedInfo> | null = null;
  private syncRetryTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly filling = new Set<string>();
  private readonly gapTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly gapFailures = new Map<string, number>();
  /** Users whose presence this client subscribed to (subscribePresence); subscribed again on every `welcome`. */
  private readonly presenceWatches = new Set<string>();
  private headCheckTimer: ReturnType<typeof setInterval> | undefined;
  /** Removes the browser listeners (visibilitychange, online) added by connect(). */
  private unwatchPage: (() => void) | null = null;

  constructor(options: ParleyClientOptions) {
    super();
    if (!options || typeof options.url !== 'string') throw new TypeError('ParleyClient: options.url is required');
    if (typeof options.token !== 'string' && typeof options.token !== 'function') {
      throw new TypeError('ParleyClient: options.token must be a string or a function');
    }
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new TypeError('ParleyClient: no global WebSocket; pass options.WebSocket (e.g. the `ws` package)');
    this.url = normalizeUrl(options.url);
    this.tokenSource = options.token;
    this.WS = WS;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.backoffOpts = {
      initialMs: options.backoff?.initialMs ?? DEFAULT_BACKOFF.initialMs,
      maxMs: options.backoff?.maxMs ?? DEFAULT_BACKOFF.maxMs,
    };
    this.autoReconnect = options.autoReconnect ?? true;
    this.syncPageSize = options.syncPageSize;
    this.gapFetchDelayMs = options.gapFetchDelayMs ?? 50;
    this.headCheckIntervalMs = options.headCheckIntervalMs ?? 60_000;
    this.random = options.random ?? Math.random;
    this.outbox = new Outbox(options.outboxLimit ?? 1000);
    this.positionStore = options.positions ?? null;
    this.reconnectBackoff = new Backoff(this.backoffOpts, this.random);
    this.syncBackoff = new Backoff(this.backoffOpts, this.random);
    this.emitter = new Emitter<ClientEventMap>((err, event) => {
      if (event !== 'error') this.emitter.emit('error', asError(err));
    });
  }

  // ---------------------------------------------------------------- public state

  get state(): ClientState {
    return this.stateValue;
  }

  /** The `welcome` of the current (or last) connection. */
  get welcome(): Welcome | null {
    return this.welcomeValue;
  }

  on<K extends ClientEventName>(event: K, handler: Handler<ClientEventMap[K]>): () => void {
    return this.emitter.on(event, handler);
  }

  once<K extends ClientEventName>(event: K, handler: Handler<ClientEventMap[K]>): () => void {
    return this.emitter.once(event, handler);
  }

  off<K extends ClientEventName>(event: K, handler: Handler<ClientEventMap[K]>): void {
    this.emitter.off(event, handler);
  }

  // ---------------------------------------------------------------- connection lifecycle

  /**
   * Connects (if not already) and resolves with the `welcome` of the next open connection. Rejects when the client
   * gives up: a do-not-reconnect close (code CLOSED, `closeCode` set), `close()`, or — with autoReconnect off — the
   * first failed attempt (DISCONNECTED). With autoReconnect on, transient failures are retried meanwhile.
   */
  connect(): Promise<Welcome> {
    if (this.stateValue === 'open' && this.welcomeValue) return Promise.resolve(this.welcomeValue);
    const promise = new Promise<Welcome>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (this.stateValue === 'closed') {
      this.userClosed = false;
      this.setState('connecting');
      this.unwatchPage ??= watchPage({ visible: () => this.checkHeads(), online: () => this.backOnline(), offline: () => this.wentOffline() });
      void this.attempt();
    }
    return promise;
  }

  /**
   * Learns every conversation's head (lastSeq) and changes without waiting for traffic, and fetches what is missing:
   * a lost last message before a quiet period is found here. Runs every `headCheckIntervalMs`, when a browser tab
   * becomes visible and when the browser comes back online; a no-op unless open.
   */
  private checkHeads(): void {
    if (this.stateValue !== 'open') return;
    this.sync().catch(() => {
      /* reported through `error` and retried */
    });
  }

  /**
   * The browser says the network is back: an open client checks heads (what was missed while the socket looked
   * alive); a reconnecting one tries now instead of waiting out its backoff delay.
   */
  private backOnline(): void {
    if (this.stateValue === 'open') return this.checkHeads();
    if (this.stateValue !== 'reconnecting' || this.reconnectTimer === undefined) return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    void this.attempt();
  }

  /**
   * The browser says the network is gone: the socket will not say so itself until a heartbeat times out (a minute or
   * more), so the connection is given up now (`disconnect` 1006, then reconnecting: what the user sees, and sends
   * wait in the outbox).
   */
  private wentOffline(): void {
    if (this.stateValue === 'open' || this.stateValue === 'connecting') this.lost(this.generation, CLOSE_ABNORMAL, 'the browser went offline');
  }

  /** Closes for good (until `connect()` is called again): pending requests, sends and connect() calls reject with CLOSED. */
  close(reason = 'client closed'): void {
    const wasOpen = this.stateValue === 'open';
    this.userClosed = true;
    this.generation++;
    this.clearTimers();
    this.unwatchPage?.();
    this.unwatchPage = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) abandon(ws, CLOSE_NORMAL, reason);
    const closed = () => new ParleyClientError('CLOSED', 'The client was closed');
    this.pending.rejectAll(closed);
    this.outbox.rejectAll(closed);
    this.rejectWaiters(closed());
    if (this.saveQueued) this.savePositions();
    this.setState('closed');
    if (wasOpen) this.emitter.emit('disconnect', { code: CLOSE_NORMAL, reason, willReconnect: false });
  }

  private async attempt(): Promise<void> {
    const gen = ++this.generation;
    this.reconnectTimer = undefined;
    let token: string;
    try {
      token = typeof this.tokenSource === 'function' ? await this.tokenSource() : this.tokenSource;
      if (typeof token !== 'string') throw new TypeError('the token function did not return a string');
    } catch (err) {
      if (gen !== this.generation) return;
      this.emitError(err);
      this.lost(gen, CLOSE_ABNORMAL, 'could not obtain a token');
      return;
    }
    if (gen !== this.generation) return;
    let ws: WebSocketLike;
    try {
      ws = new this.WS(this.url, subprotocols(token));
    } catch (err) {
      this.emitError(err);
      this.lost(gen, CLOSE_ABNORMAL, 'could not create the WebSocket');
      return;
    }
    this.ws = ws;
    try {
      ws.binaryType = 'arraybuffer';
    } catch {
      /* not settable: text frames are strings anyway */
    }
    ws.onopen = () => {
      if (gen === this.generation) this.lastFrameAt = Date.now();
    };
    ws.onmessage = (ev: { data: unknown }) => {
      if (gen === this.generation) this.onFrame(ev.data);
    };
    ws.onclose = (ev: { code?: number; reason?: string }) => {
      if (gen === this.generation) this.lost(gen, typeof ev?.code === 'number' ? ev.code : CLOSE_ABNORMAL, ev?.reason ?? '');
    };
    ws.onerror = () => {
      /* a close event follows; its code says what to do */
    };
    // A server (or a proxy, or a dead network path) may accept the TCP connection and then never answer: no close
    // event would ever come. Give up on the attempt like on an abnormal close, and retry.
    this.clearAttemptTimer();
    this.attemptTimer = setTimeout(() => {
      this.attemptTimer = undefined;
      if (gen === this.generation && this.stateValue !== 'open') {
        this.lost(gen, CLOSE_ABNORMAL, `no welcome within ${this.requestTimeoutMs} ms`);
      }
    }, this.requestTimeoutMs);
  }

  /** The socket of generation `gen` is gone (closed by the server, the network, or abandoned by the watchdog). */
  private lost(gen: number, code: number, reason: string): void {
    if (gen !== this.generation || this.userClosed) return;
    this.generation++;
    const ws = this.ws;
    this.ws = null;
    if (ws) abandon(ws);
    this.clearAttemptTimer();
    this.stopWatchdog();
    this.clearGapTimers();
    if (this.syncRetryTimer !== undefined) clearTimeout(this.syncRetryTimer);
    this.syncRetryTimer = undefined;
    this.pending.rejectAll(
      (type) => new ParleyClientError('DISCONNECTED', `Connection closed (${code}) before the reply to ${type}`, {
        closeCode: code, closeReason: reason, requestType: type,
      }),
    );
    this.outbox.requeueAll();

    // A fixed token that expired cannot be refreshed: reconnecting with it would only be closed 4004 again.
    const terminal = !shouldReconnect(code) || (code === closeCatalogue.TOKEN_EXPIRED.code && typeof this.tokenSource === 'string');
    const willReconnect = this.autoReconnect && !terminal;
    this.emitter.emit('disconnect', { code, reason, willReconnect });
    if (willReconnect) {
      // A connection that stayed up long enough counts as a success: start the delays from the beginning again.
      if (this.openedAt && Date.now() - this.openedAt >= this.backoffOpts.maxMs) this.reconnectBackoff.reset();
      this.openedAt = 0;
      this.setState('reconnecting');
      this.reconnectTimer = setTimeout(() => void this.attempt(), this.reconnectBackoff.next());
      return;
    }
    this.openedAt = 0;
    this.setState('closed');
    const err = terminal
      ? new ParleyClientError('CLOSED', `The server closed the connection (${code}${reason ? `: ${reason}` : ''}); not reconnecting`, {
          closeCode: code, closeReason: reason,
        })
      : new ParleyClientError('DISCONNECTED', `Connection closed (${code}); autoReconnect is off`, { closeCode: code, closeReason: reason });
    this.rejectWaiters(err);
    if (terminal) this.outbox.rejectAll(() => err);
  }

  private onWelcome(welcome: Welcome): void {
    this.clearAttemptTimer();
    this.loadPositions(welcome.user.id);
    this.welcomeValue = welcome;
    this.openedAt = Date.now();
    this.setState('open');
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve(welcome);
    this.emitter.emit('welcome', welcome);
    this.startWatchdog(welcome.heartbeatIntervalMs);
    this.startHeadCheck();
    if (upToDate(welcome, this.sequencer)) {
      // Nothing was missed: welcome's positions (read after the connection's subscriptions) equal ours, so the sync
      // round trip is skipped; anything newer arrives as events.
      this.emitter.emit('synced', { unknown: [], removed: [] });
    } else {
      this.sync().catch(() => {
        /* reported through `error` and retried */
      });
    }
    this.resubscribePresence();
    this.pumpOutbox();
  }

  /**
   * At the first welcome of a user, seeds the sequencer from the position store (before any later frame is read, so
   * the comparison with welcome and the catch-up start from what earlier clients delivered). Positions of another
   * user (the token source now speaks for someone else) are dropped first.
   */
  private loadPositions(userId: string): void {
    if (this.positionsUser === userId) return;
    if (this.positionsUser !== undefined) this.sequencer.clear();
    this.positionsUser = userId;
    if (!this.positionStore) return;
    let stored: Position[];
    try {
      stored = validPositions(this.positionStore.load(userId));
    } catch (err) {
      this.emitError(err);
      stored = [];
    }
    for (const p of stored) this.deliver(this.sequencer.track(p.conversationId, p.afterSeq, p.rev));
    this.positionsChanged();
  }

  /** Positions moved: save them once the current task's deliveries are done (a microtask, before any other task). */
  private positionsChanged(): void {
    if (!this.positionStore || this.positionsUser === undefined || this.saveQueued) return;
    this.saveQueued = true;
    queueMicrotask(() => {
      if (this.saveQueued) this.savePositions();
    });
  }

  private savePositions(): void {
    this.saveQueued = false;
    if (!this.positionStore || this.positionsUser === undefined) return;
    try {
      this.positionStore.save(this.positionsUser, this.sequencer.positions());
    } catch (err) {
      this.emitError(err);
    }
  }

  /** Subscriptions end with a connection: renew them on the new one, and report the presence they answer. */
  private resubscribePresence(): void {
    if (this.presenceWatches.size === 0) return;
    this.sendPresenceSubscribe([...this.presenceWatches]).then(
      (users) => { if (users.length > 0) this.emitter.emit('presence', { users }); },
      (err: unknown) => this.emitError(err),
    );
  }

  private async sendPresenceSubscribe(userIds: readonly string[]): Promise<PresenceInfo[]> {
    const users: PresenceInfo[] = [];
    for (const batch of splitForFrame(userIds, PRESENCE_BATCH, this.welcomeValue?.limits.maxFrameBytes)) {
      users.push(...(await this.request('presence.subscribe', { userIds: batch })).users);
    }
    return users;
  }

  // ---------------------------------------------------------------- frames

  private onFrame(data: unknown): void {
    this.lastFrameAt = Date.now();
    const text = frameText(data);
    let frame: unknown;
    try {
      if (text === undefined) throw new Error('binary frame');
      frame = JSON.parse(text);
    } catch {
      this.emitError(new ParleyClientError('BAD_FRAME', 'The server sent a frame that is not JSON text'));
      return;
    }
    if (!frame || typeof frame !== 'object') return;
    const f = frame as { event?: unknown; data?: unknown; id?: unknown; result?: unknown; error?: unknown };
    if (typeof f.event === 'string') {
      this.onEvent(f.event, f.data);
      return;
    }
    if (!('id' in f)) return;
    if (f.error !== undefined) {
      const err = errorFromBody(f.error as never, this.pending.typeOf(f.id));
      if (f.id === null || !this.pending.reject(f.id, err)) this.emitError(err);
      return;
    }
    this.pending.resolve(f.id, f.result);
  }

  private onEvent(name: string, data: unknown): void {
    switch (name) {
      case 'welcome':
        this.onWelcome(data as Welcome);
        return;
      case 'message.new':
        this.emitter.emit('message.new', data as Message);
        this.accept([data as Message]);
        return;
      case 'message.updated':
        this.sequencer.update(data as Message);
        break;
      case 'conversation.updated': {
        // A conversation created for us (a direct conversation a peer opened) or joined: the server sends this before
        // any of its messages, so its lastSeq is where delivery starts. Known conversations keep their position.
        const conv = data as EventMap['conversation.updated'];
        if (conv && typeof conv.id === 'string' && !this.sequencer.isKnown(conv.id)) this.sequencer.track(conv.id, conv.lastSeq ?? 0, conv.rev);
        break;
      }
      case 'conversation.removed':
        this.sequencer.forget((data as EventMap['conversation.removed']).conversationId);
        break;
      case 'resync':
        // The server may have lost events for us (its bus reconnected): catch up as after a reconnect.
        this.checkHeads();
        break;
    }
    // Every other event (and events of newer servers this SDK does not know) goes to the app as is.
    (this.emitter.emit as (e: string, d: unknown) => void)(name, data);
  }

  // ---------------------------------------------------------------- requests

  /**
   * Sends any request and resolves with its result, typed by the protocol. Rejects with a ParleyClientError: the
   * server's code, TIMEOUT (no reply in time), DISCONNECTED (not open, or the connection dropped) or CLOSED.
   * Requests are not queued while disconnected (only `send` is).
   */
  request<T extends RequestType>(type: T, data: RequestInput<T>, options: { timeoutMs?: number } = {}): Promise<ResultMap[T]> {
    const ws = this.ws;
    if (this.stateValue !== 'open' || !ws) {
      const code = this.userClosed ? 'CLOSED' : 'DISCONNECTED';
      return Promise.reject(new ParleyClientError(code, `Cannot send ${type}: the client is ${this.stateValue}`, { requestType: type }));
    }
    const { id, promise } = this.pending.add<ResultMap[T]>(type, options.timeoutMs ?? this.requestTimeoutMs);
    const frame = JSON.stringify({ id, type, data: data ?? {} });
    const maxFrame = this.welcomeValue?.limits.maxFrameBytes;
    if (maxFrame !== undefined && frame.length * 3 > maxFrame && utf8Length(frame) > maxFrame) {
      // The server would close the connection with 1009; refuse locally instead (retrying would only repeat it).
      this.pending.reject(id, new ParleyClientError('MESSAGE_TOO_LARGE', `The ${type} frame exceeds ${maxFrame} bytes`, {
        temporary: false, requestType: type,
      }));
      return promise;
    }
    try {
      ws.send(frame);
    } catch (err) {
      this.pending.reject(id, new ParleyClientError('DISCONNECTED', `Could not send ${type}: ${asError(err).message}`, { requestType: type }));
    }
    return promise.then((result) => {
      this.observe(type, data as Record<string, unknown>, result);
      return result;
    });
  }

  /** Keeps the delivery positions in step with the caller's own joins, leaves and sends. */
  private observe(type: string, data: Record<string, unknown>, result: unknown): void {
    if (JOINING_REQUESTS.has(type)) {
      const conv = (result as { conversation?: MyConversation }).conversation;
      if (conv && !this.sequencer.isKnown(conv.id)) this.sequencer.track(conv.id, conv.lastSeq, conv.rev);
    } else if (LEAVING_REQUESTS.has(type) && typeof data?.conversationId === 'string') {
      this.sequencer.forget(data.conversationId);
    } else if (type === 'message.send') {
      // The sending connection gets no `message.new` of its own message: the receipt and the request make it.
      const receipt = result as ResultMap['message.send'];
      if (receipt && typeof receipt.seq === 'number') this.accept([sentMessage(data as unknown as SendData, receipt, this.welcomeValue?.user.id ?? '')]);
    }
  }

  // ---------------------------------------------------------------- ordered delivery

  /** Where delivery of a conversation stands: the highest seq delivered through `message`, or undefined. */
  position(conversationId: string): number | undefined {
    return this.sequencer.last(conversationId);
  }

  /**
   * Every known conversation's position. The `positions` option persists them by itself; by hand, save these and
   * restore them with `track` before `connect()`.
   */
  positions(): Position[] {
    return this.sequencer.positions();
  }

  /**
   * Seeds (or moves forward) a conversation's delivered position, e.g. from local storage before `connect()`: the next
   * sync delivers everything after `lastSeq`, and (with `rev`, as `positions()` reports it) every change since `rev`.
   * Never moves a position backwards (fetch older messages with `history`).
   */
  track(conversationId: string, lastSeq: number, rev?: number): void {
    this.deliver(this.sequencer.track(conversationId, lastSeq, rev));
  }

  /** Stops tracking a conversation (its messages are no longer delivered until it becomes known again). */
  forget(conversationId: string): void {
    this.sequencer.forget(conversationId);
  }

  /**
   * Runs the catch-up: `sync` with every known position, delivering what was missed. Runs by itself after every
   * (re)connect; concurrent calls share one run.
   */
  sync(): Promise<SyncedInfo> {
    if (this.syncing) return this.syncing;
    if (this.stateValue !== 'open') {
      return Promise.reject(new ParleyClientError('DISCONNECTED', 'Cannot sync while not connected', { requestType: 'sync' }));
    }
    const gen = this.generation;
    const run = runSync(this.catchUpContext()).then(
      (outcome) => {
        this.syncBackoff.reset();
        this.emitter.emit('synced', outcome);
        return outcome;
      },
      (err: unknown) => {
        if (gen === this.generation && this.stateValue === 'open') {
          this.emitError(err);
          this.syncRetryTimer = setTimeout(() => {
            this.syncRetryTimer = undefined;
            this.sync().catch(() => {});
          }, this.syncBackoff.next());
        }
        throw err;
      },
    );
    const tracked = run.finally(() => {
      this.syncing = null;
      for (const g of this.sequencer.gaps()) this.scheduleGapFill(g.conversationId);
    });
    this.syncing = tracked;
    return tracked;
  }

  private accept(messages: Message[]): void {
    this.deliver(this.sequencer.offerMany(messages));
    for (const id of new Set(messages.map((m) => m.conversationId))) this.scheduleGapFill(id);
  }

  private deliver(messages: Message[]): void {
    for (const m of messages) this.emitter.emit('message', m);
  }

  /**
   * A change caught up by sync, emitted as the live event of the same kind: `message.updated` for an edit or delete,
   * `member.left` (by: null) for a departure, and for a member who joined, got a role or read: `member.changed` with
   * the whole member (upsert it) plus `read` with their cursor. A change may repeat one already received live; each
   * carries the current state, so applying it again is harmless.
   */
  private applyChange(conversationId: string, change: Change): void {
    switch (change.kind) {
      case 'message':
        this.emitter.emit('message.updated', change.message);
        return;
      case 'left':
        this.emitter.emit('member.left', { conversationId, userId: change.userId, by: null });
        return;
      case 'member':
        this.emitter.emit('member.changed', { conversationId, member: change.member });
        this.emitter.emit('read', { conversationId, userId: change.member.userId, seq: change.member.readSeq });
        return;
    }
  }

  private scheduleGapFill(conversationId: string, delayMs = this.gapFetchDelayMs): void {
    if (this.syncing || this.filling.has(conversationId) || this.gapTimers.has(conversationId)) return;
    if (!this.sequencer.gap(conversationId)) return;
    this.gapTimers.set(conversationId, setTimeout(() => {
      this.gapTimers.delete(conversationId);
      void this.fillGap(conversationId);
    }, delayMs));
  }

  private async fillGap(conversationId: string): Promise<void> {
    if (this.syncing || this.filling.has(conversationId) || this.stateValue !== 'open') return;
    if (!this.sequencer.gap(conversationId)) return;
    const gen = this.generation;
    this.filling.add(conversationId);
    try {
      await catchUp(this.catchUpContext(), conversationId, false);
      this.gapFailures.delete(conversationId);
    } catch (err) {
      // If the connection went, the reconnect's sync catches up; otherwise retry after a backoff.
      if (gen === this.generation && this.stateValue === 'open') {
        this.emitError(err);
        const failures = this.gapFailures.get(conversationId) ?? 0;
        this.gapFailures.set(conversationId, failures + 1);
        this.filling.delete(conversationId);
        this.scheduleGapFill(conversationId, fullJitterDelay(failures, this.backoffOpts, this.random));
      }
    } finally {
      this.filling.delete(conversationId);
    }
  }

  private catchUpContext(): CatchUpContext {
    const ctx: CatchUpContext = {
      sequencer: this.sequencer,
      historyAfter: (data) => this.request('history.after', data),
      sync: (data) => this.request('sync', data),
      listConversations: (data) => this.request('conversation.list', data),
      deliver: (messages) => this.deliver(messages),
      applyChange: (conversationId, change) => this.applyChange(conversationId, change),
      applyConversation: (conversation) => this.emitter.emit('conversation.updated', conversation),
      onSkippedGap: (conversationId, from, to) =>
        this.emitError(new ParleyClientError('NOT_FOUND', `Messages ${from}..${to} of ${conversationId} could not be fetched; skipped`, {
          details: { conversationId, from, to },
        })),
    };
    if (this.syncPageSize !== undefined) ctx.pageSize = this.syncPageSize;
    const maxFrameBytes = this.welcomeValue?.limits.maxFrameBytes;
    if (maxFrameBytes !== undefined) ctx.maxFrameBytes = maxFrameBytes;
    return ctx;
  }

  // ---------------------------------------------------------------- outbox

  /**
   * Sends a message (to a conversation id, `{conversationId}`, or `{to: userId}`) and resolves with the stored message
   * once the server acknowledges it. While disconnected the send waits in the outbox; a temporary failure or a
   * disconnect retries it with the same idempotency key, so it is stored exactly once. Rejects on a permanent error,
   * OUTBOX_FULL, or CLOSED.
   */
  send(target: SendTarget, text: string, meta?: unknown, options: SendOptions = {}): Promise<Message> {
    if (this.userClosed) return Promise.reject(new ParleyClientError('CLOSED', 'The client was closed'));
    const data: SendData = { key: options.key ?? newIdempotencyKey(), text };
    if (typeof target === 'string') data.conversationId = target;
    else if ('to' in target) data.to = target.to;
    else data.conversationId = target.conversationId;
    if (meta !== undefined) data.meta = meta;
    let added: ReturnType<Outbox['add']>;
    try {
      added = this.outbox.add(data);
    } catch (err) {
      return Promise.reject(err);
    }
    this.pumpOutbox();
    return added.promise;
  }

  /** Unacknowledged sends, oldest first. */
  pendingSends(): PendingSend[] {
    return this.outbox.snapshot();
  }

  private pumpOutbox(): void {
    if (this.stateValue !== 'open') return;
    for (const entry of this.outbox.queued()) this.transmit(entry);
  }

  private transmit(entry: OutboxEntry): void {
    entry.state = 'sending';
    entry.attempts++;
    const gen = this.generation;
    this.request('message.send', entry.data).then(
      (result) => {
        if (!this.outbox.has(entry)) return;
        this.outbox.remove(entry);
        entry.resolve(sentMessage(entry.data, result, this.welcomeValue?.user.id ?? ''));
      },
      (err: unknown) => {
        if (!this.outbox.has(entry) || entry.state !== 'sending') return;
        const e = err instanceof ParleyClientError ? err : new ParleyClientError('INTERNAL', asError(err).message);
        if (!e.temporary) {
          this.outbox.remove(entry);
          entry.reject(e);
          return;
        }
        if (gen !== this.generation || this.stateValue !== 'open') {
          entry.state = 'queued'; // the next connection sends it
          return;
        }
        entry.state = 'waiting';
        entry.retryTimer = setTimeout(() => {
          entry.retryTimer = undefined;
          if (entry.state !== 'waiting') return;
          entry.state = 'queued';
          this.pumpOutbox();
          // A RATE_LIMITED reply says when the send can succeed: waiting less only spends another refusal.
        }, Math.max(e.retryAfterMs ?? 0, fullJitterDelay(entry.attempts - 1, this.backoffOpts, this.random)));
      },
    );
  }

  // ---------------------------------------------------------------- convenience wrappers (thin)

  ping(): Promise<ResultMap['ping']> {
    return this.request('ping', {});
  }

  /** Every conversation of the user, most recently active first (all pages of `conversation.list`). */
  async conversations(): Promise<MyConversation[]> {
    const all: MyConversation[] = [];
    let after: string | undefined;
    // Bounded: each page holds at least one conversation, and a user has a bounded number of them.
    for (let page = 0; page < 10_000; page++) {
      const r = await this.request('conversation.list', after === undefined ? {} : { after });
      all.push(...r.conversations);
      if (!r.more || r.next === null) break;
      after = r.next;
    }
    return all;
  }

  /** A page of older messages (oldest first): before `beforeSeq`/`beforeTime`, or the newest page. Not deduplicated. */
  history(conversationId: string, options: { beforeSeq?: number; beforeTime?: number; limit?: number } = {}): Promise<Page> {
    return this.request('history.before', { conversationId, ...options });
  }

  /** Messages after `afterSeq` (oldest first). Not routed through `message`; for the app's own paging. */
  historyAfter(conversationId: string, afterSeq: number, limit?: number): Promise<Page> {
    return this.request('history.after', limit === undefined ? { conversationId, afterSeq } : { conversationId, afterSeq, limit });
  }

  edit(conversationId: string, seq: number, text: string, meta?: unknown): Promise<Message> {
    const data = meta === undefined ? { conversationId, seq, text } : { conversationId, seq, text, meta };
    return this.request('message.edit', data).then((r) => r.message);
  }

  deleteMessage(conversationId: string, seq: number): Promise<Message> {
    return this.request('message.delete', { conversationId, seq }).then((r) => r.message);
  }

  markRead(conversationId: string, seq: number): Promise<ResultMap['read.mark']> {
    return this.request('read.mark', { conversationId, seq });
  }

  typing(conversationId: string, typing = true): Promise<ResultMap['typing']> {
    return this.request('typing', { conversationId, typing });
  }

  /**
   * The presence of these users (those who share a conversation with you, and yourself; the server leaves out the
   * rest). Any number of ids: they are sent in `presence.get` requests of at most PRESENCE_BATCH ids that each fit
   * `welcome.limits.maxFrameBytes`.
   */
  async presence(userIds: readonly string[]): Promise<PresenceInfo[]> {
    const users: PresenceInfo[] = [];
    for (const batch of splitForFrame(userIds, PRESENCE_BATCH, this.welcomeValue?.limits.maxFrameBytes)) {
      users.push(...(await this.request('presence.get', { userIds: batch })).users);
    }
    return users;
  }

  /**
   * Keep receiving the presence of these users (`presence` events without `conversationId`) while this client shows
   * them: needed for members of groups above the server's `presence.maxGroupSize` (100 by default), whose presence is
   * not pushed otherwise; direct-conversation peers and small-group members are pushed anyway. Subscriptions are
   * renewed after every reconnect. Resolves with their presence now (users you share no conversation with are left
   * out). Rejects with LIMIT_EXCEEDED past the server's `presence.maxSubscriptions` (500): those ids are not kept.
   */
  async subscribePresence(userIds: readonly string[]): Promise<PresenceInfo[]> {
    const added = userIds.filter((id) => !this.presenceWatches.has(id));
    for (const id of added) this.presenceWatches.add(id);
    try {
      return await this.sendPresenceSubscribe(userIds);
    } catch (err) {
      for (const id of added) this.presenceWatches.delete(id);
      throw err;
    }
  }

  /** Stop receiving the presence of these users (see subscribePresence). */
  async unsubscribePresence(userIds: readonly string[]): Promise<void> {
    const removed = userIds.filter((id) => this.presenceWatches.delete(id));
    for (const batch of splitForFrame(removed, PRESENCE_BATCH, this.welcomeValue?.limits.maxFrameBytes)) {
      await this.request('presence.unsubscribe', { userIds: batch });
    }
  }

  // ---------------------------------------------------------------- internals

  private setState(state: ClientState): void {
    if (this.stateValue === state) return;
    this.stateValue = state;
    this.emitter.emit('state', state);
  }

  private emitError(err: unknown): void {
    this.emitter.emit('error', asError(err));
  }

  private rejectWaiters(err: ParleyClientError): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(err);
  }

  /**
   * The server pings at the WebSocket level, which browsers cannot observe. So when nothing has arrived for a heartbeat
   * interval, the client sends a `ping` request; no reply within the request timeout means the connection is dead.
   */
  private startWatchdog(intervalMs: number): void {
    this.stopWatchdog();
    if (!(intervalMs > 0)) return;
    const gen = this.generation;
    this.watchdogTimer = setInterval(() => {
      if (gen !== this.generation || this.pingInFlight) return;
      if (Date.now() - this.lastFrameAt < intervalMs) return;
      this.pingInFlight = true;
      this.ping()
        .catch((err: unknown) => {
          if (gen === this.generation && err instanceof ParleyClientError && err.code === 'TIMEOUT') {
            this.lost(gen, closeCatalogue.HEARTBEAT_TIMEOUT.code, 'no reply to a ping (client-side heartbeat)');
          }
        })
        .finally(() => {
          this.pingInFlight = false;
        });
    }, intervalMs);
  }

  private startHeadCheck(): void {
    if (this.headCheckTimer !== undefined) clearInterval(this.headCheckTimer);
    this.headCheckTimer = undefined;
    if (!(this.headCheckIntervalMs > 0)) return;
    this.headCheckTimer = setInterval(() => this.checkHeads(), this.headCheckIntervalMs);
    // A client must not keep a Node process alive by itself.
    (this.headCheckTimer as { unref?: () => void }).unref?.();
  }

  private stopWatchdog(): void {
    if (this.watchdogTimer !== undefined) clearInterval(this.watchdogTimer);
    this.watchdogTimer = undefined;
    this.pingInFlight = false;
  }

  private clearGapTimers(): void {
    for (const t of this.gapTimers.values()) clearTimeout(t);
    this.gapTimers.clear();
  }

  private clearAttemptTimer(): void {
    if (this.attemptTimer !== undefined) clearTimeout(this.attemptTimer);
    this.attemptTimer = undefined;
  }

  private clearTimers(): void {
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.clearAttemptTimer();
    if (this.syncRetryTimer !== undefined) clearTimeout(this.syncRetryTimer);
    this.syncRetryTimer = undefined;
    this.stopWatchdog();
    this.clearGapTimers();
    if (this.headCheckTimer !== undefined) clearInterval(this.headCheckTimer);
    this.headCheckTimer = undefined;
  }
}

/**
 * Whether `welcome` shows that a reconnecting client missed nothing: it lists every conversation (not cut), the same
 * set the client tracks (none joined or left while away), each at the client's delivered seq and stored rev, with no
 * gap buffered. A first connection (nothing tracked) always syncs: its `synced` event lists the conversations.
 */
function upToDate(welcome: Welcome, sequencer: Sequencer): boolean {
  const listed = welcome.conversations;
  if (!Array.isArray(listed) || welcome.conversationsMore !== false) return false; // cut, or an older server
  const known = sequencer.positions();
  if (known.length === 0 || known.length !== listed.length) return false;
  const byId = new Map(known.map((p) => [p.conversationId, p]));
  return listed.every((c) => {
    const mine = byId.get(c.id);
    return mine !== undefined && mine.afterSeq === c.lastSeq && mine.rev === c.rev && sequencer.gap(c.id) === null;
  });
}

/**
 * In a browser, calls `visible` when the tab becomes visible again (timers of hidden tabs are throttled, and a laptop
 * waking up may hold a dead socket), and `online` / `offline` when the browser's network comes and goes. Returns the
 * remover; a no-op in Node.
 */
function watchPage({ visible, online, offline }: { visible: () => void; online: () => void; offline: () => void }): () => void {
  const g = globalThis as { addEventListener?: (t: string, f: () => void) => void; removeEventListener?: (t: string, f: () => void) => void; document?: { visibilityState?: string; addEventListener?: (t: string, f: () => void) => void; removeEventListener?: (t: string, f: () => void) => void } };
  const doc = g.document;
  if (typeof g.addEventListener !== 'function' || !doc || typeof doc.addEventListener !== 'function') return () => {};
  const onVisible = (): void => {
    if (doc.visibilityState === 'visible') visible();
  };
  doc.addEventListener('visibilitychange', onVisible);
  g.addEventListener('online', online);
  g.addEventListener('offline', offline);
  return () => {
    doc.removeEventListener?.('visibilitychange', onVisible);
    g.removeEventListener?.('online', online);
    g.removeEventListener?.('offline', offline);
  };
}

/** Detaches a socket and closes it; late events of it are ignored (an error listener stays: `ws` throws without one). */
function abandon(ws: WebSocketLike, code?: number, reason?: string): void {
  ws.onopen = null;
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = () => {};
  try {
    if (code === undefined) ws.close();
    else ws.close(code, reason);
  } catch {
    /* already closed */
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
