/**
 * The server's built-in accounts, through the SDK's REST helper (`ParleyAccounts`), on the page's own origin (the
 * page is served by the server it talks to).
 */
import { ParleyAccounts, type Session as AccountSession } from '@parley/sdk';

export const accounts = new ParleyAccounts({ baseUrl: '' });

/**
 * Who is signed in: a built-in account's session, or a token handed in by an integrating product (which has no
 * `expiresAt` here: its expiry is the product's business, and it is not revoked on logging out).
 */
export type Session = Omit<AccountSession, 'expiresAt'> & { expiresAt?: number };
