import { requestSchemas, type RequestType } from '../protocol/requests.js';

/** What a REST route reads its input from: path parameters, the query string and the JSON body, merged. */
export interface RouteInput {
  params: Record<string, string>;
  query: Record<string, string | undefined>;
  body: Record<string, unknown>;
}

/**
 * A REST route that serves one protocol operation: the same schema validates its input and the same domain call
 * answers it, so the WebSocket and REST APIs cannot drift apart.
 */
export interface OperationRoute {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  summary: string;
  /** The operation, or a chooser when the query decides (history after / before). */
  operation: RequestType | ((input: RouteInput) => RequestType);
  /** Build the operation's `data` from the request. Query values arrive as strings and are converted here. */
  input: (input: RouteInput) => Record<string, unknown>;
  /** Query parameters this route reads, for the OpenAPI document. */
  queryParams?: string[];
  successStatus?: number;
  /** Status of a repeat (the same idempotency key: the result says `duplicate`), answered with the original. */
  replayStatus?: number;
  /** Fields of the operation's data this route never takes from the body (an alternative its path already chose). */
  bodyOmits?: readonly string[];
}

const int = (value: string | undefined): number | undefined => {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : (value as unknown as number); // the schema then reports the bad value
};
const conversation = (i: RouteInput) => ({ conversationId: i.params.conversationId });

export const operationRoutes: OperationRoute[] = [
  {
    method: 'GET', url: '/api/v1/conversations', summary: 'List my conversations with lastSeq, readSeq and unread counts, a page (`after`: the previous page\'s `next`)',
    operation: 'conversation.list', input: (i) => ({ after: i.query.after, limit: int(i.query.limit) }), queryParams: ['after', 'limit'],
  },
  { method: 'POST', url: '/api/v1/conversations', summary: 'Create a group (I become its owner)', operation: 'conversation.create', input: (i) => i.body, successStatus: 201 },
  {
    method: 'GET', url: '/api/v1/conversations/search', summary: 'Search public groups by name', operation: 'conversation.search',
    input: (i) => ({ query: i.query.query ?? '', limit: int(i.query.limit) }), queryParams: ['query', 'limit'],
  },
  { method: 'POST', url: '/api/v1/direct', summary: 'Open (or get) the direct conversation with a user', operation: 'direct.open', input: (i) => i.body },
  { method: 'GET', url: '/api/v1/conversations/:conversationId', summary: 'One of my conversations', operation: 'conversation.get', input: conversation },
  { method: 'PATCH', url: '/api/v1/conversations/:conversationId', summary: 'Rename a group (owner or admin)', operation: 'conversation.rename', input: (i) => ({ ...i.body, ...conversation(i) }) },
  { method: 'DELETE', url: '/api/v1/conversations/:conversationId', summary: 'Delete a group (owner)', operation: 'conversation.delete', input: conversation },
  { method: 'POST', url: '/api/v1/conversations/:conversationId/join', summary: 'Join a public group', operation: 'conversation.join', input: conversation },
  { method: 'POST', url: '/api/v1/conversations/:conversationId/leave', summary: 'Leave a group', operation: 'conversation.leave', input: conversation },
  {
    method: 'GET', url: '/api/v1/conversations/:conversationId/members', summary: 'Members with their roles, a page in join order (`after`: the previous page\'s `next`)',
    operation: 'member.list', input: (i) => ({ ...conversation(i), after: i.query.after, limit: int(i.query.limit) }), queryParams: ['after', 'limit'],
  },
  {
    method: 'DELETE', url: '/api/v1/conversations/:conversationId/members/:userId', summary: 'Kick a member (owner, or admin for members)',
    operation: 'member.kick', input: (i) => ({ ...conversation(i), userId: i.params.userId }),
  },
  {
    method: 'PUT', url: '/api/v1/conversations/:conversationId/members/:userId/role', summary: "Set a member's role (owner)",
    operation: 'member.role', input: (i) => ({ ...i.body, ...conversation(i), userId: i.params.userId }),
  },
  {
    method: 'PUT', url: '/api/v1/conversations/:conversationId/bans/:userId', summary: 'Ban a user from a group, removing them if a member (owner, or admin for members)',
    operation: 'member.ban', input: (i) => ({ ...conversation(i), userId: i.params.userId }),
  },
  {
    method: 'DELETE', url: '/api/v1/conversations/:conversationId/bans/:userId', summary: 'Lift a ban (owner or admin)',
    operation: 'member.unban', input: (i) => ({ ...conversation(i), userId: i.params.userId }),
  },
  {
    method: 'GET', url: '/api/v1/conversations/:conversationId/bans', summary: 'List the bans of a group (owner or admin), a page in ban order (`after`: the previous page\'s `next`)',
    operation: 'member.bans', input: (i) => ({ ...conversation(i), after: i.query.after, limit: int(i.query.limit) }), queryParams: ['after', 'limit'],
  },
  {
    method: 'GET', url: '/api/v1/users/by-name/:username', summary: 'The user with exactly this username: {user: {id, name}} (no listing)',
    operation: 'user.find', input: (i) => ({ username: i.params.username }),
  },
  { method: 'POST', url: '/api/v1/conversations/:conversationId/invites', summary: 'Create an invite link token (owner or admin)', operation: 'invite.create', input: (i) => ({ ...i.body, ...conversation(i) }), successStatus: 201 },
  {
    method: 'GET', url: '/api/v1/conversations/:conversationId/invites', summary: 'List invites (owner or admin), a page in creation order (`after`: the previous page\'s `next`)',
    operation: 'invite.list', input: (i) => ({ ...conversation(i), after: i.query.after, limit: int(i.query.limit) }), queryParams: ['after', 'limit'],
  },
  { method: 'DELETE', url: '/api/v1/invites/:token', summary: 'Revoke an invite (owner or admin)', operation: 'invite.revoke', input: (i) => ({ token: i.params.token }) },
  { method: 'POST', url: '/api/v1/invites/:token/accept', summary: 'Join the group of an invite', operation: 'invite.accept', input: (i) => ({ token: i.params.token }) },
  {
    method: 'GET', url: '/api/v1/conversations/:conversationId/messages',
    summary: 'History: with `after`, messages after that seq (oldest first); otherwise a page backwards from `before` (a seq), `beforeTime` (ms) or the newest',
    operation: (i) => (i.query.after !== undefined ? 'history.after' : 'history.before'),
    input: (i) => i.query.after !== undefined
      ? { ...conversation(i), afterSeq: int(i.query.after), limit: int(i.query.limit) }
      : { ...conversation(i), beforeSeq: int(i.query.before), beforeTime: int(i.query.beforeTime), limit: int(i.query.limit) },
    queryParams: ['after', 'before', 'beforeTime', 'limit'],
  },
  {
    method: 'POST', url: '/api/v1/conversations/:conversationId/messages', summary: 'Send a message (body: key, text, meta); counts against my message rate. 201 when stored, 200 with the original (duplicate: true) when the key was seen before',
    operation: 'message.send', input: (i) => ({ ...i.body, ...conversation(i) }), successStatus: 201, replayStatus: 200,
    // The path names the conversation: `to` (the other way to name it) is refused here, so it is no body field.
    bodyOmits: ['to'],
  },
  {
    method: 'PATCH', url: '/api/v1/conversations/:conversationId/messages/:seq', summary: 'Edit my message (body: text, meta); counts against my message rate',
    operation: 'message.edit', input: (i) => ({ ...i.body, ...conversation(i), seq: int(i.params.seq) }),
  },
  {
    method: 'DELETE', url: '/api/v1/conversations/:conversationId/messages/:seq', summary: 'Delete my message; counts against my message rate',
    operation: 'message.delete', input: (i) => ({ ...conversation(i), seq: int(i.params.seq) }),
  },
  { method: 'POST', url: '/api/v1/conversations/:conversationId/read', summary: 'Move my read cursor forward', operation: 'read.mark', input: (i) => ({ ...i.body, ...conversation(i) }) },
  {
    method: 'GET', url: '/api/v1/presence', summary: 'Presence of users I share a conversation with (userIds comma-separated)', operation: 'presence.get',
    input: (i) => ({ userIds: (i.query.userIds ?? '').split(',').filter(Boolean) }), queryParams: ['userIds'],
  },
];

/** The names of a route's path parameters (`:conversationId` -> `conversationId`), in order. */
export function routePathParams(route: OperationRoute): string[] {
  return [...route.url.matchAll(/:([A-Za-z]+)/g)].map((m) => m[1]!);
}

const bodyFieldsCache = new WeakMap<OperationRoute, readonly string[]>();

/**
 * The fields a route takes from its JSON body, as docs/openapi.json lists them: for POST, PUT and PATCH routes of one
 * operation, the operation's fields less those its path gives and its `bodyOmits`; none for any other route. The
 * server refuses a body field its path gives or the route omits, and any body on a route that takes none.
 */
export function bodyFields(route: OperationRoute): readonly string[] {
  let fields = bodyFieldsCache.get(route);
  if (!fields) {
    const takesBody = ['POST', 'PUT', 'PATCH'].includes(route.method) && typeof route.operation === 'string';
    const operationFields = takesBody ? Object.keys(requestSchemas[route.operation as RequestType].shape) : [];
    const notFromBody = [...routePathParams(route), ...(route.bodyOmits ?? [])];
    fields = operationFields.filter((name) => !notFromBody.includes(name));
    bodyFieldsCache.set(route, fields);
  }
  return fields;
}

/** Drop keys whose value is undefined, so optional query parameters are simply absent. */
export function compact(data: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(data).filter(([, v]) => v !== undefined));
}
