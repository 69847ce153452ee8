import type { ErrorBody, UserInfo } from '@parley/protocol';
import { ParleyClientError, errorFromBody } from './errors.js';

/** A logged-in built-in account: what `POST /api/v1/accounts` and `POST /api/v1/sessions` answer. */
export interface Session {
  user: UserInfo;
  /** A JWT for the WebSocket (`token` option of ParleyClient) and the REST API (`Authorization: Bearer`). */
  token: string;
  /** When the token expires, in milliseconds since the epoch (24 hours after login by default). */
  expiresAt: number;
}

export interface ParleyAccountsOptions {
  /**
   * The server's base URL, e.g. `https://chat.example.com` (a `ws(s)://` URL or one ending in `/ws` is accepted too).
   * In a page served by the server itself, `''` (the page's own origin).
   */
  baseUrl: string;
  /** The fetch to use (default `globalThis.fetch`; Node 18+ and browsers have one). */
  fetch?: typeof globalThis.fetch;
}

/**
 * The REST calls of the server's built-in accounts: sign up, log in, log out, and who a token belongs to. An
 * integrating product that signs its own JWTs needs none of them. Every failure rejects with a ParleyClientError:
 * the server's error (`code` from the protocol's catalogue, e.g. `ACCOUNT_EXISTS`, `WEAK_PASSWORD`,
 * `INVALID_CREDENTIALS`, `RATE_LIMITED` with `retryAfterMs`), or `DISCONNECTED` when the server could not be reached.
 */
export class ParleyAccounts {
  private readonly base: string;
  private readonly fetchFn: typeof globalThis.fetch;

  constructor(options: ParleyAccountsOptions) {
    this.base = restBase(options.baseUrl);
    const fetchFn = options.fetch ?? globalThis.fetch;
    if (typeof fetchFn !== 'function') throw new TypeError('ParleyAccounts: no fetch available; pass options.fetch');
    this.fetchFn = fetchFn.bind(globalThis);
  }

  /** `POST /api/v1/accounts`: creates an account and logs it in. */
  signUp(username: string, password: string): Promise<Session> {
    return this.call<Session>('POST', '/api/v1/accounts', null, { username, password });
  }

  /** `POST /api/v1/sessions`: a fresh token for an account. */
  logIn(username: string, password: string): Promise<Session> {
    return this.call<Session>('POST', '/api/v1/sessions', null, { username, password });
  }

  /** `DELETE /api/v1/sessions/current`: revokes this token; its connections are closed (4500). */
  async logOut(token: string): Promise<void> {
    await this.call('DELETE', '/api/v1/sessions/current', token);
  }

  /** `DELETE /api/v1/sessions`: revokes every token of the server's own the user holds (4500 everywhere). */
  async logOutEverywhere(token: string): Promise<void> {
    await this.call('DELETE', '/api/v1/sessions', token);
  }

  /** `GET /api/v1/me`: who a token belongs to (e.g. to check a token handed in by an integrating product). */
  async me(token: string): Promise<UserInfo> {
    return (await this.call<{ user: UserInfo }>('GET', '/api/v1/me', token)).user;
  }

  private async call<T>(method: string, path: string, token: string | null, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {};
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await this.fetchFn(`${this.base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      throw new ParleyClientError('DISCONNECTED', `The server could not be reached (${(err as Error).message})`);
    }
    const parsed = (await res.json().catch(() => null)) as ({ error?: ErrorBody } & T) | null;
    if (!res.ok) {
      if (parsed?.error) throw errorFromBody(parsed.error, `${method} ${path}`);
      throw new ParleyClientError('INTERNAL', `The server answered ${res.status} to ${method} ${path}`);
    }
    return parsed as T;
  }
}

/** `https://host` from `https://host/`, `wss://host/ws` or `ws://host`; `''` stays `''` (same origin). */
function restBase(url: string): string {
  let base = url.replace(/\/+$/, '');
  if (base.endsWith('/ws')) base = base.slice(0, -3);
  return base.replace(/^ws(s?):\/\//, 'http$1://');
}
