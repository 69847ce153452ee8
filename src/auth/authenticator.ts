import { ParleyError } from '../protocol/errors.js';
import type { Store } from '../store/store.js';

export interface Identity {
  userId: string;
  name: string;
  /** Token expiry (ms since the epoch), or null. */
  expiresAt: number | null;
  isAdmin: boolean;
}

export interface TokenVerifier {
  verify(token: string): Promise<{ userId: string; name: string | null; expiresAt: number | null }>;
}

/**
 * Turns a bearer token into the user it speaks for, for the WebSocket gateway and the REST API alike: verify the
 * token, make sure the user exists (users of the integrating product appear on first use), refuse banned users.
 */
export class Authenticator {
  constructor(private readonly verifier: TokenVerifier, private readonly store: Store, private readonly now: () => number = Date.now) {}

  async authenticate(token: string | null): Promise<Identity> {
    if (!token) throw new ParleyError('UNAUTHORIZED', 'no token');
    const verified = await this.verifier.verify(token);
    const existing = await this.store.getUser(verified.userId);
    const user = existing && (verified.name === null || verified.name === existing.name)
      ? existing
      : await this.store.ensureUser(verified.userId, verified.name, this.now());
    if (user.banned) throw new ParleyError('BANNED');
    return { userId: user.id, name: user.name, expiresAt: verified.expiresAt, isAdmin: user.isAdmin };
  }
}

/** The token from `Authorization: Bearer <token>`, if any. */
export function bearerToken(header: string | undefined): string | null {
  if (!header) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? match[1] : null;
}
