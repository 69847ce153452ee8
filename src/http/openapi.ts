import { z } from 'zod';
import { credentialsSchema, loginSchema } from '../auth/accounts.js';
import { errorCodes } from '../protocol/errors.js';
import { requestSchemas } from '../protocol/requests.js';
import { adminRoutes } from './admin-routes.js';
import { operationRoutes } from './routes.js';

type JsonSchema = Record<string, unknown> & { properties?: Record<string, unknown>; required?: string[] };

interface ExtraRoute {
  method: string;
  url: string;
  summary: string;
  auth: 'none' | 'user' | 'admin';
  body?: z.ZodType;
  status?: number;
}

/** Routes that are neither protocol operations nor admin routes: accounts, health, metrics. */
const extraRoutes: ExtraRoute[] = [
  {
    method: 'POST', url: '/api/v1/accounts', auth: 'none', body: credentialsSchema, status: 201,
    summary: 'Register a built-in account; returns {user, token, expiresAt}. Username rules, NFKC + case-folded uniqueness, confusables: 400 INVALID_REQUEST, 409 ACCOUNT_EXISTS (details.reason taken | confusable); password policy: 400 WEAK_PASSWORD (details: reason, warning, suggestions). See docs/protocol.md, Accounts.',
  },
  { method: 'POST', url: '/api/v1/sessions', summary: 'Log in (the username is matched after NFKC + case folding); returns {user, token, expiresAt}; 401 INVALID_CREDENTIALS', auth: 'none', body: loginSchema },
  { method: 'DELETE', url: '/api/v1/sessions/current', summary: 'Log out: revoke this token (a token of the server\'s own) and close its connections (4500)', auth: 'user' },
  { method: 'DELETE', url: '/api/v1/sessions', summary: 'Log out everywhere: revoke every token of the server\'s own you hold and close all your connections (4500)', auth: 'user' },
  { method: 'GET', url: '/api/v1/me', summary: 'The authenticated user', auth: 'user' },
  { method: 'GET', url: '/healthz', summary: 'Liveness: the process serves HTTP', auth: 'none' },
  { method: 'GET', url: '/readyz', summary: 'Readiness: the store and bus answer (503 UNAVAILABLE otherwise)', auth: 'none' },
  { method: 'GET', url: '/metrics', summary: 'Prometheus metrics', auth: 'none' },
];

const openApiPath = (url: string): string => url.replace(/:([A-Za-z]+)/g, '{$1}');
const pathParams = (url: string): string[] => [...url.matchAll(/\{([A-Za-z]+)\}/g)].map((m) => m[1]);

/** The OpenAPI 3.1 document of the REST API, generated from the same route table and schemas the server uses. */
export function buildOpenApi(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const add = (url: string, method: string, op: Record<string, unknown>): void => {
    (paths[url] ??= {})[method.toLowerCase()] = op;
  };
  for (const route of operationRoutes) {
    const url = openApiPath(route.url);
    const params = pathParams(url);
    const types = typeof route.operation === 'string' ? [route.operation] : ['history.after', 'history.before'] as const;
    const op: Record<string, unknown> = {
      summary: route.summary,
      operationId: `${route.method.toLowerCase()}${url.replace(/[^A-Za-z]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
      description: `Serves the protocol operation(s) ${types.map((t) => `\`${t}\``).join(', ')}; see docs/protocol.md for the result shape.`,
      security: [{ bearer: [] }],
      parameters: [
        ...params.map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } })),
        ...(route.queryParams ?? []).map((name) => ({ name, in: 'query', required: false, schema: { type: 'string' } })),
      ],
      responses: responses(route.successStatus ?? 200),
    };
    if (['POST', 'PUT', 'PATCH'].includes(route.method) && typeof route.operation === 'string') {
      const body = bodySchema(z.toJSONSchema(requestSchemas[route.operation], { io: 'input', unrepresentable: 'any' }) as JsonSchema, params);
      if (body) op.requestBody = { required: true, content: { 'application/json': { schema: body } } };
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
      responses: responses(route.successStatus ?? 200),
    };
    if (route.body) op.requestBody = { required: true, content: { 'application/json': { schema: z.toJSONSchema(route.body, { io: 'input' }) } } };
    add(url, route.method, op);
  }
  for (const route of extraRoutes) {
    const op: Record<string, unknown> = {
      summary: route.summary,
      parameters: pathParams(route.url).map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } })),
      responses: responses(route.status ?? 200),
    };
    if (route.auth !== 'none') op.security = [{ bearer: [] }];
    if (route.body) op.requestBody = { required: true, content: { 'application/json': { schema: z.toJSONSchema(route.body, { io: 'input' }) } } };
    add(route.url, route.method, op);
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Parley REST API', version: '1', description: 'Accounts, conversations, invites, history, admin, health and metrics. Real-time traffic uses the WebSocket protocol (docs/protocol.md).' },
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message', 'temporary'],
              properties: {
                code: { type: 'string', enum: errorCodes }, message: { type: 'string' }, temporary: { type: 'boolean' }, details: {},
                retryAfterMs: { type: 'integer', minimum: 1, description: 'RATE_LIMITED: milliseconds until a retry can succeed (also sent as Retry-After, in seconds)' },
              },
            },
          },
        },
      },
    },
  };
}

function responses(status: number): Record<string, unknown> {
  const error = { description: 'A catalogued error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
  return { [String(status)]: { description: 'Success', content: { 'application/json': { schema: { type: 'object' } } } }, default: error };
}

/** The body part of an operation schema: its properties minus those taken from the path. */
function bodySchema(schema: JsonSchema, pathParamNames: string[]): JsonSchema | null {
  const properties = { ...(schema.properties ?? {}) };
  for (const name of pathParamNames) delete properties[name];
  if (Object.keys(properties).length === 0) return null;
  const { $schema: _ignored, ...rest } = schema;
  return { ...rest, properties, required: (schema.required ?? []).filter((n) => !pathParamNames.includes(n)) };
}
