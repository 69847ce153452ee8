import { errorCatalogue, type ErrorBody, type ErrorCode } from '@parley/protocol';

/** The catalogue itself is shared with clients (the @parley/protocol package); the server adds the error it throws. */
export { errorCatalogue, errorCodes, type ErrorBody, type ErrorCode } from '@parley/protocol';

/** An error the server means to show the client. Anything else thrown becomes INTERNAL. */
export class ParleyError extends Error {
  readonly code: ErrorCode;
  readonly details?: unknown;
  /** RATE_LIMITED: milliseconds until a retry can succeed; set by rateLimited(). */
  retryAfterMs?: number;
  constructor(code: ErrorCode, message?: string, details?: unknown) {
    super(message ?? errorCatalogue[code].message);
    this.name = 'ParleyError';
    this.code = code;
    this.details = details;
  }
  get temporary(): boolean {
    return errorCatalogue[this.code].temporary;
  }
  get status(): number {
    return errorCatalogue[this.code].status;
  }
  toBody(): ErrorBody {
    const body: ErrorBody = { code: this.code, message: this.message, temporary: this.temporary };
    if (this.details !== undefined) body.details = this.details;
    if (this.retryAfterMs !== undefined) body.retryAfterMs = this.retryAfterMs;
    return body;
  }
}

/** A RATE_LIMITED error that tells the client how long to wait (rounded up to a whole millisecond, at least 1). */
export function rateLimited(retryAfterMs: number, message?: string): ParleyError {
  const err = new ParleyError('RATE_LIMITED', message);
  err.retryAfterMs = Math.max(1, Math.ceil(retryAfterMs));
  return err;
}

export function isParleyError(err: unknown): err is ParleyError {
  return err instanceof ParleyError;
}
