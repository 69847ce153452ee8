import { closeCatalogue, errorCatalogue, type CloseName, type ErrorBody, type ErrorCode } from '@parley/protocol';

/**
 * Codes the SDK produces itself, for failures that never reached (or never came back from) the server. `TIMEOUT`
 * deliberately has the same name and `temporary` value as the server's TIMEOUT in errorCatalogue.
 */
export const localErrorCatalogue = {
  TIMEOUT: { temporary: true, message: 'No reply within the request timeout' },
  DISCONNECTED: { temporary: true, message: 'Not connected, or the connection closed before the reply arrived' },
  OUTBOX_FULL: { temporary: true, message: 'Too many unacknowledged sends are queued' },
  CLOSED: { temporary: false, message: 'The client is closed (by close(), or the server closed with a do-not-reconnect code)' },
} as const satisfies Record<string, { temporary: boolean; message: string }>;

export type LocalErrorCode = keyof typeof localErrorCatalogue;
/** A server code from errorCatalogue, a local code, or (from a newer server) a code this SDK does not know. */
export type ClientErrorCode = ErrorCode | LocalErrorCode | (string & {});

export interface ParleyClientErrorInit {
  temporary?: boolean;
  details?: unknown;
  /** RATE_LIMITED: the server's `retryAfterMs`, milliseconds until the same request can succeed. */
  retryAfterMs?: number;
  /** For errors caused by a WebSocket close: the close code and its catalogue name if any. */
  closeCode?: number;
  closeReason?: string;
  /** The request type that failed, when the error answers a request. */
  requestType?: string;
}

export class ParleyClientError extends Error {
  readonly code: ClientErrorCode;
  readonly temporary: boolean;
  readonly details?: unknown;
  /** RATE_LIMITED: milliseconds until the same request can succeed (from the server), if it said. */
  readonly retryAfterMs?: number;
  readonly closeCode?: number;
  readonly closeName?: CloseName;
  readonly closeReason?: string;
  readonly requestType?: string;
  constructor(code: ClientErrorCode, message?: string, init: ParleyClientErrorInit = {}) {
    super(message ?? defaultMessage(code));
    this.name = 'ParleyClientError';
    this.code = code;
    this.temporary = init.temporary ?? isTemporary(code);
    if (init.details !== undefined) this.details = init.details;
    if (init.retryAfterMs !== undefined) this.retryAfterMs = init.retryAfterMs;
    if (init.closeCode !== undefined) {
      this.closeCode = init.closeCode;
      const name = closeNameOf(init.closeCode);
      if (name) this.closeName = name;
    }
    if (init.closeReason !== undefined) this.closeReason = init.closeReason;
    if (init.requestType !== undefined) this.requestType = init.requestType;
  }
}

function defaultMessage(code: string): string {
  if (code in errorCatalogue) return errorCatalogue[code as ErrorCode].message;
  if (code in localErrorCatalogue) return localErrorCatalogue[code as LocalErrorCode].message;
  return code;
}

/** Whether a code means "retrying unchanged may succeed": from the protocol catalogue or the local one; unknown: false. */
export function isTemporary(code: string): boolean {
  if (code in errorCatalogue) return errorCatalogue[code as ErrorCode].temporary;
  if (code in localErrorCatalogue) return localErrorCatalogue[code as LocalErrorCode].temporary;
  return false;
}

/** The catalogue name of a close code (e.g. 4500 → 'UNAUTHORIZED'), if it is one of Parley's. */
export function closeNameOf(code: number): CloseName | undefined {
  for (const [name, entry] of Object.entries(closeCatalogue)) if (entry.code === code) return name as CloseName;
  return undefined;
}

/** The error for a server's `{code, message, temporary, details?, retryAfterMs?}` body. The server's `temporary` wins. */
export function errorFromBody(body: Partial<ErrorBody> | null | undefined, requestType?: string): ParleyClientError {
  const code = typeof body?.code === 'string' ? body.code : 'INTERNAL';
  const init: ParleyClientErrorInit = {};
  if (typeof body?.temporary === 'boolean') init.temporary = body.temporary;
  if (body?.details !== undefined) init.details = body.details;
  if (typeof body?.retryAfterMs === 'number' && body.retryAfterMs > 0) init.retryAfterMs = body.retryAfterMs;
  if (requestType !== undefined) init.requestType = requestType;
  return new ParleyClientError(code, typeof body?.message === 'string' ? body.message : undefined, init);
}

export function isParleyClientError(err: unknown): err is ParleyClientError {
  return err instanceof ParleyClientError;
}
