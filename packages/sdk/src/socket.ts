import { CURRENT_VERSION, SUBPROTOCOL_PREFIX, TOKEN_SUBPROTOCOL_PREFIX } from '@parley/protocol';

/**
 * The part of the WebSocket API the client uses: the browser's WebSocket and the `ws` package's both fit. Event
 * parameters are `any` so that either implementation's event classes are accepted.
 */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol: string;
  binaryType?: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onopen: ((event: any) => void) | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onmessage: ((event: any) => void) | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onclose: ((event: any) => void) | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onerror: ((event: any) => void) | null;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Standard close codes (RFC 6455) the client uses itself: a normal close, and "closed without a close frame". */
export const CLOSE_NORMAL = 1000;
export const CLOSE_ABNORMAL = 1006;

/** The subprotocols offered: `parley.v1` (the server selects it) and `bearer.<jwt>` (carries the token). */
export function subprotocols(token: string): string[] {
  return [`${SUBPROTOCOL_PREFIX}${CURRENT_VERSION}`, `${TOKEN_SUBPROTOCOL_PREFIX}${token}`];
}

/** Accepts ws://, wss://, http:// and https:// (mapped to ws/wss). The URL is otherwise used as given (e.g. `…/ws`). */
export function normalizeUrl(url: string): string {
  if (/^https:/i.test(url)) return `wss:${url.slice(6)}`;
  if (/^http:/i.test(url)) return `ws:${url.slice(5)}`;
  return url;
}

const decoder = typeof TextDecoder !== 'undefined' ? new TextDecoder() : undefined;

/** A received frame's payload as text (text frames arrive as strings; binary ones as ArrayBuffer or Buffer). */
export function frameText(data: unknown): string | undefined {
  if (typeof data === 'string') return data;
  if (!decoder) return undefined;
  if (data instanceof ArrayBuffer) return decoder.decode(new Uint8Array(data));
  if (ArrayBuffer.isView(data)) return decoder.decode(data);
  if (Array.isArray(data) && data.every((d) => ArrayBuffer.isView(d))) {
    return data.map((d: ArrayBufferView) => decoder.decode(d, { stream: true })).join('') + decoder.decode();
  }
  return undefined;
}

const encoder = typeof TextEncoder !== 'undefined' ? new TextEncoder() : undefined;

/** UTF-8 length of a string. */
export function utf8Length(text: string): number {
  if (encoder) return encoder.encode(text).length;
  let n = 0;
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  }
  return n;
}
