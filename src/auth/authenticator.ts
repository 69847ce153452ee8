import { ParleyError } from '../protocol/errors.js';
import type { Store, UserRecord } from '../store/store.js';
import type { VerifiedToken } from './tokens.js';

export interface Identity {
  userId: string;
  name: string;
  /** Token expiry (ms since the epoch), or null. */
  expiresAt: number | null;
  isAdmin: boolean;
  /** The session id of a token of our own (what logout revokes), or null (product tokens, tokens without one). */
  sessionId: string | null;
  /** The token generation (`gen`) of a token of our own, or null for product tokens. */
  tokenGeneration: number | null;
}

export interface TokenVerifier {
  verify(token: string): Promise<VerifiedToken>;
}

/**
 * Turns a bearer token into the user it speaks for, for the WebSocket gateway and the REST API alike: verify the
 * token, make sure the user exists (users of the integrating product appear on first use), refuse banned users.
 *
 * Namespaces: a product token ("external" issuer) speaks only for product users. One whose `sub` names a built-in
 * account is refused (UNAUTHORIZED), never merged, and its `name` claim renames product users only. Admin rights of a
 * product token come from the configured admin claim alone (auth.jwt.adminClaim), never from a stored flag.
 * Revocation: a token of our own is refused once its user logged out everywhere (its `gen` is behind the user's) or
 * its session was logged out (its `jti` is revoked).
 */
export class Authenticator {
  constructor(private readonly verifier: TokenVerifier, private readonly store: Store, private readonly now: () => number = Date.now) {}

  async authenticate(token: string | null): Promise<Identity> {
    if (!token) throw new ParleyError('UNAUTHORIZED', 'no token');
    const verified = await this.verifier.verify(token);
    const user = verified.issuer === 'external' ? await this.productUser(verified) : await this.ownTokenUser(verified);
    if (user.banned) throw new ParleyError('BANNED');
    const isAdmin = verified.issuer === 'external' ? verified.admin : user.isAdmin;
    return { userId: user.id, name: user.name, expiresAt: verified.expiresAt, isAdmin, sessionId: verified.sessionId,
      tokenGeneration: verified.issuer === 'external' ? null : verified.generation };
  }

  private async productUser(verified: VerifiedToken): Promise<UserRecord> {
    const existing = await this.store.getUser(verified.userId);
    // Refused before anything is written: a banned user's token renames nobody.
    if (existing?.banned) throw new ParleyError('BANNED');
    const user = existing && (existing.origin === 'builtin' || verified.name === null || verified.name === existing.name)
      ? existing
      : await this.store.ensureUser(verified.userId, verified.name, this.now());
    if (user.origin === 'builtin') throw new ParleyError('UNAUTHORIZED', 'the subject (sub) names a built-in account; product tokens speak only for product users');
    return user;
  }

  /** Our own tokens are minted by this server only: their name claim is never applied to an existing user. */
  private async ownTokenUser(verified: VerifiedToken): Promise<UserRecord> {
    const [existing, revoked] = await Promise.all([
      this.store.getUser(verified.userId),
      verified.sessionId === null ? false : this.store.isSessionRevoked(verified.sessionId),
    ]);
    if (revoked) throw new ParleyError('UNAUTHORIZED', 'token revoked (logged out)');
    const user = existing ?? (await this.store.ensureUser(verified.userId, verified.name, this.now()));
    if (verified.generation !== user.tokenGeneration) throw new ParleyError('UNAUTHORIZED', 'token revoked (logged out everywhere)');
    return user;
  }
}

/** The token from `Authorization: Bearer <token>`, if any. */
export function bearerToken(header: string | undefined): string | null {
  if (!header) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? match[1] : null;
}
