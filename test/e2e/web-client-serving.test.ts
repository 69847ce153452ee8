import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { register, startServer, type TestServer } from '../helpers/server.js';
import { RawClient } from '../helpers/raw-client.js';

const ASSETS = new URL('../../dist/web/assets/', import.meta.url);

describe('the web client served at /', () => {
  let server: TestServer;

  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.stop();
  });

  it('answers / with the page, revalidated on every load and locked to its own origin', async () => {
    const res = await fetch(`${server.url}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    assert.ok(res.headers.get('etag'), 'an ETag makes the revalidation a 304');
    assert.match(res.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    // No other site may frame it (clickjacking).
    assert.match(res.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    assert.equal(res.headers.get('x-frame-options'), 'DENY');
    const html = await res.text();
    assert.match(html, /<div id="app">/);
    // As a browser revalidates (fetch() would add `cache-control: no-cache` to a conditional request, forcing a 200).
    const revalidated = await fetch(`${server.url}/`, { headers: { 'if-none-match': res.headers.get('etag')!, 'cache-control': 'max-age=0' } });
    assert.equal(revalidated.status, 304);
  });

  it('caches the hashed assets for a year, and every asset the page names exists', async () => {
    const html = await (await fetch(`${server.url}/`)).text();
    const named = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]!);
    assert.ok(named.some((p) => p.endsWith('.js')) && named.some((p) => p.endsWith('.css')), `the page names its script and style: ${named}`);
    for (const path of named) {
      const res = await fetch(`${server.url}${path}`);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable', path);
      assert.equal(res.headers.get('content-security-policy'), null, 'only the page carries the policy');
    }
    assert.ok(readdirSync(ASSETS).length >= named.length);
  });

  it('leaves the API, health, metrics, OpenAPI and WebSocket routes as they were', async () => {
    assert.deepEqual(await (await fetch(`${server.url}/healthz`)).json(), { status: 'ok' });
    assert.equal((await fetch(`${server.url}/readyz`)).status, 200);
    assert.match(await (await fetch(`${server.url}/metrics`)).text(), /parley_/);
    assert.equal(((await (await fetch(`${server.url}/openapi.json`)).json()) as { openapi: string }).openapi.startsWith('3'), true);
    const me = await fetch(`${server.url}/api/v1/me`);
    assert.equal(me.status, 401);
    const missing = await fetch(`${server.url}/no-such-page`);
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
    const user = await register(server, 'web-serving');
    const client = await RawClient.connect(server.wsUrl, user.token);
    assert.equal((await client.ok('ping', {})) !== undefined, true, 'the WebSocket at /ws answers');
    client.close();
  });
});

describe('with server.webClient off', () => {
  it('does not serve the page', async () => {
    const server = await startServer({ PARLEY_SERVER_WEB_CLIENT: 'false' });
    try {
      const res = await fetch(`${server.url}/`);
      assert.equal(res.status, 404);
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
    } finally {
      await server.stop();
    }
  });
});
