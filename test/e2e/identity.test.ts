/**
 * Identities that cannot collide or be taken over (issue 8, section 5): product tokens never speak for built-in
 * accounts, tokens never rename, admin rights of product tokens only when configured, `parley token` resolves users
 * and never renames or silently creates, the admin upsert of product users, lookup by username, logout and
 * "log out everywhere" (revocation checked on every authentication and applied to live connections).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ParleyClient, ParleyClientError } from '../../packages/sdk/src/index.js';
import { RawClient } from '../helpers/raw-client.js';
import { ADMIN_TOKEN, EXTERNAL_SECRET, OWN_SECRET, api, register, signToken, startServer, type TestServer } from '../helpers/server.js';

const run = promisify(execFile);
const CLI = new URL('../../dist/cli.js', import.meta.url).pathname;
const PASSWORD = 'correct horse battery';

/** Connect and expect the server to refuse the token with a close code, without a welcome. */
async function refusedWith(server: TestServer, token: string): Promise<number> {
  const client = await RawClient.connect(server.wsUrl, token, { waitWelcome: false });
  const { code } = await client.waitClose(5000);
  assert.equal(client.eventsOf('welcome').length, 0, 'a refused connection never gets a welcome');
  return code;
}

async function login(server: TestServer, username: string, password = PASSWORD): Promise<{ status: number; body: any }> {
  return api(server, null, 'POST', '/api/v1/sessions', { username, password });
}

/** A product token (signed with the integrating product's secret) with extra claims. */
async function productToken(sub: string, claims: Record<string, unknown> = {}): Promise<string> {
  const { SignJWT } = await import('jose');
  return new SignJWT({ ...claims })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + 3600)
    .sign(new TextEncoder().encode(EXTERNAL_SECRET));
}

describe('identities', () => {
  let server: TestServer;
  let admin: { id: string; name: string; token: string };
  before(async () => {
    server = await startServer();
    const created = await api(server, ADMIN_TOKEN, 'POST', '/api/v1/admin/users', { username: 'id-root', password: PASSWORD, admin: true });
    assert.equal(created.status, 201);
    admin = { id: created.body.user.id, name: 'id-root', token: (await login(server, 'id-root')).body.token };
  });
  after(async () => {
    await server.stop();
  });

  describe('product tokens and built-in accounts live in separate namespaces', () => {
    it('refuses a product token whose sub is a built-in admin: 401 on REST and the admin API, 4500 on the WebSocket', async () => {
      const forged = await productToken(admin.id, { name: 'taken-over' });
      const adminApi = await api(server, forged, 'GET', '/api/v1/admin/users');
      assert.equal(adminApi.status, 401);
      assert.equal(adminApi.body.error.code, 'UNAUTHORIZED');
      assert.equal((await api(server, forged, 'GET', '/api/v1/me')).status, 401);
      assert.equal((await api(server, forged, 'GET', '/api/v1/conversations')).status, 401);
      assert.equal(await refusedWith(server, forged), 4500);
      const relogin = await login(server, 'id-root');
      assert.equal(relogin.status, 200, 'the admin still logs in under the same name');
      assert.equal(relogin.body.user.name, 'id-root');
    });

    it('never renames a built-in account from a token: the owner still logs in under the same name', async () => {
      const alice = await register(server, 'id-alice');
      await api(server, await productToken(alice.id, { name: 'mallory' }), 'GET', '/api/v1/me');
      // Our own issuer's token with another name claim (what `parley token --name` used to make) renames nothing either.
      const own = await server.token(alice.id, { name: 'mallory' });
      const me = await api(server, own, 'GET', '/api/v1/me');
      assert.deepEqual(me.body, { user: { id: alice.id, name: 'id-alice' } });
      const again = await login(server, 'id-alice');
      assert.equal(again.status, 200);
      assert.equal(again.body.user.id, alice.id);
      const listed = await api(server, ADMIN_TOKEN, 'GET', '/api/v1/admin/users?limit=1000');
      const row = listed.body.users.find((u: any) => u.id === alice.id);
      assert.equal(row.name, 'id-alice');
      assert.equal(row.origin, 'builtin');
    });

    it('takes a product user name claim as its display name, even when a built-in account has that name', async () => {
      await register(server, 'id-shared-name');
      const token = await productToken('prod-shared', { name: 'id-shared-name' });
      assert.deepEqual((await api(server, token, 'GET', '/api/v1/me')).body, { user: { id: 'prod-shared', name: 'id-shared-name' } });
      assert.equal((await login(server, 'id-shared-name')).status, 200, 'the account keeps its login name');
    });

    it('never renames a banned product user from a token: refused 403 / 4502 before anything is written', async () => {
      const sub = 'banned-product-user';
      assert.equal((await api(server, await productToken(sub, { name: 'Original' }), 'GET', '/api/v1/me')).status, 200);
      assert.equal((await api(server, ADMIN_TOKEN, 'POST', `/api/v1/admin/users/${sub}/ban`)).status, 200);
      const renaming = await productToken(sub, { name: 'Renamed while banned' });
      const refused = await api(server, renaming, 'GET', '/api/v1/me');
      assert.equal(refused.status, 403);
      assert.equal(refused.body.error.code, 'BANNED');
      assert.equal(await refusedWith(server, renaming), 4502);
      const users = await api(server, ADMIN_TOKEN, 'GET', '/api/v1/admin/users?limit=1000');
      assert.equal(users.body.users.find((u: { id: string }) => u.id === sub)?.name, 'Original');
    });

    it('gives a product token no admin rights by default, even with an admin-looking claim', async () => {
      for (const claims of [{ admin: true }, { isAdmin: true }, { role: 'admin' }]) {
        const res = await api(server, await productToken('prod-wannabe', claims), 'GET', '/api/v1/admin/users');
        assert.equal(res.status, 403, JSON.stringify(claims));
        assert.equal(res.body.error.code, 'FORBIDDEN');
      }
    });
  });

  describe('product users made by the operator (admin upsert)', () => {
    it('creates a product user before its first connection, so others can message it at once', async () => {
      const created = await api(server, ADMIN_TOKEN, 'PUT', '/api/v1/admin/users/cust-1', { name: 'Customer One', metadata: { plan: 'pro' } });
      assert.equal(created.status, 201);
      assert.equal(created.body.created, true);
      assert.deepEqual({ id: created.body.user.id, name: created.body.user.name, origin: created.body.user.origin, metadata: created.body.user.metadata },
        { id: 'cust-1', name: 'Customer One', origin: 'product', metadata: { plan: 'pro' } });
      assert.ok(!('passwordHash' in created.body.user) && !('tokenGeneration' in created.body.user));

      const sender = await register(server, 'id-sender');
      const client = await RawClient.connect(server.wsUrl, sender.token);
      const sent = await client.ok('message.send', { to: 'cust-1', key: 'k1', text: 'welcome aboard' });
      assert.equal(sent.seq, 1);
      client.close();

      // Their first connection, with the product's token, sees the message.
      const customer = await RawClient.connect(server.wsUrl, await productToken('cust-1'));
      assert.equal((await customer.waitFor('welcome')).user.name, 'Customer One');
      const conversations = (await customer.ok('conversation.list')).conversations;
      assert.equal(conversations[0].peer.id, sender.id);
      assert.equal(conversations[0].unread, 1);
      customer.close();
    });

    it('updates name and metadata (200), keeps metadata when absent and clears it with null', async () => {
      await api(server, ADMIN_TOKEN, 'PUT', '/api/v1/admin/users/cust-2', { name: 'Two', metadata: { a: 1 } });
      const renamed = await api(server, ADMIN_TOKEN, 'PUT', '/api/v1/admin/users/cust-2', { name: 'Two Renamed' });
      assert.equal(renamed.status, 200);
      assert.equal(renamed.body.created, false);
      assert.equal(renamed.body.user.name, 'Two Renamed');
      assert.deepEqual(renamed.body.user.metadata, { a: 1 });
      const cleared = await api(server, ADMIN_TOKEN, 'PUT', '/api/v1/admin/users/cust-2', { name: 'Two Renamed', metadata: null });
      assert.equal(cleared.body.user.metadata, null);
    });

    it('never touches a built-in account: 409 CONFLICT, and the account is unchanged', async () => {
      const bob = await register(server, 'id-bob');
      const res = await api(server, ADMIN_TOKEN, 'PUT', `/api/v1/admin/users/${bob.id}`, { name: 'hijacked' });
      assert.equal(res.status, 409);
      assert.equal(res.body.error.code, 'CONFLICT');
      assert.doesNotMatch(res.body.error.message, /SQLITE|constraint/i);
      assert.equal((await login(server, 'id-bob')).status, 200);
      assert.equal((await api(server, bob.token, 'GET', '/api/v1/me')).body.user.name, 'id-bob');
    });

    it('refuses bad input with catalogued errors: oversized metadata 413, no name 400, non-admin 403', async () => {
      const big = await api(server, ADMIN_TOKEN, 'PUT', '/api/v1/admin/users/cust-3', { name: 'Three', metadata: { blob: 'x'.repeat(5000) } });
      assert.equal(big.status, 413);
      assert.equal(big.body.error.code, 'MESSAGE_TOO_LARGE');
      const nameless = await api(server, ADMIN_TOKEN, 'PUT', '/api/v1/admin/users/cust-3', { metadata: {} });
      assert.equal(nameless.status, 400);
      assert.equal(nameless.body.error.code, 'INVALID_REQUEST');
      const longId = await api(server, ADMIN_TOKEN, 'PUT', `/api/v1/admin/users/${'x'.repeat(129)}`, { name: 'Long' });
      assert.equal(longId.status, 400);
      assert.equal(longId.body.error.code, 'INVALID_REQUEST');
      // Every length an id may have (1 to 128) works in a path.
      const longest = await api(server, ADMIN_TOKEN, 'PUT', `/api/v1/admin/users/${'y'.repeat(128)}`, { name: 'Longest' });
      assert.equal(longest.status, 201);
      const user = await register(server, 'id-plain');
      assert.equal((await api(server, user.token, 'PUT', '/api/v1/admin/users/cust-3', { name: 'Three' })).status, 403);
      const listed = await api(server, ADMIN_TOKEN, 'GET', '/api/v1/admin/users?limit=1000');
      assert.ok(!listed.body.users.some((u: any) => u.id === 'cust-3'), 'nothing was stored');
    });
  });

  describe('finding a user by username', () => {
    it('answers the exact username on the WebSocket and REST, and NOT_FOUND for anything else', async () => {
      const carol = await register(server, 'id-carol');
      const seeker = await register(server, 'id-seeker');
      const client = await RawClient.connect(server.wsUrl, seeker.token);
      assert.deepEqual(await client.ok('user.find', { username: 'id-carol' }), { user: { id: carol.id, name: 'id-carol' } });
      for (const username of ['id-caro', 'id-carol2', 'id-', '%', '*', 'nobody-at-all']) {
        assert.equal(await client.errorCode('user.find', { username }), 'NOT_FOUND', username);
      }
      // Surrounding white space is ignored, as at login.
      assert.deepEqual(await client.ok('user.find', { username: '  ID-Carol ' }), { user: { id: carol.id, name: 'id-carol' } });
      assert.equal(await client.errorCode('user.find', {}), 'INVALID_REQUEST');
      assert.equal(await client.errorCode('user.find', { username: 'x'.repeat(65) }), 'INVALID_REQUEST');
      // A product user's display name is not a username: it is not found (names of product users are not unique).
      await api(server, ADMIN_TOKEN, 'PUT', '/api/v1/admin/users/cust-findme', { name: 'id-findme' });
      assert.equal(await client.errorCode('user.find', { username: 'id-findme' }), 'NOT_FOUND');
      client.close();

      const rest = await api(server, seeker.token, 'GET', '/api/v1/users/by-name/id-carol');
      assert.equal(rest.status, 200);
      assert.deepEqual(rest.body, { user: { id: carol.id, name: 'id-carol' } });
      const missing = await api(server, seeker.token, 'GET', '/api/v1/users/by-name/id-caro');
      assert.equal(missing.status, 404);
      assert.equal(missing.body.error.code, 'NOT_FOUND');
      assert.equal((await api(server, null, 'GET', '/api/v1/users/by-name/id-carol')).status, 401);
    });

    it('lets the SDK find a user and open a direct conversation with them', async () => {
      const dana = await register(server, 'id-dana');
      const eve = await register(server, 'id-eve');
      const client = new ParleyClient({ url: server.wsUrl, token: eve.token, WebSocket: WebSocket as never, autoReconnect: false });
      try {
        await client.connect();
        const found = await client.findUser('id-dana');
        assert.deepEqual(found, { id: dana.id, name: 'id-dana' });
        const stored = await client.send({ to: found.id }, 'hi dana');
        assert.equal(stored.seq, 1);
        await assert.rejects(client.findUser('id-dan'), (err: unknown) => err instanceof ParleyClientError && err.code === 'NOT_FOUND');
      } finally {
        client.close();
      }
    });
  });

  describe('token lifetime, logout and logout everywhere', () => {
    it('issues built-in tokens for 24 hours by default', async () => {
      const before = Date.now();
      const session = await register(server, 'id-ttl');
      const res = await login(server, 'id-ttl');
      const lifetime = res.body.expiresAt - before;
      assert.ok(lifetime <= 24 * 3600 * 1000 + 5000 && lifetime >= 24 * 3600 * 1000 - 60_000, `lifetime ${lifetime} ms`);
      assert.ok(session.token);
    });

    it('logout revokes that token only: its connection closes with 4500, later use is refused, other sessions live on', async () => {
      await register(server, 'id-frank');
      const first = (await login(server, 'id-frank')).body.token as string;
      const second = (await login(server, 'id-frank')).body.token as string;
      const onFirst = await RawClient.connect(server.wsUrl, first);
      const onSecond = await RawClient.connect(server.wsUrl, second);
      assert.equal(onFirst.eventsOf('welcome').length, 1);

      const out = await api(server, first, 'DELETE', '/api/v1/sessions/current');
      assert.equal(out.status, 200);
      assert.equal((await onFirst.waitClose(5000)).code, 4500);
      assert.equal((await api(server, first, 'GET', '/api/v1/me')).status, 401);
      assert.equal(await refusedWith(server, first), 4500);
      // The other session is untouched.
      assert.deepEqual(await onSecond.ok('ping'), {});
      assert.equal((await api(server, second, 'GET', '/api/v1/me')).status, 200);
      onSecond.close();
    });

    it('logout everywhere revokes every token and closes every connection with 4500; a new login works', async () => {
      const grace = await register(server, 'id-grace');
      const other = (await login(server, 'id-grace')).body.token as string;
      const phone = await RawClient.connect(server.wsUrl, grace.token);
      const laptop = await RawClient.connect(server.wsUrl, other);
      const out = await api(server, other, 'DELETE', '/api/v1/sessions');
      assert.equal(out.status, 200);
      assert.equal((await phone.waitClose(5000)).code, 4500);
      assert.equal((await laptop.waitClose(5000)).code, 4500);
      for (const token of [grace.token, other]) {
        assert.equal((await api(server, token, 'GET', '/api/v1/me')).status, 401);
        assert.equal(await refusedWith(server, token), 4500);
      }
      const fresh = await login(server, 'id-grace');
      assert.equal(fresh.status, 200);
      assert.equal((await api(server, fresh.body.token, 'GET', '/api/v1/me')).status, 200);
      const client = await RawClient.connect(server.wsUrl, fresh.body.token);
      assert.equal((await client.waitFor('welcome')).user.id, grace.id);
      client.close();
    });

    it('revokes an admin account\'s rights with its token: the admin API refuses a logged-out admin token', async () => {
      const created = await api(server, ADMIN_TOKEN, 'POST', '/api/v1/admin/users', { username: 'id-admin2', password: PASSWORD, admin: true });
      const token = (await login(server, 'id-admin2')).body.token as string;
      assert.equal((await api(server, token, 'GET', '/api/v1/admin/users')).status, 200);
      assert.equal((await api(server, token, 'DELETE', '/api/v1/sessions/current')).status, 200);
      assert.equal((await api(server, token, 'GET', '/api/v1/admin/users')).status, 401);
      assert.ok(created.body.user.id);
    });

    it('lets an operator log a user out everywhere (admin API), closing their connections with 4500', async () => {
      const henry = await register(server, 'id-henry');
      const client = await RawClient.connect(server.wsUrl, henry.token);
      const res = await api(server, ADMIN_TOKEN, 'POST', `/api/v1/admin/users/${henry.id}/logout`);
      assert.equal(res.status, 200);
      assert.equal((await client.waitClose(5000)).code, 4500);
      assert.equal((await api(server, henry.token, 'GET', '/api/v1/me')).status, 401);
      assert.equal((await api(server, ADMIN_TOKEN, 'POST', '/api/v1/admin/users/no-such-user/logout')).status, 404);
    });

    it('answers logout with a product token INVALID_REQUEST (the product revokes its own tokens)', async () => {
      for (const path of ['/api/v1/sessions/current', '/api/v1/sessions']) {
        const res = await api(server, await productToken('prod-logout'), 'DELETE', path);
        assert.equal(res.status, 400, path);
        assert.equal(res.body.error.code, 'INVALID_REQUEST', path);
      }
      assert.equal((await api(server, null, 'DELETE', '/api/v1/sessions')).status, 401);
    });

    it('closes only the connections made with our own tokens when a user is logged out everywhere', async () => {
      // A product user may also hold a token of our own (`parley token --create`); only that one is revoked.
      const id = 'prod-two-tokens';
      const viaProduct = await RawClient.connect(server.wsUrl, await productToken(id, { name: 'Two Tokens' }));
      const viaOwn = await RawClient.connect(server.wsUrl, await server.token(id));
      assert.equal((await api(server, ADMIN_TOKEN, 'POST', `/api/v1/admin/users/${id}/logout`)).status, 200);
      assert.equal((await viaOwn.waitClose(5000)).code, 4500);
      // The product-token connection is still served: a request sent after the logout is answered.
      assert.deepEqual(await viaProduct.ok('ping', {}), {});
      assert.equal(viaProduct.closed, null);
      viaProduct.close();
    });

    it('refuses a token issued in the future (iat beyond the clock tolerance) and ids "." and ".."', async () => {
      const { SignJWT } = await import('jose');
      const now = Math.floor(Date.now() / 1000);
      const future = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('prod-future')
        .setIssuedAt(now + 3600).setExpirationTime(now + 7200).sign(new TextEncoder().encode(EXTERNAL_SECRET));
      assert.equal((await api(server, future, 'GET', '/api/v1/me')).status, 401);
      assert.equal(await refusedWith(server, future), 4500);
      for (const sub of ['.', '..']) {
        assert.equal((await api(server, await productToken(sub), 'GET', '/api/v1/me')).status, 401, sub);
      }
      const user = await register(server, 'id-dots');
      const client = await RawClient.connect(server.wsUrl, user.token);
      for (const userId of ['.', '..']) assert.equal(await client.errorCode('direct.open', { userId }), 'INVALID_REQUEST', userId);
      // Through a raw request (URL libraries resolve "..", even percent-encoded), the route sees ".." and refuses it.
      const { request } = await import('node:http');
      const status = await new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: server.port, path: '/api/v1/admin/users/%2E%2E', method: 'PUT', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end(JSON.stringify({ name: 'dots' }));
      });
      assert.equal(status, 400);
      client.close();
    });
  });

  describe('parley token', () => {
    const cli = (args: string[]) =>
      run(process.execPath, [CLI, ...args, '--data-dir', server.dataDir], { env: { PATH: process.env.PATH ?? '', PARLEY_AUTH_ACCOUNTS_SECRET: OWN_SECRET } });

    it('takes a username or an id, says which user it resolved, and never renames the account', async () => {
      const ivy = await register(server, 'id-ivy');
      const byName = await cli(['token', 'id-ivy']);
      assert.match(byName.stderr, new RegExp(`token for user ${ivy.id} \\("id-ivy", built-in account\\), found by username`));
      assert.deepEqual((await api(server, byName.stdout.trim(), 'GET', '/api/v1/me')).body, { user: { id: ivy.id, name: 'id-ivy' } });
      const byId = await cli(['token', ivy.id]);
      assert.match(byId.stderr, /found by id/);
      assert.deepEqual((await api(server, byId.stdout.trim(), 'GET', '/api/v1/me')).body, { user: { id: ivy.id, name: 'id-ivy' } });
      assert.equal((await login(server, 'id-ivy')).status, 200, 'the owner can still log in');
    });

    it('refuses an unknown user without creating one, and creates a product user only with --create', async () => {
      await assert.rejects(cli(['token', 'id-nobody']), (err: any) => {
        assert.equal(err.code, 1);
        assert.match(err.stderr, /no user has the id or username "id-nobody"; nothing was created/);
        return true;
      });
      const users = await api(server, ADMIN_TOKEN, 'GET', '/api/v1/admin/users?limit=1000');
      assert.ok(!users.body.users.some((u: any) => u.id === 'id-nobody' || u.name === 'id-nobody'));

      const made = await cli(['token', 'id-newbie', '--create', '--name', 'New Bie']);
      assert.match(made.stderr, /created now as a product user/);
      assert.deepEqual((await api(server, made.stdout.trim(), 'GET', '/api/v1/me')).body, { user: { id: 'id-newbie', name: 'New Bie' } });
    });

    it('refuses --name for an existing user with a clear message, never raw SQLite text', async () => {
      await register(server, 'id-jack');
      await register(server, 'id-kate');
      await assert.rejects(cli(['token', 'id-jack', '--name', 'id-kate']), (err: any) => {
        assert.equal(err.code, 1);
        assert.match(err.stderr, /never renames/);
        assert.doesNotMatch(err.stderr, /SQLITE|constraint/i);
        return true;
      });
      assert.equal((await login(server, 'id-jack')).status, 200);
      assert.equal((await login(server, 'id-kate')).status, 200);
    });

    it('logs a user out everywhere with `parley admin logout`', async () => {
      const mia = await register(server, 'id-mia');
      const client = await RawClient.connect(server.wsUrl, mia.token);
      await run(process.execPath, [CLI, 'admin', 'logout', mia.id, '--url', server.url, '--admin-token', ADMIN_TOKEN], { env: { PATH: process.env.PATH ?? '' } });
      assert.equal((await client.waitClose(5000)).code, 4500);
      assert.equal((await api(server, mia.token, 'GET', '/api/v1/me')).status, 401);
    });

    it('creates and updates product users with `parley user upsert`, refusing a built-in id', async () => {
      const made = await cli(['user', 'upsert', 'cust-cli', '--name', 'Cli Customer', '--metadata', '{"tier":2}']);
      const body = JSON.parse(made.stdout);
      assert.equal(body.created, true);
      assert.deepEqual([body.user.id, body.user.name, body.user.origin, body.user.metadata], ['cust-cli', 'Cli Customer', 'product', { tier: 2 }]);
      const leo = await register(server, 'id-leo');
      await assert.rejects(cli(['user', 'upsert', leo.id, '--name', 'stolen']), (err: any) => {
        assert.equal(err.code, 1);
        assert.match(err.stderr, /CONFLICT: this id belongs to a built-in account/);
        return true;
      });
      await assert.rejects(cli(['user', 'upsert', 'cust-cli', '--name', 'X', '--metadata', '{bad']), /--metadata must be JSON/);
      assert.equal((await login(server, 'id-leo')).status, 200);
    });
  });
});

describe('admin rights of product tokens when configured (auth.jwt.adminClaim)', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ PARLEY_AUTH_JWT_ADMIN_CLAIM: 'parley_admin' });
  });
  after(async () => {
    await server.stop();
  });

  it('grants the admin API to a product token whose configured claim is exactly true, and to no other', async () => {
    assert.equal((await api(server, await productToken('ops-person', { parley_admin: true }), 'GET', '/api/v1/admin/users')).status, 200);
    for (const value of [false, 'true', 1, null]) {
      assert.equal((await api(server, await productToken('ops-person', { parley_admin: value }), 'GET', '/api/v1/admin/users')).status, 403, String(value));
    }
    assert.equal((await api(server, await productToken('ops-person', { admin: true }), 'GET', '/api/v1/admin/users')).status, 403);
    // The claim does not bridge namespaces: a product token naming a built-in account is still refused.
    const account = await register(server, 'claim-account');
    assert.equal((await api(server, await productToken(account.id, { parley_admin: true }), 'GET', '/api/v1/admin/users')).status, 401);
    // Our own tokens never carry the claim's meaning.
    assert.equal((await api(server, await signToken(OWN_SECRET, 'parley', account.id), 'GET', '/api/v1/admin/users')).status, 403);
  });
});

describe('revocations outlive the clock tolerance', () => {
  let server: TestServer;
  before(async () => {
    // Short tokens, the default 30 s tolerance: a token stays acceptable for 30 s past its exp.
    server = await startServer({ PARLEY_AUTH_ACCOUNTS_TOKEN_TTL_SECONDS: '2' });
  });
  after(async () => {
    await server.stop();
  });

  it('keeps refusing a logged-out token after its exp, while the tolerance would still accept it, even after a purge', async () => {
    const ann = await register(server, 'rev-ann');
    const { body } = await login(server, 'rev-ann');
    assert.equal((await api(server, body.token, 'DELETE', '/api/v1/sessions/current')).status, 200);
    assert.equal((await api(server, body.token, 'GET', '/api/v1/me')).status, 401);
    // Time itself is the condition here: wait until the token's exp has passed (it is inside the tolerance still).
    while (Date.now() < body.expiresAt + 500) await new Promise((r) => setTimeout(r, 100));
    // Another logout stores a revocation and purges the expired ones.
    assert.equal((await api(server, ann.token, 'DELETE', '/api/v1/sessions/current')).status, 200);
    assert.equal((await api(server, body.token, 'GET', '/api/v1/me')).status, 401);
    assert.equal(await refusedWith(server, body.token), 4500);
  });
});
