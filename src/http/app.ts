import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { credentialsSchema, type Accounts } from '../auth/accounts.js';
import { bearerToken, type Authenticator, type Identity } from '../auth/authenticator.js';
import type { Admin } from '../domain/admin.js';
import { operations, type Services } from '../domain/operations.js';
import { ParleyError, errorCatalogue, isParleyError, type ErrorBody } from '../protocol/errors.js';
import { requestSchemas } from '../protocol/requests.js';
import { zodDetails } from '../protocol/validation.js';
import type { Metrics } from './metrics.js';
import { adminRoutes } from './admin-routes.js';
import { buildOpenApi } from './openapi.js';
import { compact, operationRoutes, type RouteInput } from './routes.js';

export interface HttpDeps {
  services: Services;
  accounts: Accounts;
  admin: Admin;
  authenticator: Authenticator;
  metrics: Metrics;
  logger: Logger;
  adminToken: string | undefined;
  /** Readiness: resolves when the store and bus answer. */
  ready: () => Promise<void>;
  bodyLimit: number;
}


declare module 'fastify' {
  interface FastifyRequest {
    identity?: Identity;
  }
}

/**
 * The REST API (/api/v1), health (/healthz, /readyz), metrics (/metrics) and the OpenAPI document (/openapi.json).
 * Handlers are thin: decode → authenticate → call the same domain operation the WebSocket uses → encode.
 * Errors always have the body `{"error": {code, message, temporary}}` with the catalogue's HTTP status.
 */
export function buildHttpApp(deps: HttpDeps): FastifyInstance {
  // maxParamLength: fastify's default (100) would answer 414 to a valid 101–128-character id in a path; longer ones
  // reach the request schema and get INVALID_REQUEST like on the WebSocket.
  const app = Fastify({ logger: false, bodyLimit: deps.bodyLimit, return503OnClosing: true, maxParamLength: 512 });

  app.setErrorHandler((err, _req, reply) => sendError(reply, translate(err, deps.logger)));
  app.setNotFoundHandler((_req, reply) => sendError(reply, new ParleyError('NOT_FOUND', 'no such route').toBody(), 404));

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    try {
      await deps.ready();
      return { status: 'ready' };
    } catch (err) {
      return sendError(reply, new ParleyError('UNAVAILABLE', `not ready: ${(err as Error).message}`).toBody());
    }
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });
  app.get('/openapi.json', async () => buildOpenApi());

  app.post('/api/v1/accounts', async (req, reply) => {
    reply.code(201);
    return deps.accounts.register(parse(credentialsSchema, req.body));
  });
  app.post('/api/v1/sessions', async (req) => deps.accounts.login(parse(credentialsSchema, req.body)));
  app.get('/api/v1/me', { preHandler: authenticate(deps) }, async (req) => ({ user: { id: req.identity!.userId, name: req.identity!.name } }));

  for (const route of operationRoutes) {
    app.route({
      method: route.method,
      url: route.url,
      preHandler: authenticate(deps),
      handler: async (req, reply) => {
        const input: RouteInput = {
          params: req.params as Record<string, string>,
          query: req.query as Record<string, string | undefined>,
          body: (req.body ?? {}) as Record<string, unknown>,
        };
        if (typeof input.body !== 'object' || Array.isArray(input.body)) throw new ParleyError('INVALID_REQUEST', 'the body must be a JSON object');
        const type = typeof route.operation === 'function' ? route.operation(input) : route.operation;
        const data = parse(requestSchemas[type], compact(route.input(input)));
        deps.metrics.requests.inc({ type });
        const run = operations[type] as (s: Services, u: string, d: unknown) => Promise<unknown>;
        const result = await run(deps.services, req.identity!.userId, data);
        if (route.successStatus) reply.code(route.successStatus);
        return result;
      },
    });
  }

  registerAdminRoutes(app, deps);
  return app;
}

function registerAdminRoutes(app: FastifyInstance, deps: HttpDeps): void {
  const preHandler = authenticateAdmin(deps);
  for (const route of adminRoutes) {
    app.route({
      method: route.method,
      url: route.url,
      preHandler,
      handler: async (req, reply) => {
        const result = await route.run(deps, {
          params: (route.params ? parse(route.params, req.params) : req.params) as Record<string, string>,
          query: route.query ? parse(route.query, req.query) : {},
          body: route.body ? parse(route.body, req.body) : {},
        });
        if (route.successStatus) reply.code(route.successStatus);
        return result;
      },
    });
  }
}

function authenticate(deps: HttpDeps) {
  return async (req: FastifyRequest): Promise<void> => {
    req.identity = await deps.authenticator.authenticate(bearerToken(req.headers.authorization));
  };
}

/** The admin API accepts the configured admin token, or the token of a user with the admin flag. */
function authenticateAdmin(deps: HttpDeps) {
  const expected = deps.adminToken ? Buffer.from(deps.adminToken) : null;
  return async (req: FastifyRequest): Promise<void> => {
    const token = bearerToken(req.headers.authorization);
    if (token && expected && safeEqual(Buffer.from(token), expected)) return;
    const identity = await deps.authenticator.authenticate(token);
    if (!identity.isAdmin) throw new ParleyError('FORBIDDEN', 'the admin API needs the admin token or an admin account');
    req.identity = identity;
  };
}

function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function parse<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value ?? {});
  if (!result.success) throw new ParleyError('INVALID_REQUEST', 'the request does not match its schema', zodDetails(result.error));
  return result.data;
}

/** Fastify's own errors (bad JSON, body too large) mapped onto the catalogue; anything unknown is INTERNAL. */
function translate(err: unknown, logger: Logger): ErrorBody {
  if (isParleyError(err)) return err.toBody();
  const fastifyCode = (err as { code?: string }).code;
  if (fastifyCode === 'FST_ERR_CTP_INVALID_JSON_BODY' || fastifyCode === 'FST_ERR_CTP_EMPTY_JSON_BODY' || (err as { statusCode?: number }).statusCode === 400) {
    return new ParleyError('BAD_FRAME', 'the body is not valid JSON').toBody();
  }
  if (fastifyCode === 'FST_ERR_CTP_BODY_TOO_LARGE') return new ParleyError('MESSAGE_TOO_LARGE', 'the body is too large').toBody();
  if (fastifyCode === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new ParleyError('INVALID_REQUEST', 'send application/json').toBody();
  logger.error({ err }, 'http request failed');
  return { code: 'INTERNAL', message: errorCatalogue.INTERNAL.message, temporary: true };
}

function sendError(reply: FastifyReply, body: ErrorBody, status = errorCatalogue[body.code].status): FastifyReply {
  return reply.code(status).send({ error: body });
}

