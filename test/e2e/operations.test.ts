import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { RawClient } from '../helpers/raw-client.js';
import { ADMIN_TOKEN, api, register, startServer, type TestServer } from '../helpers/server.js';

const run = promisify(execFile);
const CLI = new URL('../../dist/cli.js', import.meta.url).pathname;

describe('operating a server: health, metrics, OpenAPI, admin API', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.stop();
  });

  it('answers /healthz and /readyz while the store and bus are up', async () => {
    assert.deepEqual((await api(server, null, 'GET', '/healthz')).body, { status: 'ok' });
    const ready = await api(server, null, 'GET', '/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body, { status: 'ready' });
  });

  it('exposes Prometheus metrics that move with traffic', async () => {
    const alice = await register(server, 'ops-alice');
    const bob = await register(server, 'ops-bob');
    const client = await RawClient.connect(server.wsUrl, alice.token);
    await client.ok('message.send', { to: bob.id, key: 'metrics-1', text: 'counted' });
    await client.errorCode('no.such.type');
    const text = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(text, /^parley_connections 1$/m);
    assert.match(text, /^parley_messages_in_total [1-9]\d*$/m);
    assert.match(text, /^parley_errors_total\{code="UNKNOWN_TYPE"\} 1$/m);
    assert.match(text, /^parley_request_duration_seconds_count\{type="message.send"\} 1$/m);
    assert.match(text, /^parley_process_resident_memory_bytes \d+/m);
    client.close();
  });

  it('serves the OpenAPI document committed in docs/openapi.json, and every route in it exists', async () => {
    const served = (await api(server, null, 'GET', '/openapi.json')).body;
    const committed = JSON.parse(readFileSync(new URL('../../docs/openapi.json', import.meta.url), 'utf8'));
    assert.deepEqual(served, committed, 'docs/openapi.json is stale: run `npm run openapi`');
    const routes = Object.entries(committed.paths as Record<string, Record<string, unknown>>).flatMap(([path, methods]) => Object.keys(methods).map((m) => [m.toUpperCase(), path] as const));
    assert.ok(routes.length >= 30);
    for (const [method, path] of routes) {
      const concrete = path.replace(/\{[A-Za-z]+\}/g, 'x');
      const res = await api(server, null, method, concrete, ['POST', 'PUT', 'PATCH'].includes(method) ? {} : undefined);
      assert.notEqual(res.body?.error?.message, 'no such route', `${method} ${path} is documented but not served`);
    }
  });

  it('refuses the admin API without the admin token or an admin account', async () => {
    const user = await register(server, 'ops-not-admin');
    assert.equal((await api(server, null, 'GET', '/api/v1/admin/users')).body.error.code, 'UNAUTHORIZED');
    const forbidden = await api(server, user.token, 'GET', '/api/v1/admin/users');
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.body.error.code, 'FORBIDDEN');
    assert.equal((await api(server, 'wrong-admin-token-0000', 'GET', '/api/v1/admin/users')).status, 401);
  });

  it('bounds an admin listing page in bytes: users with large metadata page through with more/next, each once', async () => {
    const ids = Array.from({ length: 80 }, (_, i) => `big-meta-${String(i).padStart(2, '0')}`);
    const metadata = { note: 'm'.repeat(4000) };
    for (const id of ids) assert.equal((await api(server, ADMIN_TOKEN, 'PUT', `/api/v1/admin/users/${id}`, { name: id, metadata })).status, 201);
    const seen: string[] = [];
    let after = '';
    let pages = 0;
    for (; pages < 50; pages++) {
      const res = await fetch(`${server.url}/api/v1/admin/users?limit=1000${after}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      const text = await res.text();
      assert.ok(Buffer.byteLength(text) <= 300 * 1024, `a page of ${Buffer.byteLength(text)} bytes`);
      const page = JSON.parse(text);
      seen.push(...page.users.map((u: any) => u.id));
      if (!page.more) break;
      after = `&after=${encodeURIComponent(page.next)}`;
    }
    assert.ok(pages >= 1, 'the 80 users (320 KB of metadata) did not fit one page');
    assert.deepEqual(seen.filter((id) => id.startsWith('big-meta-')), ids);
    assert.equal(new Set(seen).size, seen.length, 'no user twice');
  });

  it('lets an operator create users and groups, list them, and delete a conversation its members are told about', async () => {
    const created = await api(server, ADMIN_TOKEN, 'POST', '/api/v1/admin/users', { username: 'ops-made', password: 'long enough password', admin: true });
    assert.equal(created.status, 201);
    const login = await api(server, null, 'POST', '/api/v1/sessions', { username: 'ops-made', password: 'long enough password' });
    assert.equal(login.status, 200);
    // An admin account may use the admin API with its own token.
    // Every page (the listing is paged by bytes, and other tests made users with large metadata).
    const users: any[] = [];
    for (let after = '', pages = 0; pages < 50; pages++) {
      const page = (await api(server, login.body.token, 'GET', `/api/v1/admin/users?limit=1000${after}`)).body;
      users.push(...page.users);
      if (!page.more) break;
      after = `&after=${encodeURIComponent(page.next)}`;
    }
    assert.ok(users.some((u: any) => u.id === created.body.user.id && u.isAdmin === true && !('passwordHash' in u)));

    const group = await api(server, ADMIN_TOKEN, 'POST', '/api/v1/admin/groups', { name: 'Announcements', visibility: 'public', ownerId: created.body.user.id });
    assert.equal(group.status, 201);
    assert.equal(group.body.conversation.role, 'owner');
    const listed = await api(server, ADMIN_TOKEN, 'GET', '/api/v1/admin/conversations?limit=1000');
    assert.ok(listed.body.conversations.some((c: any) => c.id === group.body.conversation.id));

    const member = await register(server, 'ops-member');
    const client = await RawClient.connect(server.wsUrl, member.token);
    await client.ok('conversation.join', { conversationId: group.body.conversation.id });
    assert.equal((await api(server, ADMIN_TOKEN, 'DELETE', `/api/v1/admin/conversations/${group.body.conversation.id}`)).status, 200);
    const removed = await client.waitFor('conversation.removed', (d) => d.conversationId === group.body.conversation.id);
    assert.equal(removed.reason, 'deleted');
    assert.equal(await client.errorCode('conversation.get', { conversationId: group.body.conversation.id }), 'NOT_MEMBER');
    client.close();
  });

  it('answers unknown routes and malformed bodies with catalogued errors', async () => {
    const missing = await api(server, null, 'GET', '/api/v1/nothing-here');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'NOT_FOUND');
    const res = await fetch(`${server.url}/api/v1/accounts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"username": ' });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as any).error.code, 'BAD_FRAME');
  });
});

describe('the parley CLI', () => {
  let dataDir: string;
  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'parley-cli-'));
  });
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  const cli = (args: string[], env: Record<string, string> = {}) =>
    run(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env } });

  it('prints help for every command', async () => {
    const { stdout } = await cli(['--help']);
    for (const command of ['serve', 'migrate', 'user', 'token', 'admin']) assert.match(stdout, new RegExp(`\\b${command}\\b`));
    assert.match((await cli(['serve', '--help'])).stdout, /PARLEY_SERVER_PORT/);
  });

  it('migrates, adds a user whose login works on the server, and mints tokens the server accepts', async () => {
    await cli(['migrate', '--data-dir', dataDir]);
    await cli(['migrate', '--data-dir', dataDir]);
    await cli(['user', 'add', 'cli-alice', '--password', 'a long password', '--data-dir', dataDir]);
    const { stdout: token } = await cli(['token', 'cli-token-user', '--create', '--name', 'Tok', '--data-dir', dataDir]);
    const server = await startServer({ PARLEY_AUTH_ACCOUNTS_SECRET: '' }, { dataDir });
    try {
      const login = await api(server, null, 'POST', '/api/v1/sessions', { username: 'cli-alice', password: 'a long password' });
      assert.equal(login.status, 200);
      const me = await api(server, token.trim(), 'GET', '/api/v1/me');
      assert.deepEqual(me.body, { user: { id: 'cli-token-user', name: 'Tok' } });
    } finally {
      await server.stop();
    }
  });

  it('refuses metadata whose JSON escapes spell a lone surrogate, U+0000 or a __proto__ key, as the admin API does', async () => {
    for (const [metadata, expected] of [
      ['{"a":"x\\u0000"}', /metadata\.a is a string with U\+0000/],
      ['{"a":["\\ud800"]}', /metadata\.a\.0 is not well-formed Unicode/],
      ['{"k\\u0000":1}', /metadata\.k\ufffd is a string with U\+0000/],
      ['{"__proto__":{"x":1}}', /metadata\.__proto__ is a key named "__proto__"/],
    ] as const) {
      await assert.rejects(cli(['user', 'upsert', 'cli-meta', '--name', 'Meta', '--metadata', metadata, '--data-dir', dataDir]), (err: any) => {
        assert.equal(err.code, 1, err.stderr);
        assert.match(err.stderr, expected);
        return true;
      }, metadata);
    }
    const { stdout } = await cli(['user', 'upsert', 'cli-meta', '--name', 'Meta', '--metadata', '{"a":"\\u0001 ok"}', '--data-dir', dataDir]);
    assert.deepEqual(JSON.parse(stdout).created, true, 'nothing was stored by the refusals');
  });

  it('exits 2 with one line per configuration mistake', async () => {
    await assert.rejects(cli(['migrate', '--data-dir', dataDir], { PARLEY_LIMITS_MAX_MESSAGE_BYTES: 'lots', PARLEY_NO_SUCH_SETTING: '1' }), (err: any) => {
      assert.equal(err.code, 2);
      assert.match(err.stderr, /limits\.maxMessageBytes: .*PARLEY_LIMITS_MAX_MESSAGE_BYTES/);
      assert.match(err.stderr, /PARLEY_NO_SUCH_SETTING/);
      assert.doesNotMatch(err.stderr, /at .*\.js:\d+/, 'no stack trace');
      return true;
    });
  });
});
