import { z } from 'zod';
import { credentialsSchema, loginSchema } from '../auth/accounts.js';
import { errorCatalogue, errorCodes, type ErrorCode } from '../protocol/errors.js';
import { requestSchemas, type RequestType } from '../protocol/requests.js';
import {
  conversationSchema, inviteSchema, memberSchema, messageSchema, myConversationSchema, presenceInfoSchema, resultSchemas, userInfoSchema,
} from '../protocol/result-schemas.js';
import { adminRoutes } from './admin-routes.js';
import { bodyFields, operationRoutes } from './routes.js';

type JsonSchema = Record<string, unknown> & { properties?: Record<string, unknown>; required?: string[] };

interface ExtraRoute {
  method: string;
  url: string;
  summary: string;
  auth: 'none' | 'user' | 'admin';
  body?: z.ZodType;
  status?: number;
  /** The success body; `text` for a non-JSON body. */
  response: z.ZodType | 'text';
}

/** What register and log-in return (src/auth/accounts.ts `Session`). */
const sessionSchema = z.object({ user: userInfoSchema, token: z.string().describe('a JWT for the WebSocket and REST'), expiresAt: z.number().int().describe('milliseconds since the epoch') });

/** A user as the admin API shows it (src/domain/admin.ts `PublicUser`: no password hash). */
const publicUserSchema = z.object({
  id: z.string(), name: z.string(), isAdmin: z.boolean(), banned: z.boolean(), createdAt: z.number().int(), lastSeen: z.number().int().nullable(),
  origin: z.enum(['builtin', 'product']).describe('builtin: an account of this server; product: a user of the integrating product'),
  metadata: z.unknown().nullable().describe('product users: the JSON given to the admin upsert, or null'),
});

/** Routes that are neither protocol operations nor admin routes: accounts, health, metrics, this document. */
const extraRoutes: ExtraRoute[] = [
  {
    method: 'POST', url: '/api/v1/accounts', auth: 'none', body: credentialsSchema, status: 201, response: sessionSchema,
    summary: 'Register a built-in account; returns {user, token, expiresAt}. Username rules, NFKC + case-folded uniqueness, confusables: 400 INVALID_REQUEST, 409 ACCOUNT_EXISTS (details.reason taken | confusable); password policy: 400 WEAK_PASSWORD (details: reason, warning, suggestions). See docs/protocol.md, Accounts.',
  },
  { method: 'POST', url: '/api/v1/sessions', summary: 'Log in (the username is matched after NFKC + case folding); returns {user, token, expiresAt}; 401 INVALID_CREDENTIALS, 429 RATE_LIMITED (login throttling)', auth: 'none', body: loginSchema, response: sessionSchema },
  { method: 'DELETE', url: '/api/v1/sessions/current', summary: 'Log out: revoke this token (a token of the server\'s own) and close its connections (4500)', auth: 'user', response: z.object({}) },
  { method: 'DELETE', url: '/api/v1/sessions', summary: 'Log out everywhere: revoke every token of the server\'s own you hold and close all your connections (4500)', auth: 'user', response: z.object({}) },
  { method: 'GET', url: '/api/v1/me', summary: 'The authenticated user', auth: 'user', response: z.object({ user: userInfoSchema }) },
  { method: 'GET', url: '/healthz', summary: 'Liveness: the process serves HTTP', auth: 'none', response: z.object({ status: z.literal('ok') }) },
  {
    method: 'GET', url: '/readyz', summary: 'Readiness: the store commits a write and the bus answers (503 UNAVAILABLE with the reason otherwise)', auth: 'none',
    response: z.object({ status: z.literal('ready') }),
  },
  { method: 'GET', url: '/metrics', summary: 'Prometheus metrics (text exposition format)', auth: 'none', response: 'text' },
  { method: 'GET', url: '/openapi.json', summary: 'This document', auth: 'none', response: z.record(z.string(), z.unknown()) },
];

/** The success bodies of the admin routes (src/http/admin-routes.ts), by `METHOD url`. */
const adminResponses: Record<string, z.ZodType> = {
  'GET /api/v1/admin/users': z.object({ users: z.array(publicUserSchema), more: z.boolean(), next: z.string().nullable() }),
  'POST /api/v1/admin/users': z.object({ user: z.object({ id: z.string(), name: z.string(), isAdmin: z.boolean() }) }),
  'PUT /api/v1/admin/users/:userId': z.object({ user: publicUserSchema, created: z.boolean() }),
  'POST /api/v1/admin/users/:userId/logout': z.object({}),
  'POST /api/v1/admin/users/:userId/ban': z.object({ user: publicUserSchema }),
  'POST /api/v1/admin/users/:userId/unban': z.object({ user: publicUserSchema }),
  'GET /api/v1/admin/conversations': z.object({ conversations: z.array(conversationSchema), more: z.boolean(), next: z.string().nullable() }),
  'POST /api/v1/admin/groups': z.object({ conversation: myConversationSchema }),
  'DELETE /api/v1/admin/conversations/:conversationId': resultSchemas['conversation.delete'],
};

/** The error body of every route: `{error: {code, message, temporary, details?, retryAfterMs?}}` (ErrorBody of @parley/protocol). */
const errorBodySchema = (codes: readonly ErrorCode[]) => z.object({
  error: z.object({
    code: z.enum(codes as [ErrorCode, ...ErrorCode[]]).describe('stable: branch on this, never on message'),
    message: z.string(),
    temporary: z.boolean().describe('true: the same request may succeed if retried later'),
    details: z.unknown().optional().describe('INVALID_REQUEST: [{path, message}], the fields that are wrong; WEAK_PASSWORD and ACCOUNT_EXISTS: {reason, ...}'),
    retryAfterMs: z.number().int().min(1).optional().describe('RATE_LIMITED: milliseconds until a retry can succeed (also sent as Retry-After, in seconds)'),
  }),
});

/** Shapes named in components/schemas, referred to by every response that contains them. */
const namedShapes: Array<[string, z.ZodType]> = [
  ['Message', messageSchema], ['Conversation', conversationSchema], ['MyConversation', myConversationSchema], ['Member', memberSchema],
  ['Invite', inviteSchema], ['PresenceInfo', presenceInfoSchema], ['UserInfo', userInfoSchema], ['Session', sessionSchema],
  ['PublicUser', publicUserSchema], ['Error', errorBodySchema(errorCodes)], ['Page', resultSchemas['history.after']],
  ['Empty', resultSchemas['conversation.leave']],
];

const pascal = (text: string): string => text.replace(/(^|[^A-Za-z0-9]+)([A-Za-z0-9])/g, (_m, _sep, c: string) => c.toUpperCase());
const componentRef = (id: string): string => `#/components/schemas/${id}`;

/**
 * The zod schemas of the document's bodies, each under one component name; converted all at once, so a shape used
 * in many responses is one component referred to by `$ref`.
 */
class SchemaComponents {
  private readonly registry = z.registry<{ id: string }>();
  private readonly ids = new Map<z.ZodType, string>();

  constructor() {
    for (const [id, schema] of namedShapes) this.name(schema, id);
  }

  /** A `$ref` to the schema, naming it `id` unless it already has a name. */
  ref(schema: z.ZodType, id: string): { $ref: string } {
    return { $ref: componentRef(this.name(schema, id)) };
  }

  private name(schema: z.ZodType, id: string): string {
    const known = this.ids.get(schema);
    if (known) return known;
    this.registry.add(schema, { id });
    this.ids.set(schema, id);
    return id;
  }

  /** components/schemas. Response objects stay open (no additionalProperties: false): servers may add fields. */
  toJson(): Record<string, unknown> {
    const { schemas } = z.toJSONSchema(this.registry, { uri: componentRef, io: 'output', unrepresentable: 'any' });
    return Object.fromEntries(Object.entries(schemas).map(([id, schema]) => [id, openObjects(schema)]));
  }
}

function openObjects(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(openObjects);
  if (typeof schema !== 'object' || schema === null) return schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === '$schema' || key === '$id' || (key === 'additionalProperties' && value === false)) continue;
    out[key] = openObjects(value);
  }
  return out;
}

const openApiPath = (url: string): string => url.replace(/:([A-Za-z]+)/g, '{$1}');
const pathParams = (url: string): string[] => [...url.matchAll(/\{([A-Za-z]+)\}/g)].map((m) => m[1]);

/** The OpenAPI 3.1 document of the REST API, generated from the same route table and schemas the server uses. */
export function buildOpenApi(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const components = new SchemaComponents();
  const add = (url: string, method: string, op: Record<string, unknown>): void => {
    (paths[url] ??= {})[method.toLowerCase()] = op;
  };
  for (const route of operationRoutes) {
    const url = openApiPath(route.url);
    const params = pathParams(url);
    const types: RequestType[] = typeof route.operation === 'string' ? [route.operation] : ['history.after', 'history.before'];
    const op: Record<string, unknown> = {
      summary: route.summary,
      operationId: `${route.method.toLowerCase()}${url.replace(/[^A-Za-z]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
      description: `Serves the protocol operation(s) ${types.map((t) => `\`${t}\``).join(', ')} (docs/protocol.md); the body is its \`result\`.`,
      security: [{ bearer: [] }],
      parameters: [
        ...params.map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } })),
        ...(route.queryParams ?? []).map((name) => ({ name, in: 'query', required: false, schema: { type: 'string' } })),
      ],
      responses: responses(route.successStatus ?? 200, operationResponse(components, types), route.replayStatus),
    };
    const fields = bodyFields(route);
    if (fields.length > 0) {
      const body = bodySchema(z.toJSONSchema(requestSchemas[route.operation as RequestType], { io: 'input', unrepresentable: 'any' }) as JsonSchema, fields);
      op.requestBody = requestBody(body);
    }
    add(url, route.method, op);
  }
  for (const route of adminRoutes) {
    const url = openApiPath(route.url);
    const query = route.query ? Object.keys((z.toJSONSchema(route.query, { io: 'input' }) as JsonSchema).properties ?? {}) : [];
    const op: Record<string, unknown> = {
      summary: route.summary,
      security: [{ bearer: [] }],
      parameters: [
        ...pathParams(url).map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } })),
        ...query.map((name) => ({ name, in: 'query', required: false, schema: { type: 'string' } })),
      ],
      responses: responses(route.successStatus ?? 200, adminResponse(components, route.method, route.url)),
    };
    if (route.body) op.requestBody = requestBody(z.toJSONSchema(route.body, { io: 'input' }) as JsonSchema);
    add(url, route.method, op);
  }
  for (const route of extraRoutes) {
    const op: Record<string, unknown> = {
      summary: route.summary,
      parameters: pathParams(route.url).map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } })),
      responses: responses(route.status ?? 200, route.response === 'text'
        ? { 'text/plain': { schema: { type: 'string' } } }
        : json(components.ref(route.response, `${pascal(route.method.toLowerCase())}${pascal(route.url)}Result`))),
    };
    if (route.auth !== 'none') op.security = [{ bearer: [] }];
    if (route.body) op.requestBody = requestBody(z.toJSONSchema(route.body, { io: 'input' }) as JsonSchema);
    add(route.url, route.method, op);
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Parley REST API', version: '1', description: 'Accounts, conversations, invites, history, admin, health and metrics. Real-time traffic uses the WebSocket protocol (docs/protocol.md).' },
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      schemas: components.toJson(),
      responses: Object.fromEntries(errorStatuses().map(([status, codes]) => [`Error${status}`, {
        description: `Error: ${codes.join(', ')}`,
        content: { 'application/json': { schema: { $ref: componentRef('Error'), description: `code is one of ${codes.join(', ')}` } } },
      }])),
    },
  };
}

/** Each HTTP status of the error catalogue with its codes, in status order. */
function errorStatuses(): Array<[number, ErrorCode[]]> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of errorCodes) {
    const { status } = errorCatalogue[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return [...byStatus.entries()].sort((a, b) => a[0] - b[0]);
}

type Content = Record<string, { schema: unknown }>;
const json = (schema: unknown): Content => ({ 'application/json': { schema } });

/** The success content of a route serving protocol operations: their result schemas (src/protocol/result-schemas.ts). */
function operationResponse(components: SchemaComponents, types: RequestType[]): Content | null {
  const refs = types.flatMap((type) => {
    const schema = (resultSchemas as Partial<Record<RequestType, z.ZodType>>)[type];
    return schema ? [components.ref(schema, `${pascal(type)}Result`)] : [];
  });
  if (refs.length < types.length) return null;
  const unique = [...new Map(refs.map((r) => [r.$ref, r])).values()];
  return json(unique.length === 1 ? unique[0] : { oneOf: unique });
}

function adminResponse(components: SchemaComponents, method: string, url: string): Content | null {
  const schema = adminResponses[`${method} ${url}`];
  return schema ? json(components.ref(schema, `Admin${pascal(method.toLowerCase())}${pascal(url.replace('/api/v1/admin', ''))}Result`)) : null;
}

/**
 * A route's responses: its success body (a bare object when no schema is known; test/e2e/operations.test.ts fails
 * on that) and every catalogued error status.
 */
function responses(status: number, success: Content | null, replayStatus?: number): Record<string, unknown> {
  const errors = Object.fromEntries(errorStatuses().map(([s]) => [String(s), { $ref: `#/components/responses/Error${s}` }]));
  const content = success ?? json({ type: 'object', description: 'not documented' });
  return {
    [String(status)]: { description: 'Success', content },
    ...(replayStatus !== undefined && replayStatus !== status
      ? { [String(replayStatus)]: { description: 'A repeat of an earlier request (the same idempotency key): the original, with `duplicate: true`', content } }
      : {}),
    ...errors,
  };
}

/** A JSON request body; required only when some field is (an invite's body may be left out: `{}` is assumed). */
function requestBody(schema: JsonSchema): Record<string, unknown> {
  return { required: (schema.required ?? []).length > 0, content: { 'application/json': { schema } } };
}

/** The body part of an operation schema: its properties that the route takes from the body (bodyFields). */
function bodySchema(schema: JsonSchema, fields: readonly string[]): JsonSchema {
  const properties = Object.fromEntries(Object.entries(schema.properties ?? {}).filter(([name]) => fields.includes(name)));
  const { $schema: _ignored, ...rest } = schema;
  return { ...rest, properties, required: (schema.required ?? []).filter((n) => fields.includes(n)) };
}
