import { z } from 'zod';
import { credentialsSchema, type Accounts } from '../auth/accounts.js';
import type { Admin } from '../domain/admin.js';
import { MAX_USER_METADATA_BYTES, productUserSchema } from '../domain/product-users.js';
import type { Sessions } from '../domain/sessions.js';
import { displayNameSchema } from '../protocol/display-names.js';
import { ID_PATTERN } from '../protocol/ids.js';

export interface AdminDeps {
  admin: Admin;
  accounts: Accounts;
  sessions: Sessions;
}

interface AdminInput {
  params: Record<string, string>;
  query: any;
  body: any;
}

/** One route of the admin API. The server registers these and the OpenAPI document describes them: one table. */
export interface AdminRoute {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  url: string;
  summary: string;
  query?: z.ZodType;
  body?: z.ZodType;
  /** Path parameters: ids are checked against the id alphabet like every id of a request. */
  params?: z.ZodType;
  successStatus?: number;
  run(deps: AdminDeps, input: AdminInput, reply: { status(code: number): void }): Promise<unknown>;
}

const id = z.string().min(1).max(128).regex(ID_PATTERN, 'an id is 1-128 of A-Z a-z 0-9 . _ ~ - : @ + | =');
const userParams = z.object({ userId: id }).strict();
const conversationParams = z.object({ conversationId: id }).strict();
const pageSchema = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100), after: z.string().optional() }).strict();
const newUserSchema = credentialsSchema.extend({ admin: z.boolean().default(false) });
const groupSchema = z.object({
  name: displayNameSchema,
  visibility: z.enum(['public', 'private']).default('public'),
  ownerId: id,
}).strict();

export const adminRoutes: AdminRoute[] = [
  {
    method: 'GET', url: '/api/v1/admin/users', summary: 'List users, by id (query: limit, after); a page ends early at the reply byte budget: while `more`, pass `next` as `after`', query: pageSchema,
    run: async ({ admin }, { query }) => admin.listUsers(query.limit, query.after),
  },
  {
    method: 'POST', url: '/api/v1/admin/users', summary: 'Create a built-in account (works even when self-registration is off)',
    body: newUserSchema, successStatus: 201,
    run: async ({ accounts }, { body }) => {
      const user = await accounts.create(body.username, body.password, body.admin);
      return { user: { id: user.id, name: user.name, isAdmin: user.isAdmin } };
    },
  },
  {
    method: 'PUT', url: '/api/v1/admin/users/:userId', params: userParams,
    summary: `Create (201) or update (200) a product user by id: {name, metadata?} (metadata: any JSON up to ${MAX_USER_METADATA_BYTES} bytes; null clears it). Refuses a built-in account's id (409 CONFLICT)`,
    body: productUserSchema,
    run: async ({ admin }, { params, body }, reply) => {
      const { user, created } = await admin.upsertProductUser(params.userId, body);
      if (created) reply.status(201);
      return { user, created };
    },
  },
  {
    method: 'POST', url: '/api/v1/admin/users/:userId/logout', params: userParams, summary: "Log a user out everywhere: revoke all the server's own tokens they hold and close their connections (4500)",
    run: async ({ sessions }, { params }) => {
      await sessions.logoutEverywhere(params.userId);
      return {};
    },
  },
  {
    method: 'POST', url: '/api/v1/admin/users/:userId/ban', summary: 'Ban a user and close their connections (4502)', params: userParams,
    run: async ({ admin }, { params }) => ({ user: await admin.setBanned(params.userId, true) }),
  },
  {
    method: 'POST', url: '/api/v1/admin/users/:userId/unban', summary: 'Lift a ban', params: userParams,
    run: async ({ admin }, { params }) => ({ user: await admin.setBanned(params.userId, false) }),
  },
  {
    method: 'GET', url: '/api/v1/admin/conversations', summary: 'List every conversation, by id (query: limit, after); a page ends early at the reply byte budget: while `more`, pass `next` as `after`', query: pageSchema,
    run: async ({ admin }, { query }) => admin.listConversations(query.limit, query.after),
  },
  {
    method: 'POST', url: '/api/v1/admin/groups', summary: 'Create a group owned by a given user', body: groupSchema, successStatus: 201,
    run: async ({ admin }, { body }) => ({ conversation: await admin.createGroup(body) }),
  },
  {
    method: 'DELETE', url: '/api/v1/admin/conversations/:conversationId', summary: 'Delete any conversation; its members are told', params: conversationParams,
    run: async ({ admin }, { params }) => {
      await admin.deleteConversation(params.conversationId);
      return {};
    },
  },
];
