/**
 * What a client sends: `{"id", "type", "data"}` with `data` of the request's type as below. Fields marked optional
 * may be left out (the server applies its default). Limits on text and ids are the server's (docs/protocol.md in the
 * Parley repository); the server validates every request against its own schemas, which a compile-time check in the
 * server holds equal to these types.
 *
 * Ids are 1–128 characters of `A–Z a–z 0–9 . _ ~ - : @ + | =`. `after` is the `next` cursor of the previous page
 * (absent or null: the first page). Seqs are integers ≥ 0 (≥ 1 where they name a message). Times are milliseconds
 * since the epoch.
 */
export interface RequestMap {
  /** Application-level ping; the reply is `{}`. */
  'ping': Record<string, never>;
  /** A page of my conversations, most recently active first; `limit` 1–1000. */
  'conversation.list': { after?: string | null; limit?: number };
  'conversation.get': { conversationId: string };
  /** `visibility` defaults to `'public'`. */
  'conversation.create': { name: string; visibility?: 'public' | 'private' };
  /** Open (or return the existing) direct conversation with a user. */
  'direct.open': { userId: string };
  /** Public groups whose name contains `query` (case-insensitive); `limit` 1–500. */
  'conversation.search': { query?: string; limit?: number };
  'conversation.join': { conversationId: string };
  'conversation.leave': { conversationId: string };
  'conversation.rename': { conversationId: string; name: string };
  'conversation.delete': { conversationId: string };
  /** A page of members in join order. */
  'member.list': { conversationId: string; after?: string | null; limit?: number };
  'member.kick': { conversationId: string; userId: string };
  'member.role': { conversationId: string; userId: string; role: 'admin' | 'member' };
  'member.ban': { conversationId: string; userId: string };
  'member.unban': { conversationId: string; userId: string };
  /** A page of bans in ban order. */
  'member.bans': { conversationId: string; after?: string | null; limit?: number };
  /** The user with exactly this username (a built-in account). */
  'user.find': { username: string };
  /** `expiresInSeconds` 1 s to a year; `maxUses` 1 to 1,000,000; both unlimited when left out. */
  'invite.create': { conversationId: string; expiresInSeconds?: number; maxUses?: number };
  'invite.list': { conversationId: string; after?: string | null; limit?: number };
  'invite.revoke': { token: string };
  'invite.accept': { token: string };
  /**
   * Exactly one of `conversationId` and `to` (a user id: opens the direct conversation on first use). `key` (1–128
   * characters) is the idempotency key: a retry with the same key returns the original message.
   */
  'message.send': { conversationId?: string; to?: string; key: string; text: string; meta?: unknown };
  'message.edit': { conversationId: string; seq: number; text: string; meta?: unknown };
  'message.delete': { conversationId: string; seq: number };
  /** Messages with seq > afterSeq, oldest first; `limit` 1–500. */
  'history.after': { conversationId: string; afterSeq: number; limit?: number };
  /** A page backwards from `beforeSeq` or `beforeTime` (or the newest), returned oldest first. */
  'history.before': { conversationId: string; beforeSeq?: number; beforeTime?: number; limit?: number };
  /** Catch up: per known conversation, the last seq delivered and (optionally) the last change counter stored. */
  'sync': { conversations: Array<{ conversationId: string; afterSeq: number; rev?: number }>; limit?: number };
  'read.mark': { conversationId: string; seq: number };
  'typing': { conversationId: string; typing: boolean };
  /** At most 1000 ids. */
  'presence.get': { userIds: string[] };
  /** 1–1000 ids; WebSocket only, ends with the connection. */
  'presence.subscribe': { userIds: string[] };
  'presence.unsubscribe': { userIds: string[] };
}

export type RequestType = keyof RequestMap;

/** The envelope of every client frame. */
export interface RequestFrame<T extends RequestType = RequestType> {
  /** Echoed in the reply; a string of 1–64 characters or an integer. */
  id: string | number;
  type: T;
  data?: RequestMap[T];
}
