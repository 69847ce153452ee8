import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { register, startServer, type TestServer } from '../helpers/server.js';

const PAGE = 'https://chat.example.com';
const OTHER_PAGE = 'http://localhost:5173';
const FOREIGN = 'https://evil.example.net';

/** Open a WebSocket as a browser page of `origin` would (undefined: as a non-browser client); the HTTP outcome. */
function connectFrom(server: TestServer, token: string, origin: string | undefined, host?: string): Promise<{ status: number; welcome?: unknown }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(server.wsUrl, ['parley.v1', `bearer.${token}`], {
      ...(origin === undefined ? {} : { origin }),
      ...(host === undefined ? {} : { headers: { host } }),
    });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('no handshake outcome within 5 s'));
    }, 5000);
    ws.once('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      resolve({ status: res.statusCode ?? 0 });
      ws.terminate();
    });
    ws.once('message', (data) => {
      clearTimeout(timer);
      resolve({ status: 101, welcome: JSON.parse(String(data)).event });
      ws.close();
    });
    ws.once('error', () => undefined);
  });
}

/** A browser's preflight for a request with a JSON body and a bearer token. */
function preflight(server: TestServer, path: string, origin: string, method = 'POST'): Promise<Response> {
  return fetch(`${server.url}${path}`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'authorization,content-type' },
  });
}

describe('browser pages on other origins (server.cors.origins)', () => {
  describe('by default: no cross-origin page', () => {
    let server: TestServer;
    let token: string;
    before(async () => {
      server = await startServer();
      token = (await register(server, 'cors-default')).token;
    });
    after(async () => {
      await server.stop();
    });

    it('gives a foreign page no CORS headers, on the preflight or the request', async () => {
      const pre = await preflight(server, '/api/v1/accounts', FOREIGN);
      assert.equal(pre.headers.get('access-control-allow-origin'), null);
      const res = await fetch(`${server.url}/api/v1/sessions`, { method: 'POST', headers: { origin: FOREIGN, 'content-type': 'application/json' }, body: '{}' });
      assert.equal(res.headers.get('access-control-allow-origin'), null);
    });

    it('refuses the WebSocket upgrade of a foreign page with 403, and allows same-origin pages and non-browser clients', async () => {
      assert.deepEqual(await connectFrom(server, token, FOREIGN), { status: 403 });
      assert.deepEqual(await connectFrom(server, token, 'null'), { status: 403 }, 'a sandboxed page');
      assert.deepEqual(await connectFrom(server, token, undefined), { status: 101, welcome: 'welcome' });
      assert.deepEqual(await connectFrom(server, token, server.url), { status: 101, welcome: 'welcome' }, 'the server origin itself');
      // Without server.publicUrl the server knows its name only from Host: a rebound name passes (documented).
      assert.deepEqual(await connectFrom(server, token, 'http://rebound.example', 'rebound.example'), { status: 101, welcome: 'welcome' });
    });
  });

  describe('with server.publicUrl: the own origin is pinned', () => {
    let server: TestServer;
    let token: string;
    before(async () => {
      server = await startServer({ PARLEY_SERVER_PUBLIC_URL: 'https://chat.example.org' });
      token = (await register(server, 'cors-public-url')).token;
    });
    after(async () => {
      await server.stop();
    });

    it('accepts pages of the public origin only, not any page whose Host header matches its Origin (DNS rebinding)', async () => {
      assert.deepEqual(await connectFrom(server, token, 'https://chat.example.org'), { status: 101, welcome: 'welcome' });
      assert.deepEqual(await connectFrom(server, token, 'http://rebound.example', 'rebound.example'), { status: 403 });
      assert.deepEqual(await connectFrom(server, token, 'http://chat.example.org', 'chat.example.org'), { status: 403 }, 'the scheme counts');
      assert.deepEqual(await connectFrom(server, token, undefined), { status: 101, welcome: 'welcome' }, 'non-browser clients');
    });
  });

  describe('with allowed origins', () => {
    let server: TestServer;
    let token: string;
    before(async () => {
      server = await startServer({ PARLEY_SERVER_CORS_ORIGINS: `${PAGE}, ${OTHER_PAGE}` });
      token = (await register(server, 'cors-allowed')).token;
    });
    after(async () => {
      await server.stop();
    });

    it('answers the preflight of an allowed page: its origin, the methods, Authorization and Content-Type', async () => {
      for (const [path, method] of [['/api/v1/accounts', 'POST'], ['/api/v1/me', 'GET'], ['/api/v1/conversations/x', 'PATCH'], ['/api/v1/invites/x', 'DELETE']] as const) {
        const res = await preflight(server, path, PAGE, method);
        assert.equal(res.status, 204, `${method} ${path}`);
        assert.equal(res.headers.get('access-control-allow-origin'), PAGE);
        assert.match(res.headers.get('access-control-allow-methods') ?? '', new RegExp(`\\b${method}\\b`));
        const headers = (res.headers.get('access-control-allow-headers') ?? '').toLowerCase();
        assert.match(headers, /\bauthorization\b/);
        assert.match(headers, /\bcontent-type\b/);
        assert.equal(res.headers.get('access-control-allow-credentials'), null, 'tokens, not cookies');
      }
    });

    it('lets an allowed page register, log in and read its replies (errors included); a foreign page still gets no headers', async () => {
      const registered = await fetch(`${server.url}/api/v1/accounts`, {
        method: 'POST',
        headers: { origin: OTHER_PAGE, 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'cors-browser', password: 'correct horse battery' }),
      });
      assert.equal(registered.status, 201);
      assert.equal(registered.headers.get('access-control-allow-origin'), OTHER_PAGE);
      const me = await fetch(`${server.url}/api/v1/me`, { headers: { origin: PAGE, authorization: `Bearer ${((await registered.json()) as any).token}` } });
      assert.equal(me.status, 200);
      assert.equal(me.headers.get('access-control-allow-origin'), PAGE);
      const refused = await fetch(`${server.url}/api/v1/me`, { headers: { origin: PAGE } });
      assert.equal(refused.status, 401);
      assert.equal(refused.headers.get('access-control-allow-origin'), PAGE, 'the page can read why');
      const foreign = await fetch(`${server.url}/api/v1/me`, { headers: { origin: FOREIGN, authorization: `Bearer ${token}` } });
      assert.equal(foreign.headers.get('access-control-allow-origin'), null);
    });

    it('accepts the WebSocket of an allowed page and refuses any other with 403', async () => {
      assert.deepEqual(await connectFrom(server, token, PAGE), { status: 101, welcome: 'welcome' });
      assert.deepEqual(await connectFrom(server, token, OTHER_PAGE), { status: 101, welcome: 'welcome' });
      assert.deepEqual(await connectFrom(server, token, FOREIGN), { status: 403 });
      assert.deepEqual(await connectFrom(server, token, `${PAGE}.evil.example.net`), { status: 403 }, 'a prefix is not a match');
    });
  });

  describe('with *', () => {
    let server: TestServer;
    let token: string;
    before(async () => {
      server = await startServer({ PARLEY_SERVER_CORS_ORIGINS: '*' });
      token = (await register(server, 'cors-any')).token;
    });
    after(async () => {
      await server.stop();
    });

    it('allows any page, over REST and WebSocket', async () => {
      const res = await preflight(server, '/api/v1/accounts', FOREIGN);
      assert.equal(res.headers.get('access-control-allow-origin'), FOREIGN);
      assert.deepEqual(await connectFrom(server, token, FOREIGN), { status: 101, welcome: 'welcome' });
    });
  });

  it('rejects an origin with a path at start, naming the setting', async () => {
    await assert.rejects(startServer({ PARLEY_SERVER_CORS_ORIGINS: 'https://chat.example.com/app' }), /server\.cors\.origins\.0: expected an origin like https:\/\/chat\.example\.com \(no path\), or \*, got "https:\/\/chat\.example\.com\/app" \(from PARLEY_SERVER_CORS_ORIGINS\)/);
  });
});
