/**
 * Which web pages may use this server from a browser (`server.cors.origins`), for REST (CORS headers) and the
 * WebSocket upgrade (its `Origin` header). Browsers always send `Origin` on a cross-origin request and on every
 * WebSocket upgrade; other clients (the SDK on Node, curl, mobile apps) usually send none. So:
 * - no Origin: allowed (not a browser; a browser page cannot leave it out);
 * - the server's own origin: allowed, it is not cross-origin. With `server.publicUrl` set, that is exactly the
 *   public URL's origin (scheme, host and port). Without it, the server cannot know its name, so an Origin whose
 *   host:port equals the request's Host header counts as its own: a page on a DNS name an attacker points at the
 *   server (DNS rebinding) then passes too. It still needs a token, which such a page cannot read from the real
 *   origin's storage; set `server.publicUrl` to pin the origin;
 * - an origin in the list, or any origin when the list holds `*`: allowed;
 * - anything else: refused (REST answers without CORS headers, so the browser withholds the reply; the WebSocket
 *   upgrade is refused with HTTP 403).
 */
export interface OriginPolicy {
  /** The configured list, for @fastify/cors: `true` reflects any origin; a list allows exactly those. */
  readonly corsOrigin: true | string[];
  /** Whether a request with this Origin and Host header is allowed. */
  allows(origin: string | undefined, host: string | undefined): boolean;
}

/** `origins`: the configured list; `publicUrl`: the server's public URL (`server.publicUrl`), if configured. */
export function createOriginPolicy(origins: readonly string[], publicUrl?: string): OriginPolicy {
  const any = origins.includes('*');
  // Origins compare without a trailing slash and case-insensitively in scheme and host (RFC 6454 serialisation).
  const allowed = new Set(origins.filter((o) => o !== '*').map(normalise));
  const own = publicUrl === undefined ? null : normalise(new URL(publicUrl).origin);
  return {
    corsOrigin: any ? true : [...allowed],
    allows(origin, host) {
      if (origin === undefined) return true;
      if (any || allowed.has(normalise(origin))) return true;
      if (own !== null) return normalise(origin) === own;
      return host !== undefined && hostOf(origin) === host.toLowerCase();
    },
  };
}

function normalise(origin: string): string {
  return origin.replace(/\/+$/, '').toLowerCase();
}

function hostOf(origin: string): string | null {
  try {
    return new URL(origin).host.toLowerCase();
  } catch {
    return null; // `null` (sandboxed pages, file://) and garbage match no host
  }
}
