import { ParleyError } from '../protocol/errors.js';
import type { ConversationPosition } from '../protocol/types.js';
import type { Store } from '../store/store.js';
import type { Publisher } from './publisher.js';

/**
 * Revoking the server's own tokens. Logout revokes one token (by its session id, until it would have expired);
 * "log out everywhere" moves the user's token generation on, which revokes every token issued before in one write.
 * Either way the user's live connections that the revocation covers are closed with 4500 (UNAUTHORIZED) on every
 * instance, through a control message on the user's topic. The Authenticator refuses revoked tokens at every later
 * WebSocket upgrade and REST call.
 */
/**
 * Whether a connection being set up may go on (its token was valid at the upgrade; what follows was stored since):
 * the user still exists, is not banned, and its token was not revoked (logout of its session, or "log out everywhere"
 * after it was issued). Admitted, it carries the ids of the user's conversations at that moment.
 */
export type ConnectionAdmission =
  | { status: 'admitted'; conversationIds: string[] }
  | { status: 'unknown_user' }
  | { status: 'banned' }
  | { status: 'revoked' };

export class Sessions {
  constructor(
    private readonly store: Store,
    private readonly publisher: Publisher,
    /** The clock tolerance tokens are accepted with past `exp` (ms): a revocation must outlive it. */
    private readonly toleranceMs: number,
    private readonly now: () => number = Date.now,
    private readonly onPublishError: (err: unknown) => void = () => {},
  ) {}

  /** Revoke the token of this session. INVALID_REQUEST for a token without a session id (product tokens). */
  async logout(userId: string, sessionId: string | null, expiresAt: number | null): Promise<void> {
    if (sessionId === null) {
      throw new ParleyError('INVALID_REQUEST', 'this token has no session to log out (tokens of the integrating product are revoked by the product)');
    }
    const now = this.now();
    // Refused (UNAVAILABLE, nothing stored) while the bus refuses publishes: its close command is what ends the
    // session's connections on other instances (Publisher.probe). Once stored, the answer is success: a publish that
    // fails after the probe is owed as a resync, which closes them too.
    await this.publisher.probe();
    // A token without expiry cannot be ours; keep its revocation for the longest lifetime we could have given it.
    // Kept while the token could still be accepted (exp plus the clock tolerance), then forgotten.
    await this.store.revokeSession(sessionId, (expiresAt ?? now + 365 * 24 * 3600 * 1000) + this.toleranceMs, now);
    await this.publisher.controlUser(userId, `revoke:${sessionId}`).catch(this.onPublishError);
  }

  /**
   * Revoke every token of ours the user holds and close the connections made with them (connections with the
   * product's tokens stay: those tokens are still valid). NOT_FOUND for an unknown user.
   */
  async logoutEverywhere(userId: string): Promise<void> {
    await this.publisher.probe();
    if ((await this.store.bumpTokenGeneration(userId)) === null) throw new ParleyError('NOT_FOUND', 'no such user');
    await this.publisher.controlUser(userId, 'revoke').catch(this.onPublishError);
  }

  /**
   * Step 2 of a connection's setup (src/gateway/gateway.ts, `setUp`), read after it listens on the user's topic, so a
   * ban or revocation stored before is seen here and one stored after reaches it as an event. The three reads run at
   * once (one round trip's wait on a network store).
   */
  async admit(userId: string, sessionId: string | null, tokenGeneration: number | null): Promise<ConnectionAdmission> {
    const [user, sessionRevoked, conversationIds] = await Promise.all([
      this.store.getUser(userId),
      sessionId === null ? false : this.store.isSessionRevoked(sessionId),
      this.store.listConversationIds(userId),
    ]);
    if (!user) return { status: 'unknown_user' };
    if (user.banned) return { status: 'banned' };
    // A logout that landed between authentication and the subscription published its close before the connection listened.
    const loggedOutEverywhere = tokenGeneration !== null && tokenGeneration !== user.tokenGeneration;
    if (sessionRevoked || loggedOutEverywhere) return { status: 'revoked' };
    return { status: 'admitted', conversationIds };
  }

  /** The user's conversations as positions for `welcome`, most recently active first. */
  positions(userId: string): Promise<ConversationPosition[]> {
    return this.store.listPositions(userId);
  }
}
