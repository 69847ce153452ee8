/**
 * The one catalogue of WebSocket close codes Parley sends. The range tells a client what to do:
 * - 4000–4499: reconnect (with jittered backoff; for 4004 after refreshing the token);
 * - 4500–4999: do not reconnect automatically (a person or the integrating product must act first).
 * Standard codes the server may also send: 1001 (going away), 1009 (frame too large, sent by `ws` itself, then the
 * client should reconnect), 1011 (internal error; reconnect).
 *
 * The protocol document (docs/protocol.md in the Parley repository) lists exactly these codes; a test holds the two
 * equal.
 */
export const closeCatalogue = {
  SERVER_SHUTDOWN: { code: 4000, reconnect: true, reason: 'Server is shutting down; reconnect (to another instance)' },
  HEARTBEAT_TIMEOUT: { code: 4001, reconnect: true, reason: 'No pong received within the heartbeat timeout' },
  SLOW_CONSUMER: { code: 4002, reconnect: true, reason: 'Outgoing backlog limit exceeded; the client is not reading or is too far behind' },
  FLOOD: { code: 4003, reconnect: true, reason: 'Too many frames; reconnect after a backoff' },
  TOKEN_EXPIRED: { code: 4004, reconnect: true, reason: 'The token expired; reconnect with a fresh token' },
  UNAVAILABLE: { code: 4005, reconnect: true, reason: 'A backing service failed or lost messages; reconnect with backoff and sync' },
  TOO_MANY_CONNECTIONS: { code: 4006, reconnect: true, reason: 'Too many connections, or connection attempts, for this user; reconnect with backoff' },
  UNAUTHORIZED: { code: 4500, reconnect: false, reason: 'Missing, invalid, forged or revoked token' },
  UNSUPPORTED_VERSION: { code: 4501, reconnect: false, reason: 'Unsupported protocol version' },
  BANNED: { code: 4502, reconnect: false, reason: 'This account is banned' },
} as const satisfies Record<string, { code: number; reconnect: boolean; reason: string }>;

export type CloseName = keyof typeof closeCatalogue;

/** Whether a client should reconnect after a close with this code. */
export function shouldReconnect(code: number): boolean {
  if (code >= 4000 && code < 4500) return true;
  if (code >= 4500 && code < 5000) return false;
  return code !== 1000;
}
