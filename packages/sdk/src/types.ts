import type { EventMap, Member, Message, MyConversation, RequestMap, RequestType } from '@parley/protocol';
import type { BackoffOptions } from './backoff.js';
import type { ParleyClientError } from './errors.js';
import type { PositionStore } from './positions.js';
import type { WebSocketConstructor } from './socket.js';

/** The `data` a caller passes for a request type (fields with a server default may be omitted). */
export type RequestInput<T extends RequestType> = RequestMap[T];

export type ClientState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export type TokenSource = string | (() => string | Promise<string>);

export interface ParleyClientOptions {
  /** The WebSocket URL, e.g. `wss://chat.example.com/ws` (http/https are mapped to ws/wss). */
  url: string;
  /** A JWT, or a function returning one; the function is called before every connection attempt. */
  token: TokenSource;
  /** WebSocket implementation; default `globalThis.WebSocket`. In Node < 22 pass the `ws` package's export. */
  WebSocket?: WebSocketConstructor;
  /** Reply timeout of each request, and the longest a connection attempt may take to bring `welcome`. @default 10000 */
  requestTimeoutMs?: number;
  /** Reconnect/retry delays (full jitter). @default { initialMs: 250, maxMs: 10000 } */
  backoff?: BackoffOptions;
  /** Reconnect after an unexpected close whose code allows it. @default true */
  autoReconnect?: boolean;
  /** `limit` for `sync` and the `history.after` pages of catch-up; default: the server's page size. */
  syncPageSize?: number;
  /** Most unacknowledged sends kept; beyond it `send` rejects with OUTBOX_FULL. @default 1000 */
  outboxLimit?: number;
  /** A gap is fetched after this delay, in case the missing messages are merely a frame behind. @default 50 */
  gapFetchDelayMs?: number;
  /**
   * How often the client asks for every conversation's head and changes (a `sync`) while connected, so a lost last
   * message or change is found without waiting for traffic; 0 disables. Also done on reconnect, and in a browser when
   * the tab becomes visible or the network comes back. @default 60000
   */
  headCheckIntervalMs?: number;
  /**
   * Where delivery positions are kept between clients: a new client given the same store delivers nothing that an
   * earlier one delivered and catches up what it missed (`localStoragePositions()` in a browser survives page
   * reloads). @default none: the positions live in this client only (like a `memoryPositions()` of its own)
   */
  positions?: PositionStore;
  /** Random source in [0, 1) for jitter (tests). @default Math.random */
  random?: () => number;
}

export interface DisconnectInfo {
  code: number;
  reason: string;
  willReconnect: boolean;
}

export interface SyncedInfo {
  /** Conversations that became known through this sync (joined while away), tracked from their lastSeq. */
  unknown: MyConversation[];
  /** Conversations the user no longer belongs to (left/kicked/deleted while away); they are forgotten. */
  removed: string[];
}

/** Everything `on()` accepts: every server event by its wire name, plus the client's own. */
export interface ClientEventMap extends EventMap {
  /** Exactly once per message, in seq order per conversation (live, gap-filled or caught up after a reconnect). */
  'message': Message;
  'state': ClientState;
  'disconnect': DisconnectInfo;
  'error': ParleyClientError | Error;
  /**
   * A member caught up by `sync` (joined, role set or read cursor moved while away): the member as they are now, to
   * upsert. Live, the same changes arrive as `member.joined`, `member.role` and `read`.
   */
  'member.changed': { conversationId: string; member: Member };
  /** A catch-up `sync` (after a (re)connect, or a head check) completed. */
  'synced': SyncedInfo;
}

export type ClientEventName = keyof ClientEventMap;

/** Where a send goes: a conversation id, or `{ to: userId }` for a direct message (opened on first use). */
export type SendTarget = string | { conversationId: string } | { to: string };

export interface SendOptions {
  /** Idempotency key; default a fresh UUID. Supply your own to dedupe across page reloads (persist it with the draft). */
  key?: string;
}
