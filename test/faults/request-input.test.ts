import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { adminRoutes } from '../../src/http/admin-routes.js';
import { bodyFields, operationRoutes, routePathParams } from '../../src/http/routes.js';
import { RawClient } from '../helpers/raw-client.js';
import { ADMIN_TOKEN, api, register, startServer, type TestServer } from '../helpers/server.js';

/**
 * How the REST API and the WebSocket decode a request before any schema sees it (docs/protocol.md "Conventions"):
 * query strings, path parameters, JSON bodies and frames. Every bad input is a catalogued 4xx with our error body,
 * never INTERNAL (and never a logged error), and nothing is stored.
 */

/** A REST call with a raw body and headers of the test's choosing. */
async function raw(server: TestServer, method: string, path: string, init: { token?: string; body?: string | Buffer; contentType?: string } = {}) {
  const headers: Record<string, string> = {};
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  if (init.contentType) headers['content-type'] = init.contentType;
  const body = Buffer.isBuffer(init.body) ? new Uint8Array(init.body) : init.body;
  const res = await fetch(`${server.url}${path}`, { method, headers, body });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** A request over node:http, which (unlike fetch) sends a body with any method, GET and DELETE included. */
function rawHttp(server: TestServer, method: string, path: string, body: string | undefined, token: string | null, contentType: string | null = 'application/json'): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) };
    if (body !== undefined && contentType !== null) headers['content-type'] = contentType;
    if (token) headers.authorization = `Bearer ${token}`;
    const req = request(`${server.url}${path}`, { method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        let parsed: unknown = text;
        try {
          parsed = text ? JSON.parse(text) : null;
        } catch { /* /metrics answers text */ }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

function assertInvalid(res: { status: number; body: any }, path: string, what: string, message?: RegExp): void {
  assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
  assert.equal(res.body?.error?.code, 'INVALID_REQUEST', `${what}: ${JSON.stringify(res.body)}`);
  assert.equal(res.body.error.details?.[0]?.path, path, `${what}: ${JSON.stringify(res.body.error.details)}`);
  if (message) assert.match(res.body.error.details[0].message, message, what);
}

function assertNoErrorLogs(server: TestServer): void {
  const errors = server.logs.filter((l) => typeof l.level === 'number' && l.level >= 50);
  assert.deepEqual(errors, [], 'the server logged an error');
}

/** A concrete path for a route URL: each `:param` replaced by `fill(name)`. */
const concrete = (url: string, fill: (name: string) => string) => url.replace(/:(\w+)/g, (_, name: string) => fill(name));

/** `depth` arrays around `inner` (raw JSON text). */
const nest = (inner: string, depth: number) => '['.repeat(depth) + inner + ']'.repeat(depth);

describe('request input: query strings, path parameters, bodies and frames', () => {
  let server: TestServer;
  let alice: { id: string; name: string; token: string };
  let a: RawClient;
  let conversationId: string;

  before(async () => {
    server = await startServer();
    alice = await register(server, 'input-alice');
    a = await RawClient.connect(server.wsUrl, alice.token);
    conversationId = (await a.ok('conversation.create', { name: 'input room' })).conversation.id;
  });
  after(async () => {
    a.close();
    await server.stop();
  });

  const history = async () => (await a.ok('history.after', { conversationId, afterSeq: 0 })).messages as Array<{ key: string; text: string; meta?: unknown }>;
  const pathOf = (url: string) => concrete(url, (name) => (name === 'conversationId' ? conversationId : name === 'seq' ? '1' : name === 'userId' ? alice.id : 'x'));

  it('a repeated query parameter was a 500 (an array reached .split); every query parameter of every route now answers INVALID_REQUEST naming it', async () => {
    const routes = [
      ...operationRoutes.filter((r) => r.queryParams).map((r) => ({ url: r.url, params: r.queryParams!, token: alice.token })),
      { url: '/api/v1/admin/users', params: ['limit', 'after'], token: ADMIN_TOKEN },
      { url: '/api/v1/admin/conversations', params: ['limit', 'after'], token: ADMIN_TOKEN },
    ];
    assert.ok(routes.length >= 7);
    for (const route of routes) {
      for (const param of route.params) {
        const path = `${pathOf(route.url)}?${param}=1&${param}=2`;
        assertInvalid(await api(server, route.token, 'GET', path), param, path, /more than once/);
      }
      const unknown = `${pathOf(route.url)}?nope=1`;
      const res = await api(server, route.token, 'GET', unknown);
      assert.equal(res.body?.error?.code, 'INVALID_REQUEST', unknown);
      const bracketed = `${pathOf(route.url)}?after[x]=1`;
      assert.equal((await api(server, route.token, 'GET', bracketed)).body?.error?.code, 'INVALID_REQUEST', bracketed);
    }
    // Routes that read no query refuse any.
    for (const route of operationRoutes.filter((r) => !r.queryParams && r.method === 'GET')) {
      assertInvalid(await api(server, alice.token, 'GET', `${pathOf(route.url)}?x=1`), 'x', route.url, /reads none/);
    }
    // A comma-separated list in one parameter is still how presence takes many ids.
    assert.equal((await api(server, alice.token, 'GET', `/api/v1/presence?userIds=${alice.id},nobody`)).status, 200);
    assertNoErrorLogs(server);
  });

  it('a body field the path gives, or on a route that takes no body, was ignored in silence; every route now refuses it', async () => {
    // Before: a send to conversation G1 with {"conversationId":"G2"} in its body was stored in G1 with 201, and join took {"foo":1}.
    const before = (await history()).length;
    let checked = 0;
    for (const route of operationRoutes) {
      const fields = bodyFields(route);
      const path = pathOf(route.url);
      const refused = [
        ...routePathParams(route).map((name) => [name, /the URL path gives/] as const),
        ...(route.bodyOmits ?? []).map((name) => [name, /does not take/] as const),
        ...(fields.length === 0 ? [['foo', /takes no body/] as const] : []),
      ];
      if (route.method === 'GET') continue; // a GET has no body to send (fetch refuses one)
      for (const [field, message] of refused) {
        const body = JSON.stringify({ ...Object.fromEntries(fields.map((f) => [f, f === 'key' ? 'k-body' : 'x'])), [field]: field === 'seq' ? 1 : 'other' });
        const res = await raw(server, route.method, path, { token: alice.token, body, contentType: 'application/json' });
        assertInvalid(res, field, `${route.method} ${route.url} with ${field} in the body`, message);
        checked++;
      }
    }
    assert.ok(checked >= 20, `${checked} cases`);
    assert.equal((await history()).length, before, 'nothing was stored');
    // A route's own body fields still pass, and an unknown one is still the schema's "Unrecognized key".
    const other = (await a.ok('conversation.create', { name: 'body fields room' })).conversation.id;
    const send = `/api/v1/conversations/${other}/messages`;
    const sent = await raw(server, 'POST', send, { token: alice.token, body: JSON.stringify({ key: 'body-ok', text: 'fine' }), contentType: 'application/json' });
    assert.equal(sent.status, 201, JSON.stringify(sent.body));
    assertInvalid(await raw(server, 'POST', send, { token: alice.token, body: JSON.stringify({ key: 'body-x', text: 'x', colour: 1 }), contentType: 'application/json' }), '', 'unknown field', /Unrecognized key/);
    assertNoErrorLogs(server);
  });

  it('a body sent to any route that takes none (admin, sessions) was ignored in silence; it is refused naming its field', async () => {
    // Before: {"userId": B} on the admin ban route of user C answered 200 and banned C; the admin delete of conversation G2
    // with {"conversationId": G} deleted G2.
    const victim = await register(server, 'input-bodyless');
    const bodiless: Array<[string, string, string | null]> = [
      // A GET's body is not read at all (HTTP gives it no meaning; docs/protocol.md says it is ignored).
      ...adminRoutes.filter((r) => !r.body && r.method !== 'GET').map((r) => [r.method, concrete(r.url, (name) => (name === 'userId' ? victim.id : 'no-such')), ADMIN_TOKEN] as [string, string, string]),
      ['DELETE', '/api/v1/sessions/current', victim.token], ['DELETE', '/api/v1/sessions', victim.token],
    ];
    for (const [method, path, token] of bodiless) {
      for (const [body, field] of [['{"userId":"someone-else"}', 'userId'], ['{"x":1}', 'x'], ['[1]', '']] as const) {
        const res = await rawHttp(server, method, path, body, token);
        assertInvalid(res, field, `${method} ${path} ${body}`, /takes no body/);
      }
      // No body, an empty one (with a JSON content-type), null and {} are no body: the route answers as usual, never 400.
      for (const body of [undefined, '', ' \r\n', 'null', '{}']) {
        const res = await rawHttp(server, method, path, body, token);
        assert.notEqual(res.status, 400, `${method} ${path} ${body}: ${JSON.stringify(res.body)}`);
      }
    }
    const users = (await api(server, ADMIN_TOKEN, 'GET', '/api/v1/admin/users?limit=1000')).body.users as Array<{ id: string; banned: boolean }>;
    // The ban route ran once, with no body: the victim is banned, nobody else (the unban ran after it, likewise).
    assert.deepEqual(users.filter((u) => u.banned).map((u) => u.id), []);
    assertNoErrorLogs(server);
  });

  it('bodies of routes that take one: a field the admin path gives, a body that is not an object, an empty body', async () => {
    // Before: {"userId": …} in an admin route's body was "Unrecognized key" at path "" (operation routes named it), a
    // body that is not an object had no details, and an empty body with a JSON content-type was BAD_FRAME on every
    // route, so a client setting that header on every request could not join a group.
    const target = await register(server, 'input-admin-target');
    let checked = 0;
    for (const route of adminRoutes.filter((r) => r.body && r.url.includes(':'))) {
      for (const name of [...route.url.matchAll(/:(\w+)/g)].map((m) => m[1]!)) {
        const path = concrete(route.url, (n) => (n === 'userId' ? target.id : 'no-such'));
        const res = await rawHttp(server, route.method, path, JSON.stringify({ [name]: 'someone-else' }), ADMIN_TOKEN);
        assertInvalid(res, name, `${route.method} ${route.url} with ${name} in the body`, /the URL path gives/);
        checked++;
      }
    }
    assert.ok(checked >= 1, `${checked} admin cases`);
    const other = (await a.ok('conversation.create', { name: 'object bodies room' })).conversation.id;
    const bodied: Array<[string, string, string]> = [
      ...operationRoutes.filter((r) => bodyFields(r).length > 0).map((r) => [r.method, concrete(r.url, (n) => (n === 'conversationId' ? other : n === 'seq' ? '1' : n === 'userId' ? alice.id : 'x')), alice.token] as [string, string, string]),
      ...adminRoutes.filter((r) => r.body).map((r) => [r.method, concrete(r.url, (n) => (n === 'userId' ? target.id : 'no-such')), ADMIN_TOKEN] as [string, string, string]),
      ['POST', '/api/v1/accounts', ''], ['POST', '/api/v1/sessions', ''],
    ];
    for (const [method, path, token] of bodied) {
      for (const body of ['[1]', '"x"', '1', 'true']) assertInvalid(await rawHttp(server, method, path, body, token || null), '', `${method} ${path} ${body}`);
    }
    // An empty body with a JSON content-type is no body: a send then names what it lacks, a join just works.
    const send = await rawHttp(server, 'POST', `/api/v1/conversations/${other}/messages`, '', alice.token);
    assert.equal(send.body?.error?.code, 'INVALID_REQUEST', JSON.stringify(send.body));
    const joiner = await register(server, 'input-empty-joiner');
    const join = await rawHttp(server, 'POST', `/api/v1/conversations/${other}/join`, '', joiner.token);
    assert.equal(join.status, 200, JSON.stringify(join.body));
    // With any content-type or none (a browser's fetch with body '' says text/plain): empty is still no body.
    for (const [body, type] of [['', 'text/plain;charset=UTF-8'], [' \n', null], ['', 'application/x-www-form-urlencoded']] as const) {
      const leave = await rawHttp(server, 'POST', `/api/v1/conversations/${other}/leave`, body, joiner.token, type);
      assert.equal(leave.status, 200, `${type}: ${JSON.stringify(leave.body)}`);
      const rejoin = await rawHttp(server, 'POST', `/api/v1/conversations/${other}/join`, body, joiner.token, type);
      assert.equal(rejoin.status, 200, `${type}: ${JSON.stringify(rejoin.body)}`);
    }
    // A body that is not empty still has to be JSON, and an unknown route is still 404 whatever its body.
    assertInvalid(await rawHttp(server, 'POST', `/api/v1/conversations/${other}/leave`, 'x', joiner.token, 'text/plain'), 'content-type', 'text/plain body');
    assertInvalid(await rawHttp(server, 'POST', `/api/v1/conversations/${other}/leave`, '{}', joiner.token, null), 'content-type', 'a body with no content-type');
    assert.equal((await rawHttp(server, 'POST', '/api/v1/no-such-route', 'x', joiner.token, 'text/plain')).status, 404);
    assert.equal((await a.ok('history.after', { conversationId: other, afterSeq: 0 })).messages.length, 0, 'nothing was stored');
    assertNoErrorLogs(server);
  });

  it('a path parameter over 512 characters was a 500; on every parameterised route it is INVALID_REQUEST (path "url")', async () => {
    const routes = [
      ...operationRoutes.map((r) => ({ method: r.method, url: r.url, token: alice.token })),
      ...adminRoutes.map((r) => ({ method: r.method, url: r.url, token: ADMIN_TOKEN })),
    ].filter((r) => r.url.includes(':'));
    assert.ok(routes.length >= 20);
    for (const route of routes) {
      const path = concrete(route.url, () => 'a'.repeat(600));
      const res = await api(server, route.token, route.method, path, route.method === 'GET' || route.method === 'DELETE' ? undefined : {});
      assertInvalid(res, 'url', `${route.method} ${route.url}`, /512/);
    }
    assertNoErrorLogs(server);
  });

  it('every error fastify raises before a route is a catalogued 4xx with our error body', async () => {
    const url = `/api/v1/conversations/${conversationId}/messages`;
    const cases: Array<[string, { body?: string | Buffer; contentType?: string; path?: string }, number, string]> = [
      ['malformed JSON', { body: '{"key":', contentType: 'application/json' }, 400, 'BAD_FRAME'],
      ['text/plain body', { body: '{"key":"t","text":"x"}', contentType: 'text/plain' }, 400, 'INVALID_REQUEST'],
      ['form body', { body: 'key=t&text=x', contentType: 'application/x-www-form-urlencoded' }, 400, 'INVALID_REQUEST'],
      ['unknown media type', { body: '{}', contentType: 'application/vnd.parley+json' }, 400, 'INVALID_REQUEST'],
      ['body over the limit', { body: JSON.stringify({ key: 'big', text: 'x'.repeat(2_000_000) }), contentType: 'application/json' }, 413, 'MESSAGE_TOO_LARGE'],
      ['URL path not UTF-8', { path: '/api/v1/conversations/%ED%A0%80/messages', body: '{}', contentType: 'application/json' }, 400, 'INVALID_REQUEST'],
      ['URL path with a bad escape', { path: '/api/v1/conversations/%E0%A4%A/messages', body: '{}', contentType: 'application/json' }, 400, 'INVALID_REQUEST'],
    ];
    for (const [what, init, status, code] of cases) {
      const res = await raw(server, 'POST', init.path ?? url, { ...init, token: alice.token });
      assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body?.error?.code, code, what);
      assert.equal(typeof res.body.error.message, 'string', what);
    }
    assert.deepEqual(await history(), []);
    assertNoErrorLogs(server);
  });

  it('ill-formed UTF-8 in a REST body was stored as U+FFFD; it is now INVALID_REQUEST naming body, and nothing is stored', async () => {
    const url = `/api/v1/conversations/${conversationId}/messages`;
    const bad = [Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xff]), Buffer.from([0xc0, 0x80]), Buffer.from([0xe2, 0x82])];
    for (const bytes of bad) {
      const body = Buffer.concat([Buffer.from('{"key":"raw","text":"A'), bytes, Buffer.from('B"}')]);
      assertInvalid(await raw(server, 'POST', url, { token: alice.token, body, contentType: 'application/json' }), 'body', bytes.toString('hex'), /UTF-8/);
      const account = Buffer.concat([Buffer.from('{"username":"x'), bytes, Buffer.from('y","password":"violet tugboat fifty lantern q"}')]);
      assertInvalid(await raw(server, 'POST', '/api/v1/accounts', { body: account, contentType: 'application/json; charset=utf-8' }), 'body', `account ${bytes.toString('hex')}`);
      const user = Buffer.concat([Buffer.from('{"name":"n","metadata":{"a":"'), bytes, Buffer.from('"}}')]);
      assertInvalid(await raw(server, 'PUT', '/api/v1/admin/users/raw-user', { token: ADMIN_TOKEN, body: user, contentType: 'application/json' }), 'body', `metadata ${bytes.toString('hex')}`);
    }
    assert.deepEqual(await history(), []);
    assert.equal((await api(server, ADMIN_TOKEN, 'GET', '/api/v1/admin/users?limit=1000')).body.users.some((u: any) => u.id === 'raw-user'), false);
    // Well-formed multi-byte UTF-8 (and a byte-order mark) still reads as sent.
    const good = await raw(server, 'POST', url, { token: alice.token, body: Buffer.from('\ufeff{"key":"utf8","text":"Grüße 😀"}'), contentType: 'application/json' });
    assert.equal(good.status, 201, JSON.stringify(good.body));
    assert.equal((await history()).find((m) => m.key === 'utf8')?.text, 'Grüße 😀');
  });

  it('ill-formed percent-encoding in a query string was decoded to U+FFFD; it is now INVALID_REQUEST naming the parameter', async () => {
    for (const bad of ['%ED%A0%80', '%FF', '%C0%80', '%E2%82', '%', '%zz']) {
      assertInvalid(await api(server, alice.token, 'GET', `/api/v1/conversations/search?query=${bad}`), 'query', bad, /UTF-8/);
      assertInvalid(await api(server, alice.token, 'GET', `/api/v1/conversations?after=${bad}`), 'after', bad);
      assertInvalid(await api(server, ADMIN_TOKEN, 'GET', `/api/v1/admin/users?after=${bad}`), 'after', `admin ${bad}`);
      assertInvalid(await api(server, ADMIN_TOKEN, 'GET', `/api/v1/admin/conversations?after=${bad}`), 'after', `admin conversations ${bad}`);
    }
    // Well-formed escapes and `+` for a space still decode.
    const found = await api(server, alice.token, 'GET', `/api/v1/conversations/search?query=${encodeURIComponent('Grüße')}+x`);
    assert.equal(found.status, 200, JSON.stringify(found.body));
    assertNoErrorLogs(server);
  });

  it('a __proto__ key slipped past the WebSocket schemas (and was "not valid JSON" on REST); both now refuse it with its path', async () => {
    const frames: Array<[string, string]> = [
      ['{"id":"p1","type":"ping","data":{"__proto__":{"anything":1}}}', '__proto__'],
      [`{"id":"p2","type":"message.send","data":{"__proto__":{"conversationId":"${conversationId}","key":"via-proto","text":"x"}}}`, '__proto__'],
      [`{"id":"p3","type":"message.send","data":{"conversationId":"${conversationId}","key":"m","text":"x","meta":{"a":[{"__proto__":{"admin":true}}]}}}`, 'meta.a.0.__proto__'],
      ['{"id":"p4","type":"ping","__proto__":{"x":1}}', '__proto__'],
    ];
    for (const [frame, path] of frames) {
      const reply = await a.rawReply(frame);
      assert.equal(reply.error?.code, 'INVALID_REQUEST', frame);
      assert.equal(reply.error.details[0].path, path, frame);
      assert.match(reply.error.details[0].message, /__proto__/, frame);
    }
    const url = `/api/v1/conversations/${conversationId}/messages`;
    assertInvalid(await raw(server, 'POST', url, { token: alice.token, contentType: 'application/json', body: '{"key":"r","text":"x","meta":{"__proto__":{"admin":true}}}' }), 'meta.__proto__', 'REST meta');
    assertInvalid(await raw(server, 'POST', '/api/v1/conversations', { token: alice.token, contentType: 'application/json', body: '{"name":"x","__proto__":{"a":1}}' }), '__proto__', 'REST body');
    assertInvalid(await raw(server, 'PUT', '/api/v1/admin/users/proto-user', { token: ADMIN_TOKEN, contentType: 'application/json', body: '{"name":"n","metadata":{"__proto__":{}}}' }), 'metadata.__proto__', 'admin metadata');
    assertInvalid(await api(server, alice.token, 'GET', '/api/v1/conversations/search?__proto__=1'), '__proto__', 'query name');
    const stored = (await history()).map((m) => m.key);
    for (const key of ['via-proto', 'm', 'r']) assert.ok(!stored.includes(key), `${key} was stored`);
    // `constructor` is plain data: a meta key of that name is stored and read back as sent, on both transports.
    const meta = { constructor: { prototype: { x: 1 } } };
    await a.ok('message.send', { conversationId, key: 'ctor-ws', text: 'x', meta });
    assert.deepEqual((await history()).find((m) => m.key === 'ctor-ws')?.meta, meta);
    const rest = await raw(server, 'POST', url, { token: alice.token, contentType: 'application/json', body: JSON.stringify({ key: 'ctor-rest', text: 'x', meta }) });
    assert.equal(rest.status, 201, JSON.stringify(rest.body));
    assert.deepEqual((await history()).filter((m) => m.key.startsWith('ctor-')).map((m) => m.meta), [meta, meta]);
  });

  it('a number beyond a double (1e400 → Infinity) was stored as null; it is refused with its path on both transports', async () => {
    const before = (await history()).length;
    for (const big of ['1e400', '-1e400', '[1, 2e999]']) {
      const reply = await a.rawReply(`{"id":"n","type":"message.send","data":{"conversationId":"${conversationId}","key":"big","text":"x","meta":{"n":${big}}}}`);
      assert.equal(reply.error?.code, 'INVALID_REQUEST', big);
      assert.match(reply.error.details[0].path, /^meta\.n/, big);
      assert.match(reply.error.details[0].message, /Infinity/, big);
      assertInvalid(await raw(server, 'POST', `/api/v1/conversations/${conversationId}/messages`, { token: alice.token, contentType: 'application/json', body: `{"key":"big","text":"x","meta":{"n":${big}}}` }), reply.error.details[0].path, `REST ${big}`);
      assertInvalid(await raw(server, 'PUT', '/api/v1/admin/users/big-user', { token: ADMIN_TOKEN, contentType: 'application/json', body: `{"name":"n","metadata":${big}}` }), reply.error.details[0].path.replace(/^meta\.n/, 'metadata'), `metadata ${big}`);
    }
    const edit = await a.rawReply(`{"id":"e","type":"message.edit","data":{"conversationId":"${conversationId}","seq":1,"text":"y","meta":1e400}}`);
    assert.equal(edit.error?.details?.[0]?.path, 'meta');
    // The envelope's id: it cannot be echoed, so the reply is BAD_FRAME with id null.
    const id = await a.rawReply('{"id":1e400,"type":"ping"}');
    assert.equal(id.error?.code, 'BAD_FRAME');
    assert.equal((await history()).length, before);
    // Large finite numbers are fine.
    await a.ok('message.send', { conversationId, key: 'finite', text: 'x', meta: { n: 1.7e308 } });
    assert.equal(((await history()).find((m) => m.key === 'finite')?.meta as { n: number }).n, 1.7e308);
  });
});

describe('the shared input check covers every depth limits.maxJsonDepth allows', () => {
  let server: TestServer;
  let a: RawClient;
  let token: string;
  let conversationId: string;

  before(async () => {
    server = await startServer({ PARLEY_LIMITS_MAX_JSON_DEPTH: '1000', PARLEY_LIMITS_MAX_META_BYTES: '16384' });
    token = (await register(server, 'deep-input')).token;
    a = await RawClient.connect(server.wsUrl, token);
    conversationId = (await a.ok('conversation.create', { name: 'deep' })).conversation.id;
  });
  after(async () => {
    a.close();
    await server.stop();
  });

  it('a lone surrogate, __proto__ key or 1e400 nested 300 or 990 levels deep was stored (the walk stopped at 256); now refused', async () => {
    for (const depth of [300, 990]) {
      for (const [inner, pathEnd] of [['"\\ud800"', ''], ['{"__proto__":1}', '.__proto__'], ['1e400', '']] as const) {
        const meta = nest(inner, depth);
        const expected = `meta${'.0'.repeat(depth)}${pathEnd}`;
        const reply = await a.rawReply(`{"id":"d","type":"message.send","data":{"conversationId":"${conversationId}","key":"d","text":"x","meta":${meta}}}`, 5000);
        assert.equal(reply.error?.code, 'INVALID_REQUEST', `${inner} at ${depth}`);
        assert.equal(reply.error.details[0].path, expected, `${inner} at ${depth}`);
        const rest = await raw(server, 'POST', `/api/v1/conversations/${conversationId}/messages`, { token, contentType: 'application/json', body: `{"key":"d","text":"x","meta":${meta}}` });
        assertInvalid(rest, expected, `REST ${inner} at ${depth}`);
      }
    }
    assert.deepEqual((await a.ok('history.after', { conversationId, afterSeq: 0 })).messages, []);
    // A clean value at that depth is still accepted: the limit, not the check, decides depth.
    const sent = await a.ok('message.send', { conversationId, key: 'deep-ok', text: 'x', meta: JSON.parse(nest('"ok"', 990)) });
    assert.equal(sent.seq, 1);
  });
});
