import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';

/**
 * Where `npm run build` puts the web client (packages/web, built by Vite): the repository's dist/web, reached the same
 * way from this file in src/http (run by tsx) and from its build in dist/http.
 */
export const builtWebClientDir = fileURLToPath(new URL('../../dist/web/', import.meta.url));

/** Vite names the files under assets/ by a hash of their content: a changed file gets a new name. */
const IMMUTABLE = 'public, max-age=31536000, immutable';
/** index.html names the current assets, so it is revalidated on every load (its ETag makes that a 304). */
const REVALIDATE = 'no-cache';
/**
 * The page loads only its own bundled files and talks only to this server ('self' covers ws:/wss: on the same host);
 * message text is never HTML, and this stops injected markup from running or loading anything even if it were.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
  "object-src 'none'", "base-uri 'none'", "form-action 'self'",
  // No other site may frame the chat (clickjacking of delete, ban, revoke); X-Frame-Options for older browsers.
  "frame-ancestors 'none'",
].join('; ');

/**
 * Serves the built web client at `/`: one route per file present at start (no wildcard), so it cannot shadow
 * `/ws`, `/api/...`, `/healthz`, `/readyz`, `/metrics` or `/openapi.json`, and unknown paths keep the API's 404 body.
 * The client routes inside the fragment (`/#/c/<id>`, `/#/invite/<token>`), so no fallback to index.html is needed.
 */
export function registerWebClient(app: FastifyInstance, dir: string, logger: Logger): void {
  if (!existsSync(join(dir, 'index.html'))) {
    logger.warn({ dir }, 'the web client is not built (npm run build): / answers 404');
    return;
  }
  void app.register(fastifyStatic, {
    root: dir,
    prefix: '/',
    wildcard: false,
    index: 'index.html',
    cacheControl: false,
    setHeaders: (reply, path) => {
      const asset = path.startsWith(join(dir, 'assets') + '/');
      reply.header('cache-control', asset ? IMMUTABLE : REVALIDATE);
      reply.header('x-content-type-options', 'nosniff');
      if (path.endsWith('.html')) {
        reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
        reply.header('referrer-policy', 'no-referrer');
        reply.header('x-frame-options', 'DENY');
      }
    },
  });
}
