import { timingSafeEqual } from 'node:crypto';
import cors from '@fastify/cors';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { credentialsSchema, loginSchema, type Accounts } from '../auth/accounts.js';
import { bearerToken, type Authenticator, type Identity } from '../auth/authenticator.js';
import type { Admin } from '../domain/admin.js';
import type { LoginThrottle } from '../auth/login-throttle.js';
import type { Sessions } from '../domain/sessions.js';
import { budgetSpent, operations, userBudgets, type Services, type UserBudget } from '../domain/operations.js';
import { ParleyError, errorCatalogue, isParleyError, rateLimited, type ErrorBody } from '../protocol/errors.js';
import { userBudgetKey, type Rate, type RateLimiter } from '../ratelimit/limiter.js';
import { ENVELOPE_DEPTH, nestsDeeperThan } from '../protocol/json-depth.js';
import { requestSchemas, type RequestType } from '../protocol/requests.js';
import { zodDetails } from '../protocol/validation.js';
import { findRefused, illFormedDetail } from '../protocol/well-formed.js';
import type { Metrics } from './metrics.js';
import { withinDeadline } from '../domain/deadline.js';
import type { Listener } from './listener.js';
import { adminRoutes } from './admin-routes.js';
import { buildOpenApi } from './openapi.js';
import { createOriginPolicy, type OriginPolicy } from './origin-policy.js';
import { QUERY_FAULT, isBlank, notJsonType, parseJsonBody, parseQuery, type ParsedQuery } from './request-input.js';
import { bodyFields, compact, operationRoutes, type OperationRoute, type RouteInput } from './routes.js';
import type { RunningRequests } from './running-requests.js';
import { registerWebClient } from './web-client.js';

export interface HttpDeps {
  /** The connection's deadline for a whole request (limits.requestTimeoutMs, ms): a reply not ready shortly before it is 504 TIMEOUT. */
  requestTimeoutMs: number;
  services: Services;
  accounts: Accounts;
  admin: Admin;
  sessions: Sessions;
  authenticator: Authenticator;
  metrics: Metrics;
  logger: Logger;
  adminToken: string | undefined;
  /**
   * Runs with a request's result before it is answered; a promise it returns delays the answer. The gateway's
   * `listenOnJoin`: a user who joins over REST has their WebSocket connections listening on the conversation first.
   */
  listenOnJoin?: (userId: string, type: RequestType, result: unknown) => Promise<void> | null;
  /**
   * The gateway's `restPublishWaitMs`: for a send, edit or delete while its readers are behind or the outgoing budget
   * is spent, the ms to wait (the request is answered RATE_LIMITED with that retryAfterMs); null to serve it.
   */
  publishWaitMs?: (type: RequestType, data: unknown) => number | null;
  /** Readiness: resolves when the store commits a small write and the bus answers; rejects with the reason. */
  ready: () => Promise<void>;
  /** Whether the server is stopping (its drain has begun): every request that arrives then is answered UNAVAILABLE. */
  stopping?: () => boolean;
  /** Counts the requests being served, which a shutdown waits for (main.ts); absent in tests that only inject. */
  running?: RunningRequests;
  bodyLimit: number;
  /** Deepest `meta`; a body may nest ENVELOPE_DEPTH more. */
  maxJsonDepth: number;
  /** Shared counters of the REST rates (per client address) and of the per-user message rate (shared with the gateway). */
  limiter: RateLimiter;
  rates: { rest: Rate; registration: Rate; user: Record<UserBudget, Rate> };
  loginThrottle: LoginThrottle;
  /** Which browser origins may call the API (server.cors.origins). @default none cross-origin */
  originPolicy?: OriginPolicy;
  /** The listening socket the app serves (its `adopt` is the app's serverFactory); absent in tests that only inject. */
  listener?: Listener;
  /** Proxies whose X-Forwarded-For is believed (config `server.trustedProxies`); `req.ip` is then the forwarded client. */
  trustedProxies?: string[];
  /** The built web client's folder, served at `/` (config `server.webClient`); absent or null: not served. */
  webClientDir?: string | null;
}


declare module 'fastify' {
  interface FastifyRequest {
    identity?: Identity;
  }
}

/**
 * The REST API (/api/v1), health (/healthz, /readyz), metrics (/metrics), the OpenAPI document (/openapi.json) and
 * the web client's files at `/` (web-client.ts).
 * Handlers are thin: decode → authenticate → call the same domain operation the WebSocket uses → encode.
 * Errors always have the body `{"error": {code, message, temporary}}` with the catalogue's HTTP status.
 */
export function buildHttpApp(deps: HttpDeps): FastifyInstance {
  const app = Fastify({
    // While closing, requests get our own 503 (below), in the documented error body rather than fastify's.
    logger: false, bodyLimit: deps.bodyLimit, return503OnClosing: false,
    trustProxy: deps.trustedProxies && deps.trustedProxies.length > 0 ? deps.trustedProxies : false,
    routerOptions: {
      // fastify's default (100) would answer 414 to a valid 101–128-character id in a path; longer ones reach the
      // request schema and get INVALID_REQUEST like on the WebSocket. Past 512, frameworkErrors answers INVALID_REQUEST.
      maxParamLength: 512,
      // Strict: a repeated parameter or bad percent-encoding is a fault the preValidation hook answers (request-input.ts).
      querystringParser: parseQuery,
    },
    // Errors fastify raises before any route (a path segment whose percent-encoding is not UTF-8, a parameter over
    // maxParamLength) get our error body and a catalogued code, never INTERNAL.
    frameworkErrors: (err, _req, reply) => sendError(reply, translate(err, deps.logger)),
    // Requests are validated with the protocol's zod schemas, never with route JSON schemas: without these, fastify
    // loads ajv and fast-json-stringify (~150 ms of CPU at every start) for nothing. A route given a schema fails loudly.
    schemaController: { compilersFactory: { buildValidator: refuseRouteSchemas, buildSerializer: refuseRouteSchemas } },
    ...(deps.listener ? { serverFactory: deps.listener.adopt } : {}),
  });

  // Only JSON bodies, decoded strictly. A body of any other content-type, or of none, is INVALID_REQUEST, unless it is
  // empty: a browser's fetch(url, {method: 'POST', body: ''}) says text/plain.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => {
    try {
      done(null, parseJsonBody(body as Buffer));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (req, body, done) => {
    if (req.is404 || isBlank(body as Buffer)) done(null, undefined);
    else done(notJsonType(), undefined);
  });

  registerCors(app, deps.originPolicy ?? createOriginPolicy([]));
  app.setErrorHandler((err, _req, reply) => sendError(reply, translate(err, deps.logger)));
  app.setNotFoundHandler((_req, reply) => sendError(reply, new ParleyError('NOT_FOUND', 'no such route').toBody(), 404));
  // A request its store does not answer (a frozen PostgreSQL answers nothing until the pool's own bound, past the
  // connection's deadline) gets 504 TIMEOUT, temporary, before that deadline would close the connection without a reply.
  const replyDeadlineMs = deps.requestTimeoutMs - Math.min(1000, deps.requestTimeoutMs / 4);
  // A server that is stopping (from the start of its drain, as the WebSocket refuses upgrades) answers what arrives
  // meanwhile UNAVAILABLE, temporary, and closes the connection, so clients retry elsewhere or after the restart;
  // requests already running finish.
  let closing = false;
  const stopping = (): boolean => closing || deps.stopping?.() === true;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onRequest', async (_req, reply) => {
    if (!stopping()) return;
    reply.header('connection', 'close');
    throw new ParleyError('UNAVAILABLE', 'the server is shutting down: retry, on another instance or once it is back');
  });
  app.addHook('onRequest', (_req, reply, done) => {
    const timer = setTimeout(() => {
      if (!reply.sent) sendError(reply, new ParleyError('TIMEOUT', `the request did not complete within ${Math.round(replyDeadlineMs)} ms (the store is not answering); retry later`).toBody());
    }, replyDeadlineMs);
    reply.raw.once('close', () => clearTimeout(timer));
    done();
  });
  app.addHook('preValidation', async (req) => {
    deps.running?.start(req);
    refuseBadQuery(req);
    refuseValues(req);
    refuseUnwantedBody(req);
  });
  app.addHook('onSend', (req, reply, payload, done) => {
    deps.running?.end(req);
    // A request that was running when the drain began: its connection closes after this reply, so say so.
    if (stopping()) reply.header('connection', 'close');
    done(null, payload);
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  const ready = sharedProbe(deps.ready, readinessProbeMs);
  app.get('/readyz', async (_req, reply) => {
    try {
      await withinDeadline(ready(), readinessTimeoutMs, () => new Error(`store or bus not answering within ${readinessTimeoutMs} ms`));
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

  // Every API request of a client address spends from its bucket, before any other work (parsing, password hashing).
  app.addHook('onRequest', async (req) => {
    if (req.url.startsWith('/api/')) await spend(deps.limiter, `rest:${req.ip}`, deps.rates.rest, 'too many requests from this address');
  });

  // Before any handler or schema (which recurse) sees a body.
  app.addHook('preValidation', async (req) => {
    const maxDepth = deps.maxJsonDepth + ENVELOPE_DEPTH;
    if (nestsDeeperThan(req.body, maxDepth)) {
      throw new ParleyError('INVALID_REQUEST', `the body nests deeper than ${maxDepth} levels`, [
        { path: '', message: `at most ${maxDepth} levels of arrays and objects` },
      ]);
    }
  });

  app.post('/api/v1/accounts', { config: TAKES_BODY }, async (req, reply) => {
    await spend(deps.limiter, `register:${req.ip}`, deps.rates.registration, 'too many registrations from this address');
    const credentials = parse(credentialsSchema, req.body);
    reply.code(201);
    return deps.accounts.register(credentials);
  });
  app.post('/api/v1/sessions', { config: TAKES_BODY }, async (req) => {
    const credentials = parse(loginSchema, req.body);
    return deps.loginThrottle.attempt(credentials.username, req.ip, () => deps.accounts.login(credentials));
  });
  app.delete('/api/v1/sessions/current', { preHandler: authenticate(deps) }, async (req) => {
    await deps.sessions.logout(req.identity!.userId, req.identity!.sessionId, req.identity!.expiresAt);
    return {};
  });
  app.delete('/api/v1/sessions', { preHandler: authenticate(deps) }, async (req) => {
    if (req.identity!.tokenGeneration === null) {
      throw new ParleyError('INVALID_REQUEST', 'a token of the integrating product has no sessions here to log out (the product revokes its own tokens)');
    }
    await deps.sessions.logoutEverywhere(req.identity!.userId);
    return {};
  });
  app.get('/api/v1/me', { preHandler: authenticate(deps) }, async (req) => ({ user: { id: req.identity!.userId, name: req.identity!.name } }));

  for (const route of operationRoutes) {
    app.route({
      method: route.method,
      url: route.url,
      config: bodyFields(route).length > 0 ? TAKES_BODY : {},
      preHandler: authenticate(deps),
      handler: async (req, reply) => {
        refuseUnknownQuery(req.query as ParsedQuery, route.queryParams ?? []);
        const input: RouteInput = {
          params: req.params as Record<string, string>,
          query: req.query as Record<string, string | undefined>,
          body: (req.body ?? {}) as Record<string, unknown>,
        };
        if (typeof input.body !== 'object' || Array.isArray(input.body)) throw notAnObject();
        refuseOmittedFields(route, input.body);
        const type = typeof route.operation === 'function' ? route.operation(input) : route.operation;
        const data = parse(requestSchemas[type], compact(route.input(input)));
        const waitMs = deps.publishWaitMs?.(type, data) ?? null;
        if (waitMs !== null) {
          // Only a member may hear "retry later": anyone else gets the permanent refusal the send itself would get, and
          // learns nothing of the conversation (before, a stranger was told 429 during a hold: outside check).
          const { conversationId } = data as { conversationId?: string };
          if (conversationId !== undefined) await deps.services.chat.requireMembership(conversationId, req.identity!.userId);
          throw rateLimited(waitMs, 'the readers of this conversation are behind, or the server is sending all it can: retry after retryAfterMs');
        }
        const budget = userBudgets[type];
        if (budget) await spend(deps.limiter, userBudgetKey(budget, req.identity!.userId), deps.rates.user[budget], budgetSpent[budget]);
        deps.metrics.requests.inc({ type });
        const run = operations[type] as (s: Services, u: string, d: unknown, c: string | null) => Promise<unknown>;
        const result = await run(deps.services, req.identity!.userId, data, null).catch((err: unknown) => {
          // Refused by a limit inside the operation (a busy store): it changed nothing, so the token goes back.
          if (budget && isParleyError(err) && err.code === 'RATE_LIMITED') void deps.limiter.refund(userBudgetKey(budget, req.identity!.userId), deps.rates.user[budget]).catch(() => {});
          throw err;
        });
        await deps.listenOnJoin?.(req.identity!.userId, type, result);
        // A retried send (same key) created nothing: it answers replayStatus (200) with the original, not 201.
        const replayed = route.replayStatus !== undefined && (result as { duplicate?: unknown }).duplicate === true;
        if (route.successStatus) reply.code(replayed ? route.replayStatus! : route.successStatus);
        return result;
      },
    });
  }

  registerAdminRoutes(app, deps);
  if (deps.webClientDir) registerWebClient(app, deps.webClientDir, deps.logger);
  return app;
}

/** /readyz answers from a probe at most this old: the probe commits a write, and a flood of probes must not be a flood of fsyncs. */
const readinessProbeMs = 1000;

/**
 * /readyz answers within this many ms: a probe still running then (the store thread busy or waiting for a lock) is
 * "store or bus not answering" (503). Longer than the store's busy timeout (1 s), so a probe that waits out one lock still
 * reports the store's own error.
 */
const readinessTimeoutMs = 2000;

/** `probe`, run at most once per `maxAgeMs` and never twice at once: callers in between share the last (or running) outcome. */
function sharedProbe(probe: () => Promise<void>, maxAgeMs: number): () => Promise<void> {
  let last: { at: number; outcome: Promise<void>; running: boolean } | null = null;
  return () => {
    const now = Date.now();
    if (!last || (!last.running && now - last.at >= maxAgeMs)) {
      const entry = { at: now, outcome: probe(), running: true };
      const settle = () => {
        entry.running = false;
      };
      entry.outcome.then(settle, settle); // also observes a shared rejection, so it is not unhandled
      last = entry;
    }
    return last.outcome;
  };
}


/**
 * CORS for browser pages on the allowed origins: preflights answered (methods the API uses, the Authorization and
 * Content-Type headers, cached 10 minutes); no credentials (tokens travel in Authorization, never in cookies).
 */
function registerCors(app: FastifyInstance, policy: OriginPolicy): void {
  void app.register(cors, {
    origin: policy.corsOrigin,
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: ['authorization', 'content-type'],
    exposedHeaders: ['retry-after'],
    maxAge: 600,
    credentials: false,
    strictPreflight: false,
  });
}

function registerAdminRoutes(app: FastifyInstance, deps: HttpDeps): void {
  const preHandler = authenticateAdmin(deps);
  for (const route of adminRoutes) {
    app.route({
      method: route.method,
      url: route.url,
      config: route.body ? TAKES_BODY : {},
      preHandler,
      handler: async (req, reply) => {
        if (!route.query) refuseUnknownQuery(req.query as ParsedQuery, []);
        const result = await route.run(deps, {
          params: (route.params ? parse(route.params, req.params) : req.params) as Record<string, string>,
          query: route.query ? parse(route.query, req.query) : {},
          body: route.body ? parse(route.body, req.body) : {},
        }, { status: (code) => reply.code(code) });
        if (route.successStatus) reply.code(route.successStatus);
        return result;
      },
    });
  }
}

/** Route config of a route that reads a JSON body; every other route refuses one (refuseUnwantedBody). */
const TAKES_BODY = Object.freeze({ takesBody: true });

/**
 * A body sent to a route that takes none (a GET, a DELETE, join, ban, logout...): INVALID_REQUEST naming its first
 * field. Ignored in silence, `{"userId": "B"}` on the ban route of user C looked like it banned B. No body, `null` and `{}`
 * are no body. Unknown routes are left to the 404.
 */
function refuseUnwantedBody(req: FastifyRequest): void {
  const body = req.body;
  if (body === undefined || body === null || req.is404) return;
  const isObject = typeof body === 'object' && !Array.isArray(body);
  if ((req.routeOptions.config as { takesBody?: boolean }).takesBody) return refusePathFields(req, isObject ? body : {});
  if (isObject && Object.keys(body).length === 0) return;
  const key = isObject ? Object.keys(body)[0]! : '';
  const fromPath = Object.hasOwn((req.params ?? {}) as object, key);
  const message = fromPath ? `the URL path gives ${key}; this route takes no body` : 'this route takes no body';
  throw new ParleyError('INVALID_REQUEST', isObject ? `the body may not carry ${key}: ${message}` : `the body must be empty: ${message}`, [{ path: key, message }]);
}

/** A body that is JSON but not an object (an array, a string, a number...) on a route that takes an object. */
function notAnObject(): ParleyError {
  return new ParleyError('INVALID_REQUEST', 'the body must be a JSON object', [{ path: '', message: 'not a JSON object' }]);
}

/** A body field the URL path gives (an admin route's userId...): INVALID_REQUEST naming it, never overwritten or ignored. */
function refusePathFields(req: FastifyRequest, body: object): void {
  for (const key of Object.keys(body)) {
    if (!Object.hasOwn((req.params ?? {}) as object, key)) continue;
    throw new ParleyError('INVALID_REQUEST', `the body may not carry ${key}: the URL path gives ${key}`, [{ path: key, message: `not a body field of this route: the URL path gives ${key}` }]);
  }
}

/**
 * A field the route omits from its body (`to` where the path names the conversation): INVALID_REQUEST naming it,
 * never ignored in silence. Fields the path gives were refused before (refusePathFields); other unknown fields reach
 * the operation's schema, which refuses them ("Unrecognized key").
 */
function refuseOmittedFields(route: OperationRoute, body: Record<string, unknown>): void {
  for (const key of route.bodyOmits ?? []) {
    if (!Object.hasOwn(body, key)) continue;
    const why = `this route does not take ${key}: its path names the conversation`;
    throw new ParleyError('INVALID_REQUEST', `the body may not carry ${key}: ${why}`, [{ path: key, message: `not a body field of this route: ${why}` }]);
  }
}

/** A query string parseQuery found a fault in (bad percent-encoding, a repeated parameter): INVALID_REQUEST naming it. */
function refuseBadQuery(req: FastifyRequest): void {
  const fault = (req.query as ParsedQuery | undefined)?.[QUERY_FAULT];
  if (fault) throw new ParleyError('INVALID_REQUEST', `query parameter ${fault.path} is ${fault.message}`, [{ path: fault.path, message: fault.message }]);
}

/** A query parameter the route does not read: INVALID_REQUEST naming it, as the schemas refuse unknown fields. */
function refuseUnknownQuery(query: ParsedQuery, known: readonly string[]): void {
  const unknown = Object.keys(query).find((name) => !known.includes(name));
  if (unknown === undefined) return;
  const message = known.length ? `not a query parameter of this route (it reads ${known.join(', ')})` : 'not a query parameter of this route (it reads none)';
  throw new ParleyError('INVALID_REQUEST', `query parameter ${unknown} is ${message}`, [{ path: unknown, message }]);
}

/**
 * Every route, before anything reads the request, runs the WebSocket's input check (src/protocol/well-formed.ts
 * findRefused) on the path parameters, the query and the JSON body: a lone surrogate, U+0000, a `__proto__` key or a
 * non-finite number at any depth is INVALID_REQUEST naming the field.
 */
function refuseValues(req: FastifyRequest): void {
  for (const [part, where] of [[req.params, 'the path'], [req.query, 'the query'], [req.body, 'the body']] as const) {
    const refused = findRefused(part);
    if (!refused) continue;
    const detail = illFormedDetail(refused.path, refused.message);
    throw new ParleyError('INVALID_REQUEST', `${detail.path || where} is ${detail.message}`, [detail]);
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

/**
 * Fastify's own errors mapped onto the catalogue: every error fastify raises before a handler (bad URL, a path
 * parameter over maxParamLength, content-type, content-length, body size) is a 4xx with our body. Anything else that is
 * not a ParleyError is INTERNAL, and logged.
 */
function translate(err: unknown, logger: Logger): ErrorBody {
  if (isParleyError(err)) return err.toBody();
  const known = frameworkError(err as { code?: string; statusCode?: number });
  if (known) return known.toBody();
  logger.error({ err }, 'http request failed');
  return { code: 'INTERNAL', message: errorCatalogue.INTERNAL.message, temporary: true };
}

/** The catalogued error of a fastify error (a 4xx statusCode, or a known code), or null for a real failure. */
function frameworkError(err: { code?: string; statusCode?: number }): ParleyError | null {
  switch (err.code) {
    case 'FST_ERR_BAD_URL':
      return new ParleyError('INVALID_REQUEST', 'the URL path is not valid percent-encoded UTF-8', [{ path: 'url', message: 'not valid percent-encoded UTF-8' }]);
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new ParleyError('INVALID_REQUEST', 'a URL path segment is longer than 512 characters', [{ path: 'url', message: 'a path parameter has at most 512 characters' }]);
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ParleyError('BAD_FRAME', 'the body is not valid JSON');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ParleyError('MESSAGE_TOO_LARGE', 'the body is too large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_TYPE':
    case 'FST_ERR_CTP_EMPTY_TYPE':
      return notJsonType();
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ParleyError('INVALID_REQUEST', 'the content-length does not match the body', [{ path: 'content-length', message: 'does not match the body' }]);
  }
  const status = err.statusCode;
  if (typeof status !== 'number' || status < 400 || status >= 500) return null;
  if (status === 404) return new ParleyError('NOT_FOUND', 'no such route');
  if (status === 413) return new ParleyError('MESSAGE_TOO_LARGE', 'the request is too large');
  return new ParleyError('INVALID_REQUEST', 'the request is malformed');
}

function sendError(reply: FastifyReply, body: ErrorBody, status = errorCatalogue[body.code].status): FastifyReply {
  // HTTP's own form of retryAfterMs, in whole seconds rounded up, for clients and proxies that know only it.
  if (body.retryAfterMs !== undefined) reply.header('retry-after', String(Math.ceil(body.retryAfterMs / 1000)));
  return reply.code(status).send({ error: body });
}

/** Spend one token of `key`, or reject RATE_LIMITED with the wait. */
async function spend(limiter: RateLimiter, key: string, rate: Rate, message: string): Promise<void> {
  // A limiter that cannot answer admits (the seam's rule): an outage of it must not stop the API.
  const decision = await limiter.take(key, rate).catch(() => ({ allowed: true, retryAfterMs: 0 }));
  if (!decision.allowed) throw rateLimited(decision.retryAfterMs, message);
}

/** The compiler factory of route schemas, which Parley does not use (see buildHttpApp). */
function refuseRouteSchemas(): never {
  throw new Error('route schemas are not used: validate the request with its zod schema (src/protocol/requests.ts)');
}
