/**
 * zod schemas of what the server sends back: the shapes of types.ts and the `result` of each request (results.ts).
 * The OpenAPI document takes its response schemas from here (src/http/openapi.ts), so a client can be generated from
 * it; the checks at the end of this file make the compiler reject a schema that drifts from its TypeScript type, and
 * test/e2e/operations.test.ts validates real replies against them.
 */
import { z } from 'zod';
import type { ResultMap } from '@parley/protocol';
import type * as T from './types.js';

const id = z.string();
/** Milliseconds since the epoch. */
const time = z.number().int().describe('milliseconds since the epoch');
const role = z.enum(['owner', 'admin', 'member']);
const visibility = z.enum(['public', 'private']);

export const userInfoSchema = z.object({ id, name: z.string() });

export const messageSchema = z.object({
  id,
  conversationId: id,
  seq: z.number().int().min(1),
  senderId: id,
  text: z.string().describe("'' once deleted"),
  meta: z.unknown().optional().describe('the JSON metadata given at send; absent when none'),
  key: z.string().optional().describe("the sender's idempotency key: only in history and sync replies to the sender"),
  createdAt: time,
  editedAt: time.optional().describe('absent until edited or deleted'),
  deleted: z.boolean().optional().describe('present (true) on a tombstone only'),
});

/** The reply to message.send: what the server assigned (the sender holds the text). */
export const sendReceiptSchema = z.object({
  conversationId: id,
  seq: z.number().int().min(1),
  id,
  createdAt: time,
  duplicate: z.boolean().describe('true when the key was seen before: nothing new was stored'),
  message: messageSchema.optional().describe('only with duplicate: the original message as it is now'),
});

export const conversationSchema = z.object({
  id,
  kind: z.enum(['direct', 'group']),
  name: z.string().nullable().describe('null for a direct conversation'),
  visibility,
  createdAt: time,
  createdBy: id,
  lastSeq: z.number().int().min(0),
  memberCount: z.number().int().min(0),
  rev: z.number().int().min(0).describe('the change counter: bumped by edits, deletes, cursor moves, joins, leaves, role changes and renames'),
});

export const myConversationSchema = conversationSchema.extend({
  role,
  readSeq: z.number().int().min(0),
  unread: z.number().int().min(0),
  peer: userInfoSchema.nullable().describe('the other member of a direct conversation'),
  lastMessageAt: time.nullable(),
});

export const memberSchema = z.object({ userId: id, name: z.string(), role, joinedAt: time, readSeq: z.number().int().min(0) });

export const inviteSchema = z.object({
  token: z.string(),
  conversationId: id,
  createdBy: id,
  createdAt: time,
  expiresAt: time.nullable(),
  maxUses: z.number().int().nullable(),
  uses: z.number().int().min(0),
  revoked: z.boolean(),
});

export const changeSchema = z.discriminatedUnion('kind', [
  z.object({ rev: z.number().int().min(1), kind: z.literal('message'), message: messageSchema }),
  z.object({ rev: z.number().int().min(1), kind: z.literal('member'), member: memberSchema }),
  z.object({ rev: z.number().int().min(1), kind: z.literal('left'), userId: id }),
]);

export const banSchema = z.object({ userId: id, name: z.string(), bannedBy: id, bannedAt: time });

export const presenceInfoSchema = z.object({ userId: id, online: z.boolean(), lastSeen: time.nullable() });

const empty = z.object({}).strict();
const page = z.object({ messages: z.array(messageSchema), more: z.boolean() });
/** A list page: `more` when another follows, whose cursor is `next` (null when none). */
const listPage = <K extends string, S extends z.ZodType>(key: K, item: S) =>
  z.object({ [key]: z.array(item), more: z.boolean(), next: z.string().nullable() } as { [P in K]: z.ZodArray<S> } & { more: z.ZodBoolean; next: z.ZodNullable<z.ZodString> });

/**
 * The `result` of each request type. Partial on purpose: a request type added without its schema still builds, and
 * the OpenAPI test names the route whose response is undocumented.
 */
export const resultSchemas = {
  'ping': empty,
  'conversation.list': listPage('conversations', myConversationSchema),
  'conversation.get': z.object({ conversation: myConversationSchema }),
  'conversation.create': z.object({ conversation: myConversationSchema }),
  'direct.open': z.object({ conversation: myConversationSchema }),
  'conversation.search': z.object({ conversations: z.array(conversationSchema), more: z.boolean().describe('other groups match too: narrow the query') }),
  'conversation.join': z.object({ conversation: myConversationSchema }),
  'conversation.leave': empty,
  'conversation.rename': z.object({ conversation: conversationSchema }),
  'conversation.delete': empty,
  'member.list': listPage('members', memberSchema),
  'member.kick': empty,
  'member.role': z.object({ member: memberSchema }),
  'member.ban': empty,
  'member.unban': empty,
  'member.bans': listPage('bans', banSchema),
  'user.find': z.object({ user: userInfoSchema }),
  'invite.create': z.object({ invite: inviteSchema }),
  'invite.list': listPage('invites', inviteSchema),
  'invite.revoke': z.object({ invite: inviteSchema }),
  'invite.accept': z.object({ conversation: myConversationSchema }),
  'message.send': sendReceiptSchema,
  'message.edit': z.object({ message: messageSchema }),
  'message.delete': z.object({ message: messageSchema }),
  'history.after': page,
  'history.before': page,
  'sync': z.object({
    conversations: z.array(z.object({
      conversationId: id,
      lastSeq: z.number().int().min(0),
      messages: z.array(messageSchema).optional().describe('absent when there are none'),
      more: z.boolean().optional().describe('present (true) when more messages follow'),
      rev: z.number().int().min(0),
      conversation: myConversationSchema.optional(),
      changes: z.array(changeSchema).optional(),
      changesMore: z.boolean().optional(),
    })),
    unknown: z.array(myConversationSchema),
    unknownMore: z.boolean(),
    removed: z.array(id),
  }),
  'read.mark': z.object({ conversationId: id, readSeq: z.number().int().min(0), unread: z.number().int().min(0) }),
  'typing': empty,
  'presence.get': z.object({ users: z.array(presenceInfoSchema) }),
  'presence.subscribe': z.object({ users: z.array(presenceInfoSchema), subscribed: z.number().int().min(0) }),
  'presence.unsubscribe': z.object({ subscribed: z.number().int().min(0) }),
} satisfies { [K in keyof ResultMap]?: z.ZodType };

// ---- compile-time: each schema's output and its TypeScript type are assignable both ways.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Check<_ extends true> = never;
type SchemaDrift = {
  [K in keyof typeof resultSchemas & keyof ResultMap]: Same<z.output<(typeof resultSchemas)[K]>, ResultMap[K]>;
};
export type _ResultSchemasMatch = Check<SchemaDrift[keyof SchemaDrift]>;
export type _TypesMatch = Check<
  Same<z.output<typeof messageSchema>, T.Message> | Same<z.output<typeof myConversationSchema>, T.MyConversation> |
  Same<z.output<typeof memberSchema>, T.Member> | Same<z.output<typeof inviteSchema>, T.Invite> |
  Same<z.output<typeof presenceInfoSchema>, T.PresenceInfo> | Same<z.output<typeof conversationSchema>, T.Conversation>
>;
