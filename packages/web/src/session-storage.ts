/**
 * Where the signed-in session lives between page loads (localStorage), and what the address hands in: `#token=<jwt>`
 * from an integrating product, `#/invite/<token>` from an invite link, `#/c/<id>` for an open conversation.
 */
import type { Session } from './api/accounts.js';

const SESSION_KEY = 'parley.session';

export function loadSession(): Session | null {
  try {
    const raw = localStorage.getItem(SESSION_KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Session;
    if (typeof s?.token !== 'string' || typeof s.user?.id !== 'string') return null;
    if (typeof s.expiresAt === 'number' && s.expiresAt <= Date.now()) return null;
    return s;
  } catch {
    return null;
  }
}

export function saveSession(session: Session | null): void {
  if (session) localStorage.setItem(SESSION_KEY, JSON.stringify(session));
  else localStorage.removeItem(SESSION_KEY);
}

/**
 * A token an integrating product put in the address (`#token=<jwt>`), taken out of it at once so it is neither kept
 * in the history nor copied with the address. The fragment never reaches the server's logs.
 */
export function takeHandedInToken(): string | null {
  const match = /^#token=([A-Za-z0-9._~+/=-]+)$/.exec(location.hash);
  if (!match) return null;
  history.replaceState(null, '', location.pathname + location.search);
  return decoded(match[1]!);
}

export type Route = { kind: 'home' } | { kind: 'conversation'; id: string } | { kind: 'invite'; token: string };

export function currentRoute(): Route {
  const hash = location.hash;
  let m = /^#\/c\/([^/]+)$/.exec(hash);
  const id = m && decoded(m[1]!);
  if (id) return { kind: 'conversation', id };
  m = /^#\/invite\/([^/]+)$/.exec(hash);
  const token = m && decoded(m[1]!);
  if (token) return { kind: 'invite', token };
  return { kind: 'home' };
}

/** A percent-decoded part of the address, or null when it is not valid percent-encoding (a mangled or hostile link). */
function decoded(part: string): string | null {
  try {
    return decodeURIComponent(part);
  } catch {
    return null;
  }
}

export function conversationHref(id: string): string {
  return `#/c/${encodeURIComponent(id)}`;
}

export function inviteUrl(token: string): string {
  return `${location.origin}/#/invite/${encodeURIComponent(token)}`;
}
