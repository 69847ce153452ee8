import type { RequestMap } from '@parley/protocol';
import { z } from 'zod';
import { displayNameSchema } from './display-names.js';
import { ID_PATTERN } from './ids.js';

/**
 * Every request a client may send, keyed by `type`, with the schema of its `data`. The same operations back the REST
 * API (src/http/routes.ts), so both transports validate with these schemas. Clients see the same requests as plain
 * types (`RequestMap` of @parley/protocol, which carries no zod); the check at the end of this file makes the compiler
 * reject a schema and a type that disagree. Size limits on text are enforced by the
 * domain from configuration; the bounds here only refuse absurd input early.
 */
/** An id of the id alphabet (src/protocol/ids.ts): 1–128 of A–Z a–z 0–9 . _ ~ - : @ + | = */
const id = z.string().min(1).max(128).regex(ID_PATTERN, 'an id is 1-128 of A-Z a-z 0-9 . _ ~ - : @ + | =');
const seq = z.number().int().min(0);
const limit = z.number().int().min(1).max(500).optional();
const name = displayNameSchema;
/** An opaque paging cursor: the `next` of a previous page, passed back unchanged. */
const cursor = z.string().min(1).max(400);
/** A list page's `after`: the `next` of the previous page; absent or null (a last page's `next`) starts from the first. */
const afterCursor = cursor.nullable().transform((v) => v ?? undefined).optional();
/** Page size of lists (member.list, member.bans, invite.list); the reply byte budget may end a page sooner. */
const listLimit = z.number().int().min(1).max(1000).optional();

export const requestSchemas = {
  /** Application-level ping; the reply is `{}`. */
  'ping': z.object({}).strict(),
  /** My conversations, with lastSeq, readSeq and unread counts: what a client needs to know what to fetch. */
  'conversation.list': z.object({ after: afterCursor, limit: listLimit }).strict(),
  'conversation.get': z.object({ conversationId: id }).strict(),
  'conversation.create': z
    .object({ name, visibility: z.enum(['public', 'private']).default('public') })
    .strict(),
  /** Open (or return the existing) direct conversation with a user. */
  'direct.open': z.object({ userId: id }).strict(),
  /** Public groups whose name contains `query` (case-insensitive). */
  'conversation.search': z.object({ query: z.string().max(200).default(''), limit }).strict(),
  'conversation.join': z.object({ conversationId: id }).strict(),
  'conversation.leave': z.object({ conversationId: id }).strict(),
  'conversation.rename': z.object({ conversationId: id, name }).strict(),
  'conversation.delete': z.object({ conversationId: id }).strict(),
  /** A page of members in join order; `after` is the `next` cursor of the previous page. */
  'member.list': z.object({ conversationId: id, after: afterCursor, limit: listLimit }).strict(),
  'member.kick': z.object({ conversationId: id, userId: id }).strict(),
  'member.role': z.object({ conversationId: id, userId: id, role: z.enum(['admin', 'member']) }).strict(),
  /** Ban a user from a group (removing them if a member): they cannot join, accept an invite or be added until unbanned. */
  'member.ban': z.object({ conversationId: id, userId: id }).strict(),
  'member.unban': z.object({ conversationId: id, userId: id }).strict(),
  /** A page of bans in ban order; `after` is the `next` cursor of the previous page. */
  'member.bans': z.object({ conversationId: id, after: afterCursor, limit: listLimit }).strict(),
  /** The user with exactly this username (a built-in account), for opening a direct conversation. No listing. */
  'user.find': z.object({ username: z.string().trim().min(1).max(64) }).strict(),
  'invite.create': z
    .object({
      conversationId: id,
      expiresInSeconds: z.number().int().min(1).max(365 * 24 * 3600).optional(),
      maxUses: z.number().int().min(1).max(1_000_000).optional(),
    })
    .strict(),
  /** A page of invites in creation order; `after` is the `next` cursor of the previous page. */
  'invite.list': z.object({ conversationId: id, after: afterCursor, limit: listLimit }).strict(),
  'invite.revoke': z.object({ token: z.string().min(1).max(200) }).strict(),
  'invite.accept': z.object({ token: z.string().min(1).max(200) }).strict(),
  /**
   * Send a message to a conversation, or to a user (`to`), which opens the direct conversation on first use.
   * `key` is the client's idempotency key: a retry with the same key returns the original message.
   */
  'message.send': z
    .object({
      conversationId: id.optional(),
      to: id.optional(),
      key: z.string().min(1).max(128),
      text: z.string(),
      meta: z.unknown().optional(),
    })
    .strict()
    .refine((d) => (d.conversationId === undefined) !== (d.to === undefined), {
      message: 'exactly one of conversationId and to is required',
    }),
  'message.edit': z.object({ conversationId: id, seq: seq.min(1), text: z.string(), meta: z.unknown().optional() }).strict(),
  'message.delete': z.object({ conversationId: id, seq: seq.min(1) }).strict(),
  /** Messages with seq > afterSeq, oldest first, at most `limit`; `more` says whether another page follows. */
  'history.after': z.object({ conversationId: id, afterSeq: seq, limit }).strict(),
  /**
   * A page backwards: messages before `beforeSeq` (or before `beforeTime`, or from the newest when neither is given),
   * returned oldest first; `more` says whether older messages remain.
   */
  'history.before': z
    .object({ conversationId: id, beforeSeq: seq.optional(), beforeTime: z.number().int().min(0).optional(), limit })
    .strict(),
  /**
   * Catch up after a disconnect: for each conversation the client knows, the last seq it has. The reply holds, per
   * conversation, the first page of what follows (`history.after` fetches the rest) and lists conversations the client
   * did not name (joined meanwhile) with their lastSeq.
   */
  'sync': z
    .object({
      // `rev`: the conversation's change counter the client last stored; with it the reply carries the changes since.
      conversations: z.array(z.object({ conversationId: id, afterSeq: seq, rev: seq.optional() }).strict()).max(1000),
      limit,
    })
    .strict(),
  'read.mark': z.object({ conversationId: id, seq: seq }).strict(),
  'typing': z.object({ conversationId: id, typing: z.boolean() }).strict(),
  /** Current presence of the given users (only users who share a conversation with you are answered). */
  'presence.get': z.object({ userIds: z.array(id).max(1000) }).strict(),
  /**
   * Push presence changes of these users to this connection (WebSocket only; ends with the connection). For users the
   * client shows whose presence is not pushed anyway (members of large groups); at most `presence.maxSubscriptions`.
   */
  'presence.subscribe': z.object({ userIds: z.array(id).min(1).max(1000) }).strict(),
  /** Stop pushing presence changes of these users to this connection (ids not subscribed are ignored). */
  'presence.unsubscribe': z.object({ userIds: z.array(id).min(1).max(1000) }).strict(),
} as const;

export type RequestType = keyof typeof requestSchemas;
export type RequestData<T extends RequestType> = z.output<(typeof requestSchemas)[T]>;
export const requestTypes = Object.keys(requestSchemas) as RequestType[];

/** The envelope of every client frame: `{id, type, data}`. */
export const requestEnvelope = z
  .object({
    id: z.union([z.string().min(1).max(64), z.number().int()]),
    type: z.string().min(1).max(64),
    data: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

// ---- compile-time: the same request types both ways, each schema's input (what a client may send: fields with a
// default may be left out) assignable both ways with its @parley/protocol type.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Check<_ extends true> = never;
type RequestDrift = { [T in RequestType]: Same<z.input<(typeof requestSchemas)[T]>, RequestMap[T]> };
export type _RequestTypesMatch = Check<Same<RequestType, keyof RequestMap>>;
export type _RequestSchemasMatch = Check<RequestDrift[RequestType]>;
