import type { Logger } from 'pino';
import type { RawData } from 'ws';
import { budgetSpent, operations, userBudgets, type ConnectionScope, type Services, type UserBudget } from '../domain/operations.js';
import type { Metrics } from '../http/metrics.js';
import type { CloseName } from '@parley/protocol';
import { ParleyError, isParleyError, rateLimited } from '../protocol/errors.js';
import { ENVELOPE_DEPTH } from '../protocol/json-depth.js';
import { requestEnvelope, requestSchemas, type RequestType } from '../protocol/requests.js';
import { ConnectionState, type Connection } from './connection.js';
import { userBudgetKey, type Rate, type RateLimiter } from '../ratelimit/limiter.js';
import { zodDetails } from '../protocol/validation.js';
import { illFormedDetail, inspectInput, stringRefusal, type RefusedValue } from '../protocol/well-formed.js';

export interface DispatcherOptions {
  /** The rate of each per-user budget (see userBudgets). */
  userRates: Record<UserBudget, Rate>;
  floodCloseAfter: number;
  /** Deepest `meta`; a frame may nest ENVELOPE_DEPTH more. */
  maxJsonDepth: number;
}

type Id = string | number;

/**
 * A request the dispatcher started. `settled` resolves once it is answered (never rejects). `target` is where its
 * events will go, read from its validated data: the gateway reserves the fan-out it expects against the process's
 * outgoing budget while the request runs (see Gateway.handleFrame).
 */
export interface StartedRequest {
  settled: Promise<void>;
  target: RequestTarget;
  /** Whether the reply is a page (a list, history, sync) that may be up to limits.maxReplyBytes. */
  pageReply: boolean;
  /** Whether it publishes a message event to its conversation's members (send, edit, delete): see PUBLISHING. */
  publishes: boolean;
}

/**
 * Requests whose reply is a page cut at limits.maxReplyBytes (src/domain/reply-budget.ts): the gateway reserves that
 * much of the outgoing budget while one runs, as the reply lands in the requester's backlog only once it is answered.
 */
const PAGE_REPLIES: ReadonlySet<RequestType> = new Set<RequestType>([
  'conversation.list', 'conversation.search', 'member.list', 'member.bans', 'user.find', 'invite.list',
  'history.after', 'history.before', 'sync', 'presence.get',
]);

/**
 * Requests whose event goes to every member of the conversation and that a client may issue at any rate: the gateway
 * holds their sender while most of the conversation's readers are behind (limits.maxDeliveryDelayMs).
 */
export const PUBLISHING: ReadonlySet<RequestType> = new Set<RequestType>(['message.send', 'message.edit', 'message.delete']);

/**
 * Requests that make the requester a member of a conversation (their result is `{ conversation }`): the gateway listens
 * on the conversation's topic before the reply goes out (see Dispatcher's `beforeReply`).
 */
export const JOINING: ReadonlySet<RequestType> = new Set<RequestType>(['conversation.create', 'direct.open', 'conversation.join', 'invite.accept']);

/** Requests that change their own connection (presence subscriptions): the only ones given a ConnectionScope. */
const SCOPED: ReadonlySet<RequestType> = new Set<RequestType>(['presence.subscribe', 'presence.unsubscribe']);

/** The conversation (`conversationId`) or user (`to`, a direct message) a request's events go to, if it names one. */
export interface RequestTarget {
  conversationId?: string;
  to?: string;
}

/**
 * Turns one inbound frame into exactly one reply: rate limits, then decode → validate → domain → encode.
 * Bad input of any kind gets its catalogued error and never reaches the domain.
 */
export class Dispatcher {
  constructor(
    private readonly services: Services,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    private readonly options: DispatcherOptions,
    /** Per-user budgets (message writes, searches), shared with the REST API and, with a shared engine, other instances. */
    private readonly limiter: RateLimiter,
    /** What a request may change on its connection (presence subscriptions); see ConnectionScope. */
    private readonly scopeOf: (connection: Connection) => ConnectionScope | undefined = () => undefined,
    /** Closes a connection with a catalogued close (a flood). */
    private readonly close: (connection: Connection, name: CloseName) => void = (connection, name) => connection.abandon(name),
    /**
     * Runs with a request's result before its reply is written; a promise it returns delays the reply (never fails
     * it). The gateway uses it to listen on a conversation the requester just joined (JOINING).
     */
    private readonly beforeReply: (connection: Connection, type: RequestType, result: unknown) => Promise<void> | null = () => null,
  ) {}

  /**
   * Returns the running request, if the frame started one (shutdown waits for it; the gateway counts it in flight).
   * `now`: the time the frame is handled (ms since the epoch).
   */
  handle(connection: Connection, data: RawData, isBinary: boolean, now: number): StartedRequest | void {
    // Frames that arrive while the close handshake runs are not served (a flood keeps coming after its close).
    if (connection.state !== ConnectionState.Open) return;
    if (!connection.requests.take(now)) {
      if (++connection.refusedInRow >= this.options.floodCloseAfter) return this.close(connection, 'FLOOD');
      return this.fail(connection, peekId(data), rateLimited(connection.requests.waitMs(now)));
    }
    connection.refusedInRow = 0;
    if (isBinary) return this.fail(connection, null, new ParleyError('BAD_FRAME', 'binary frames are not accepted; send JSON text'));
    let parsed: unknown;
    try {
      parsed = JSON.parse(data.toString());
    } catch {
      return this.fail(connection, null, new ParleyError('BAD_FRAME', 'the frame is not valid JSON'));
    }
    // One iterative walk, unbounded in depth: refused values anywhere first, then the depth.
    const maxDepth = this.options.maxJsonDepth + ENVELOPE_DEPTH;
    const { refused, tooDeep } = inspectInput(parsed, maxDepth);
    if (refused) return this.refuseValue(connection, parsed, refused);
    if (tooDeep) {
      // Checked before validation, which recurses: deep input must never reach it.
      const id = idOf(parsed);
      return this.fail(connection, id, new ParleyError(id === null ? 'BAD_FRAME' : 'INVALID_REQUEST', `the frame nests deeper than ${maxDepth} levels`, [
        { path: '', message: `at most ${maxDepth} levels of arrays and objects` },
      ]));
    }
    const envelope = requestEnvelope.safeParse(parsed);
    if (!envelope.success) {
      const id = idOf(parsed);
      const code = id === null ? 'BAD_FRAME' : 'INVALID_REQUEST';
      return this.fail(connection, id, new ParleyError(code, 'a request is {"id", "type", "data"}', zodDetails(envelope.error)));
    }
    const { id, type, data: body } = envelope.data;
    if (!Object.hasOwn(requestSchemas, type)) return this.fail(connection, id, new ParleyError('UNKNOWN_TYPE', `unknown request type "${type}"`));
    const requestType = type as RequestType;
    const input = requestSchemas[requestType].safeParse(body ?? {});
    if (!input.success) return this.fail(connection, id, new ParleyError('INVALID_REQUEST', `invalid data for "${type}"`, zodDetails(input.error)));
    const target = targetOf(input.data as object);
    const pageReply = PAGE_REPLIES.has(requestType);
    const publishes = PUBLISHING.has(requestType);
    const budget = userBudgets[requestType];
    if (budget) {
      // The user's budget outlives their connections: closing and reconnecting does not refill it.
      // Returned, not dropped: the gateway counts it in flight (limits.maxInflightRequests) and shutdown waits for it.
      const settled = this.limiter.take(userBudgetKey(budget, connection.userId), this.options.userRates[budget]).then(
        (decision) => {
          if (!decision.allowed) return this.fail(connection, id, rateLimited(decision.retryAfterMs, budgetSpent[budget]));
          return this.start(connection, id, requestType, input.data, now);
        },
        // A limiter that cannot answer admits (the seam's rule): an outage of it must not stop the chat.
        () => this.start(connection, id, requestType, input.data, now),
      );
      return { settled, target, pageReply, publishes };
    }
    return { settled: this.start(connection, id, requestType, input.data, now), target, pageReply, publishes };
  }

  /**
   * A lone surrogate, U+0000, a `__proto__` key or a non-finite number anywhere in the frame: INVALID_REQUEST naming the field
   * (paths inside `data` are relative to it, like schema issues), or BAD_FRAME when it is the request id itself, which
   * then cannot be echoed.
   */
  private refuseValue(connection: Connection, parsed: unknown, { path, message }: RefusedValue): void {
    const id = idOf(parsed);
    const inData = path[0] === 'data' && path.length > 1;
    const detail = illFormedDetail(inData ? path.slice(1) : path, message);
    const code = id === null ? 'BAD_FRAME' : 'INVALID_REQUEST';
    this.fail(connection, id, new ParleyError(code, `${detail.path || 'the frame'} is ${detail.message}`, [detail]));
  }

  /**
   * A request refused by a limit inside its operation (a busy store, a search already running) changed nothing: it
   * gives back the tokens it spent, so that retrying after `retryAfterMs` does not also run into the rate limits.
   */
  private refund(connection: Connection, type: RequestType, now: number): void {
    connection.requests.refund(now);
    const budget = userBudgets[type];
    if (budget) this.limiter.refund(userBudgetKey(budget, connection.userId), this.options.userRates[budget]).catch(() => {});
  }

  private start(connection: Connection, id: Id, type: RequestType, input: unknown, startedAt: number): Promise<void> {
    this.metrics.requests.inc({ type });
    return this.run(connection, id, type, input, startedAt);
  }

  private run(connection: Connection, id: Id, type: RequestType, input: unknown, startedAt: number): Promise<void> {
    const operation = operations[type] as (s: Services, u: string, d: unknown, c: string | null, scope?: ConnectionScope) => Promise<unknown>;
    // A scope is a few objects: made for the requests that use one only, not for every send.
    return operation(this.services, connection.userId, input, connection.id, SCOPED.has(type) ? this.scopeOf(connection) : undefined).then(
      (result) => {
        if (type === 'message.send') this.metrics.messagesIn.inc();
        const ready = this.beforeReply(connection, type, result);
        if (ready === null) return this.answer(connection, id, type, result, startedAt);
        return ready.then(() => this.answer(connection, id, type, result, startedAt));
      },
      (err: unknown) => {
        if (!isParleyError(err)) this.logger.error({ err, type, userId: connection.userId }, 'request failed');
        else if (err.code === 'RATE_LIMITED') this.refund(connection, type, Date.now());
        this.fail(connection, id, err);
      },
    );
  }

  private answer(connection: Connection, id: Id, type: RequestType, result: unknown, startedAt: number): void {
    this.metrics.requestSeconds.observe({ type }, (Date.now() - startedAt) / 1000);
    connection.reply(id, result);
  }

  private fail(connection: Connection, id: Id | null, err: unknown): void {
    const body = connection.replyError(id, err);
    this.metrics.errors.inc({ code: body.code });
  }
}

/**
 * Where a validated request's events go (WebSocket and REST alike): its data itself, since every request schema is an
 * object whose `conversationId` and `to`, when present, are strings (test/unit/request-target.test.ts holds them to
 * it). No object is made per request.
 */
export function targetOf(data: object): RequestTarget {
  return data as RequestTarget;
}

/** The request id of a parsed frame, if it has a usable one. */
function idOf(value: unknown): Id | null {
  if (typeof value !== 'object' || value === null) return null;
  const id = (value as { id?: unknown }).id;
  // Beyond 2^53 the number the client sent is not the one JSON.parse gives back: it cannot be echoed, so it is unusable.
  if (typeof id === 'number' && Number.isSafeInteger(id)) return id;
  if (typeof id === 'string' && id.length > 0 && id.length <= 64 && stringRefusal(id) === null) return id;
  return null;
}

/**
 * The id of a frame refused for rate, so that its reply can be matched: every request gets exactly one reply with its
 * id. Parsing costs little next to the flood bound (maxFrameBytes per frame, floodCloseAfter refusals in a row).
 */
function peekId(data: RawData): Id | null {
  if (!Buffer.isBuffer(data)) return null;
  try {
    return idOf(JSON.parse(data.toString()));
  } catch {
    return null;
  }
}
