/**
 * The one catalogue of error codes a client can receive, in a request's error reply (WebSocket) or an error body
 * (REST). Codes are stable: a client branches on `code`, never on `message`. `temporary: true` means the same request
 * may succeed if retried later unchanged (with the same idempotency key for sends); `false` means retrying unchanged
 * will fail again. `status` is the HTTP status the REST API answers with.
 *
 * The protocol document (docs/protocol.md in the Parley repository) lists exactly these codes; a test holds the two
 * equal.
 */
export const errorCatalogue = {
  BAD_FRAME: { status: 400, temporary: false, message: 'The frame is not a JSON object' },
  UNKNOWN_TYPE: { status: 400, temporary: false, message: 'Unknown request type' },
  INVALID_REQUEST: { status: 400, temporary: false, message: 'The request does not match its schema' },
  UNAUTHORIZED: { status: 401, temporary: false, message: 'Missing, invalid or expired credentials' },
  FORBIDDEN: { status: 403, temporary: false, message: 'Your role does not allow this action' },
  BANNED: { status: 403, temporary: false, message: 'This account is banned' },
  NOT_MEMBER: { status: 403, temporary: false, message: 'You are not a member of this conversation' },
  NOT_FOUND: { status: 404, temporary: false, message: 'No such conversation, message or user' },
  BANNED_FROM_GROUP: { status: 403, temporary: false, message: 'You are banned from this group' },
  ALREADY_MEMBER: { status: 409, temporary: false, message: 'Already a member of this conversation' },
  CONFLICT: { status: 409, temporary: false, message: 'The request conflicts with the current state' },
  MESSAGE_TOO_LARGE: { status: 413, temporary: false, message: 'The message text or metadata exceeds the size limit' },
  LIMIT_EXCEEDED: { status: 422, temporary: false, message: 'A configured limit (conversations per user, members per group) is reached' },
  INVITE_INVALID: { status: 404, temporary: false, message: 'No such invite' },
  INVITE_EXPIRED: { status: 410, temporary: false, message: 'The invite has expired' },
  INVITE_EXHAUSTED: { status: 410, temporary: false, message: 'The invite has reached its maximum number of uses' },
  INVITE_REVOKED: { status: 410, temporary: false, message: 'The invite was revoked' },
  ACCOUNT_EXISTS: { status: 409, temporary: false, message: 'An account with this username already exists' },
  WEAK_PASSWORD: { status: 400, temporary: false, message: 'The password is too short or too easy to guess' },
  INVALID_CREDENTIALS: { status: 401, temporary: false, message: 'Wrong username or password' },
  ACCOUNTS_DISABLED: { status: 403, temporary: false, message: 'Built-in accounts are turned off on this server' },
  RATE_LIMITED: { status: 429, temporary: true, message: 'Too many requests; slow down and retry later' },
  TIMEOUT: { status: 504, temporary: true, message: 'The request did not complete in time' },
  UNAVAILABLE: { status: 503, temporary: true, message: 'A backing service is unavailable; retry later' },
  INTERNAL: { status: 500, temporary: true, message: 'Internal server error' },
} as const satisfies Record<string, { status: number; temporary: boolean; message: string }>;

export type ErrorCode = keyof typeof errorCatalogue;
export const errorCodes = Object.keys(errorCatalogue) as ErrorCode[];

/**
 * The error body on the wire: `{code, message, temporary}`, plus optional `details`: `[{path, message}]` for
 * INVALID_REQUEST, `{reason, ...}` for WEAK_PASSWORD and ACCOUNT_EXISTS (docs/protocol.md); and `retryAfterMs` for
 * RATE_LIMITED.
 */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  temporary: boolean;
  details?: unknown;
  /** RATE_LIMITED: milliseconds until the same request can succeed (an integer ≥ 1). */
  retryAfterMs?: number;
}
