/** Protocol versions this server speaks. A client states its version as the `parley.v<N>` WebSocket subprotocol or
 * the `?v=<N>` query parameter; with neither, version 1 is assumed. */
export const PROTOCOL_VERSIONS = [1] as const;
export const CURRENT_VERSION = 1;
export const SUBPROTOCOL_PREFIX = 'parley.v';
/** Browsers cannot set headers: a token may travel as the subprotocol `bearer.<jwt>` beside `parley.v1`. */
export const TOKEN_SUBPROTOCOL_PREFIX = 'bearer.';
