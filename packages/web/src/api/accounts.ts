/**
 * The REST calls the SDK has no helper for yet: registering, logging in and logging out a built-in account
 * (`POST /api/v1/accounts`, `POST /api/v1/sessions`, `DELETE /api/v1/sessions/current`). Everything else the client
 * does goes over the WebSocket through `@parley/sdk`. These belong in the SDK (see the report of issue 11); until then
 * they live here, apart from the UI, and speak the same error body as the SDK (`errorFromBody`).
 */
import { errorFromBody, ParleyClientError, type ErrorBody } from '@parley/sdk';

export interface Session {
  user: { id: string; name: string };
  token: string;
  /** When the token expires (ms since the epoch); absent for a token handed in by an integrating product. */
  expiresAt?: number;
}

/** `POST /api/v1/accounts`: a new built-in account, logged in. */
export function register(username: string, password: string): Promise<Session> {
  return call<Session>('POST', '/api/v1/accounts', null, { username, password });
}

/** `POST /api/v1/sessions`: a fresh token for a built-in account. */
export function login(username: string, password: string): Promise<Session> {
  return call<Session>('POST', '/api/v1/sessions', null, { username, password });
}

/** `DELETE /api/v1/sessions/current`: revokes this token. A product's token cannot be revoked here (INVALID_REQUEST). */
export async function logout(token: string): Promise<void> {
  await call<Record<string, never>>('DELETE', '/api/v1/sessions/current', token);
}

/** `GET /api/v1/me`: who a token belongs to (used to check a token handed in by an integrating product). */
export function me(token: string): Promise<{ user: { id: string; name: string } }> {
  return call('GET', '/api/v1/me', token);
}

async function call<T>(method: string, path: string, token: string | null, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ParleyClientError('DISCONNECTED', 'The server could not be reached');
  }
  const parsed = (await res.json().catch(() => null)) as { error?: ErrorBody } | null;
  if (!res.ok) {
    if (parsed?.error) throw errorFromBody(parsed.error);
    throw new ParleyClientError('INTERNAL', `The server answered ${res.status}`);
  }
  return parsed as T;
}
