import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { ParleyError } from '../protocol/errors.js';
import type { Store, UserRecord } from '../store/store.js';
import { hashPassword, verifyPassword } from './passwords.js';
import type { TokenService } from './tokens.js';

export const credentialsSchema = z.object({
  username: z.string().trim().min(1).max(64).regex(/^[\p{L}\p{N}_.-]+$/u, 'letters, digits, _ . - only'),
  password: z.string().min(1).max(1024),
}).strict();

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
    private readonly options: { enabled: boolean; minPasswordLength: number },
    private readonly now: () => number = Date.now,
  ) {}

  async register(input: z.infer<typeof credentialsSchema>, opts: { isAdmin?: boolean } = {}): Promise<Session> {
    this.requireEnabled();
    const user = await this.create(input.username, input.password, opts.isAdmin ?? false);
    return this.session(user);
  }

  /** Create an account (also used by the admin API and the CLI, which work even when self-registration is off). */
  async create(username: string, password: string, isAdmin: boolean): Promise<UserRecord> {
    if (password.length < this.options.minPasswordLength) {
      throw new ParleyError('INVALID_REQUEST', `the password needs at least ${this.options.minPasswordLength} characters`);
    }
    return this.store.createUser({ id: randomUUID(), name: username, passwordHash: await hashPassword(password), isAdmin, now: this.now() });
  }

  async login(input: z.infer<typeof credentialsSchema>): Promise<Session> {
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
