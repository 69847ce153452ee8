import type { IncomingMessage } from 'node:http';
import { bearerToken } from '../auth/authenticator.js';
import { CURRENT_VERSION, PROTOCOL_VERSIONS, SUBPROTOCOL_PREFIX, TOKEN_SUBPROTOCOL_PREFIX } from '@parley/protocol';

export interface Handshake {
  token: string | null;
  /** The requested protocol version, or null if the client asked only for versions this server lacks. */
  version: number | null;
}

/**
 * Read the token and protocol version from an upgrade request. The token may be in the Authorization header, in the
 * subprotocol list as `bearer.<token>` (browsers cannot set headers), or in `?token=` (compatibility; it ends up in
 * access logs, so the others are preferred).
 */
export function readHandshake(req: IncomingMessage, url: URL): Handshake {
  const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim()).filter(Boolean);
  const fromProtocol = offered.find((p) => p.startsWith(TOKEN_SUBPROTOCOL_PREFIX))?.slice(TOKEN_SUBPROTOCOL_PREFIX.length) ?? null;
  const token = bearerToken(req.headers.authorization) ?? fromProtocol ?? url.searchParams.get('token');
  return { token: token || null, version: requestedVersion(offered, url) };
}

function requestedVersion(offered: string[], url: URL): number | null {
  const asked = offered.filter((p) => p.startsWith(SUBPROTOCOL_PREFIX)).map((p) => Number(p.slice(SUBPROTOCOL_PREFIX.length)));
  const query = url.searchParams.get('v');
  if (query !== null) asked.push(Number(query));
  if (asked.length === 0) return CURRENT_VERSION;
  return asked.find((v) => (PROTOCOL_VERSIONS as readonly number[]).includes(v)) ?? null;
}

/**
 * The subprotocol the server selects: the version's, never the token. When the client offers only versions this
 * server lacks, its own first `parley.v<N>` is selected: a client that gets no subprotocol back fails the handshake
 * (ws, browsers) and could never read the 4501 close that follows.
 */
export function selectSubprotocol(protocols: Set<string>): string | false {
  for (const v of PROTOCOL_VERSIONS) if (protocols.has(`${SUBPROTOCOL_PREFIX}${v}`)) return `${SUBPROTOCOL_PREFIX}${v}`;
  for (const p of protocols) if (p.startsWith(SUBPROTOCOL_PREFIX)) return p;
  return false;
}
