import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { ParleyError } from '../protocol/errors.js';
import type { Store, UserRecord } from '../store/store.js';
import { usernameDisplayForm, usernameKey, usernameProblem } from '../protocol/usernames.js';
import { checkPassword, type PasswordPolicy } from './password-policy.js';
import { hashPassword, verifyPassword } from './passwords.js';
import type { TokenService } from './tokens.js';

/**
 * A new username: trimmed, put in NFC (the display form), then held to the username rules (src/protocol/usernames.ts).
 * Uniqueness (NFKC + case folding) and confusability are the store's checks, at creation.
 */
export const usernameSchema = z.string().max(1024).transform(usernameDisplayForm).superRefine((name, ctx) => {
  const problem = usernameProblem(name);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
}).describe('1-64 characters (after trimming, in NFC): letters, combining marks, digits, "_", "." and "-"; no white space, '
  + 'controls or invisible characters; letters may not mix Latin, Cyrillic, Greek, Armenian or Cherokee. Unique after NFKC + full case '
  + 'folding; refused when confusable (Unicode TR39 skeletons, in any case, diacritics ignored) with an existing account.');

/** Passwords: any Unicode, 1–1024 characters here; the strength policy (src/auth/password-policy.ts) applies to new ones. */
const passwordSchema = z.string().min(1).max(1024)
  .describe('Any Unicode, spaces included. A new password needs at least auth.accounts.minPasswordLength (8) characters, not only white space, and a zxcvbn score of at least auth.accounts.minPasswordScore (3); else WEAK_PASSWORD.');

/** The body of registration (and, with `admin`, of the admin API's account creation). */
export const credentialsSchema = z.object({ username: usernameSchema, password: passwordSchema }).strict();

/** The body of a login: any name is looked up (accounts older than today's username rules must still log in). */
export const loginSchema = z.object({ username: z.string().trim().min(1).max(1024), password: passwordSchema }).strict();

export interface Session {
  user: { id: string; name: string };
  token: string;
  expiresAt: number;
}

/**
 * Built-in accounts for standalone use: register and log in with a password, get a token of the server's own.
 * Turned off by `auth.accounts.enabled: false` (products that bring their own JWTs).
 */
export class Accounts {
  // A fixed hash so that a login for an unknown name costs as much as a real one (no user enumeration by timing).
  private readonly decoy: Promise<string> = hashPassword(randomUUID());

  constructor(
    private readonly store: Store,
    private readonly tokens: TokenService,
    private readonly options: { enabled: boolean; minPasswordLength: number; minPasswordScore: number },
    private readonly now: () => number = Date.now,
  ) {}

  async register(input: z.infer<typeof credentialsSchema>, opts: { isAdmin?: boolean } = {}): Promise<Session> {
    this.requireEnabled();
    const user = await this.create(input.username, input.password, opts.isAdmin ?? false);
    return this.session(user);
  }

  /**
   * Create an account (also used by the admin API, which works even when self-registration is off). `username` is a
   * display form that passed `usernameSchema`. Rejects WEAK_PASSWORD (password policy) and ACCOUNT_EXISTS (a name
   * taken or confusable, details.reason 'taken' or 'confusable').
   */
  async create(username: string, password: string, isAdmin: boolean): Promise<UserRecord> {
    await checkNewPassword(password, username, this.options);
    return this.store.createUser({ id: randomUUID(), name: username, passwordHash: await hashPassword(password), isAdmin, now: this.now() });
  }

  async login(input: z.infer<typeof loginSchema>): Promise<Session> {
    this.requireEnabled();
    const user = await this.store.getUserByName(input.username);
    const ok = await verifyPassword(input.password, user?.passwordHash ?? (await this.decoy));
    if (!user || !user.passwordHash || !ok) throw new ParleyError('INVALID_CREDENTIALS');
    if (user.banned) throw new ParleyError('BANNED');
    return this.session(user);
  }

  private async session(user: UserRecord): Promise<Session> {
    const { token, expiresAt } = await this.tokens.issue({ id: user.id, name: user.name, generation: user.tokenGeneration });
    return { user: { id: user.id, name: user.name }, token, expiresAt };
  }

  private requireEnabled(): void {
    if (!this.options.enabled) throw new ParleyError('ACCOUNTS_DISABLED');
  }
}

/** The password policy for a new account's password, with the account's name (display form and key) as known words. */
export function checkNewPassword(password: string, username: string, options: { minPasswordLength: number; minPasswordScore: number }): Promise<void> {
  const policy: PasswordPolicy = { minLength: options.minPasswordLength, minScore: options.minPasswordScore };
  return checkPassword(password, [username, usernameKey(username)], policy);
}
