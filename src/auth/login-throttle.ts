import { isParleyError, rateLimited } from '../protocol/errors.js';
import { usernameKey } from '../protocol/usernames.js';
import type { BackoffPolicy, RateLimiter } from '../ratelimit/limiter.js';

/** How failed logins are slowed down; src/config/schema.ts `limits.login` documents each field. */
export interface LoginThrottleOptions {
  pairFreeFailures: number;
  addressFreeFailures: number;
  accountFreeFailures: number;
  baseDelayMs: number;
  maxDelayMs: number;
  accountMaxDelayMs: number;
  forgetAfterMs: number;
  knownAddressTtlMs: number;
  maxConcurrentPerAddress: number;
}

/**
 * Login throttling against password guessing, without letting an attacker lock the real user out. Three failure
 * counters, each with growing delays (BackoffPolicy): the account from one address, the address over all accounts,
 * and the account over all addresses. The last one ignores addresses the account logged in from recently (known
 * addresses), and its delay is capped low: a distributed attack slows strangers down, never the user's own devices.
 * While a counter blocks, the attempt is answered RATE_LIMITED with `retryAfterMs`, before the password is checked.
 * Only failures count, so a busy address of honest users is not slowed by its successes; concurrent attempts per
 * address are capped, so a burst cannot run many guesses before the first failure is counted.
 */
export class LoginThrottle {
  private readonly inFlight = new Map<string, number>();
  private readonly pairPolicy: BackoffPolicy;
  private readonly addressPolicy: BackoffPolicy;
  private readonly accountPolicy: BackoffPolicy;

  constructor(private readonly limiter: RateLimiter, private readonly options: LoginThrottleOptions) {
    const common = { baseDelayMs: options.baseDelayMs, maxDelayMs: options.maxDelayMs, forgetAfterMs: options.forgetAfterMs };
    this.pairPolicy = { ...common, freeFailures: options.pairFreeFailures };
    this.addressPolicy = { ...common, freeFailures: options.addressFreeFailures };
    this.accountPolicy = { ...common, freeFailures: options.accountFreeFailures, maxDelayMs: options.accountMaxDelayMs };
  }

  /** Run `login` for `username` from `address` unless throttled; count its failure (INVALID_CREDENTIALS). */
  async attempt<T>(username: string, address: string, login: () => Promise<T>): Promise<T> {
    const account = `login-account:${accountKey(username)}`;
    const pair = `login-pair:${accountKey(username)}\n${address}`;
    const addressKey = `login-address:${address}`;
    const known = `login-known:${accountKey(username)}\n${address}`;
    const running = this.inFlight.get(address) ?? 0;
    if (running >= this.options.maxConcurrentPerAddress) throw rateLimited(this.options.baseDelayMs, 'too many logins at once from this address');
    this.inFlight.set(address, running + 1);
    try {
      const isKnown = await this.limiter.recalls(known);
      const [pairWait, addressWait, accountWait] = await Promise.all([
        this.limiter.blockedFor(pair), this.limiter.blockedFor(addressKey), isKnown ? 0 : this.limiter.blockedFor(account),
      ]);
      const wait = Math.max(pairWait, addressWait, accountWait);
      if (wait > 0) throw rateLimited(wait, 'too many failed logins; retry later');
      try {
        const result = await login();
        await Promise.all([this.limiter.clear(pair), this.limiter.remember(known, this.options.knownAddressTtlMs)]);
        return result;
      } catch (err) {
        if (isParleyError(err) && err.code === 'INVALID_CREDENTIALS') {
          await Promise.all([
            this.limiter.fail(pair, this.pairPolicy),
            this.limiter.fail(addressKey, this.addressPolicy),
            isKnown ? undefined : this.limiter.fail(account, this.accountPolicy),
          ]);
        }
        throw err;
      }
    } finally {
      const left = (this.inFlight.get(address) ?? 1) - 1;
      if (left <= 0) this.inFlight.delete(address);
      else this.inFlight.set(address, left);
    }
  }
}

/** Login names compare by their username key (as the store does), so "Иван" and "ИВАН" share their counters. */
function accountKey(username: string): string {
  return usernameKey(username.trim());
}
