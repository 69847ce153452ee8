import type { Logger } from 'pino';
import type { RawData } from 'ws';
import { messageWrites, operations, type Services } from '../domain/operations.js';
import type { Metrics } from '../http/metrics.js';
import type { CloseName } from '../protocol/close-codes.js';
import { ParleyError, isParleyError } from '../protocol/errors.js';
import { requestEnvelope, requestSchemas, type RequestType } from '../protocol/requests.js';
import { ConnectionState, type Connection } from './connection.js';
import { TokenBucket } from './rate-limit.js';
import { zodDetails } from '../protocol/validation.js';

export interface DispatcherOptions {
  userMessageRate: { perSecond: number; burst: number };
  floodCloseAfter: number;
}

type Id = string | number;

/**
 * Turns one inbound frame into exactly one reply: rate limits, then decode → validate → domain → encode.
 * Bad input of any kind gets its catalogued error and never reaches the domain.
 */
export class Dispatcher {
  /** Message writes are limited per user, across all of the user's connections. */
  private readonly userBuckets = new Map<string, TokenBucket>();

  constructor(
    private readonly services: Services,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    private readonly options: DispatcherOptions,
  ) {}

  /** Returns the running request, if the frame started one (shutdown waits for it). */
  handle(connection: Connection, data: RawData, isBinary: boolean, close: (name: CloseName) => void): Promise<void> | void {
    // Frames that arrive while the close handshake runs are not served (a flood keeps coming after its close).
    if (connection.state !== ConnectionState.Open) return;
    const now = Date.now();
    if (!connection.requests.take(now)) {
      if (++connection.refusedInRow >= this.options.floodCloseAfter) return close('FLOOD');
      return this.fail(connection, peekId(data), new ParleyError('RATE_LIMITED'));
    }
    connection.refusedInRow = 0;
    if (isBinary) return this.fail(connection, null, new ParleyError('BAD_FRAME', 'binary frames are not accepted; send JSON text'));
    let parsed: unknown;
    try {
      parsed = JSON.parse(data.toString());
    } catch {
      return this.fail(connection, null, new ParleyError('BAD_FRAME', 'the frame is not valid JSON'));
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
    if (messageWrites.has(requestType) && !this.userBucket(connection.userId, now).take(now)) {
      return this.fail(connection, id, new ParleyError('RATE_LIMITED', 'too many messages; slow down'));
    }
    this.metrics.requests.inc({ type: requestType });
    return this.run(connection, id, requestType, input.data, now);
  }

  forgetUser(userId: string): void {
    this.userBuckets.delete(userId);
  }

  private run(connection: Connection, id: Id, type: RequestType, input: unknown, startedAt: number): Promise<void> {
    const operation = operations[type] as (s: Services, u: string, d: unknown) => Promise<unknown>;
    return operation(this.services, connection.userId, input).then(
      (result) => {
        if (type === 'message.send') this.metrics.messagesIn.inc();
        this.metrics.requestSeconds.observe({ type }, (Date.now() - startedAt) / 1000);
        connection.reply(id, result);
      },
      (err: unknown) => {
        if (!isParleyError(err)) this.logger.error({ err, type, userId: connection.userId }, 'request failed');
        this.fail(connection, id, err);
      },
    );
  }

  private fail(connection: Connection, id: Id | null, err: unknown): void {
    const body = connection.replyError(id, err);
    this.metrics.errors.inc({ code: body.code });
  }

  private userBucket(userId: string, now: number): TokenBucket {
    let bucket = this.userBuckets.get(userId);
    if (!bucket) {
      bucket = new TokenBucket(this.options.userMessageRate.perSecond, this.options.userMessageRate.burst, now);
      this.userBuckets.set(userId, bucket);
    }
    return bucket;
  }
}

/** The request id of a parsed frame, if it has a usable one. */
function idOf(value: unknown): Id | null {
  if (typeof value !== 'object' || value === null) return null;
  const id = (value as { id?: unknown }).id;
  if (typeof id === 'number' && Number.isInteger(id)) return id;
  if (typeof id === 'string' && id.length > 0 && id.length <= 64) return id;
  return null;
}

/** A refused frame is not parsed in full; its id is still worth echoing when it is cheap to find. */
function peekId(data: RawData): Id | null {
  if (!Buffer.isBuffer(data) || data.length > 4096) return null;
  try {
    return idOf(JSON.parse(data.toString()));
  } catch {
    return null;
  }
}
