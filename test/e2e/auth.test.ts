import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RawClient } from '../helpers/raw-client.js';
import { ADMIN_TOKEN, EXTERNAL_SECRET, api, register, signToken, startServer, type TestServer } from '../helpers/server.js';

const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
/** An unsigned token (`alg: none`), crafted by hand: no library will make one. */
const unsignedToken = (claims: Record<string, unknown>): string =>
  `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ exp: Math.floor(Date.now() / 1000) + 3600, iat: Math.floor(Date.now() / 1000), ...claims })}.`;

/** Connect and expect the server to refuse the token with a close code (the upgrade itself completes). */
async function refusedWith(server: TestServer, token: string | null, options: Parameters<typeof RawClient.connect>[2] = {}): Promise<{ code: number; client: RawClient }> {
  const client = await RawClient.connect(server.wsUrl, token, { waitWelcome: false, ...options });
  const { code } = await client.waitClose(5000);
  assert.equal(client.eventsOf('welcome').length, 0, 'a refused connection never gets a welcome');
  return { code, client };
}

async function post(server: TestServer, path: string, body: unknown): Promise<{ status: number; body: any }> {
  return api(server, null, 'POST', path, body);
}

describe('authentication', () => {
  let server: TestServer;
  let alice: { id: string; name: string; token: string };
  let bob: { id: string; name: string; token: string };
  before(async () => {
    server = await startServer();
    alice = await register(server, 'auth-alice');
    bob = await register(server, 'auth-bob');
  });
  after(async () => {
    await server.stop();
  });

  describe('where the token travels', () => {
    for (const via of ['header', 'protocol', 'query'] as const) {
      it(`accepts the token in the ${via === 'protocol' ? 'bearer.<jwt> subprotocol' : via} and selects parley.v1, never the token`, async () => {
        const client = await RawClient.connect(server.wsUrl, alice.token, { via });
        const welcome = await client.waitFor('welcome');
        assert.equal(welcome.user.id, alice.id);
        assert.equal(welcome.user.name, 'auth-alice');
        assert.equal(client.ws.protocol, 'parley.v1');
        assert.ok(!client.ws.protocol.includes(alice.token));
        assert.deepEqual(await client.ok('ping'), {});
        client.close();
      });
    }

    it('selects parley.v1 even when the bearer subprotocol is offered first', async () => {
      const client = await RawClient.connect(server.wsUrl, null, { protocols: [`bearer.${alice.token}`, 'parley.v1'] });
      assert.equal((await client.waitFor('welcome')).user.id, alice.id);
      assert.equal(client.ws.protocol, 'parley.v1');
      client.close();
    });
  });

  describe('external tokens', () => {
    it('accepts an HS256 token signed with the external secret and no issuer; the user appears with its name claim', async () => {
      const token = await signToken(EXTERNAL_SECRET, null, 'ext-user-1', { name: 'Ext One' });
      const client = await RawClient.connect(server.wsUrl, token);
      const welcome = await client.waitFor('welcome');
      assert.deepEqual(welcome.user, { id: 'ext-user-1', name: 'Ext One' });
      const a = await RawClient.connect(server.wsUrl, alice.token);
      const { conversation } = await a.ok('direct.open', { userId: 'ext-user-1' });
      assert.deepEqual(conversation.peer, { id: 'ext-user-1', name: 'Ext One' });
      const { members } = await a.ok('member.list', { conversationId: conversation.id });
      assert.equal(members.find((m: any) => m.userId === 'ext-user-1').name, 'Ext One');
      client.close();
      a.close();
    });

    it('accepts an external token of another issuer', async () => {
      const token = await signToken(EXTERNAL_SECRET, 'https://product.example', 'ext-user-2', { name: 'Ext Two' });
      const client = await RawClient.connect(server.wsUrl, token);
      assert.deepEqual((await client.waitFor('welcome')).user, { id: 'ext-user-2', name: 'Ext Two' });
      const me = await api(server, token, 'GET', '/api/v1/me');
      assert.equal(me.status, 200);
      assert.deepEqual(me.body.user, { id: 'ext-user-2', name: 'Ext Two' });
      client.close();
    });
  });

  describe('refused tokens close with 4500', () => {
    it('refuses a connection without a token', async () => {
      assert.equal((await refusedWith(server, null)).code, 4500);
    });

    it('refuses garbage', async () => {
      assert.equal((await refusedWith(server, 'not-a-jwt-at-all')).code, 4500);
      assert.equal((await refusedWith(server, 'aaa.bbb.ccc', { via: 'header' })).code, 4500);
    });

    it('refuses a token signed with a wrong secret, of either issuer', async () => {
      const wrong = 'a-completely-different-secret-0123456789-xyz';
      assert.equal((await refusedWith(server, await signToken(wrong, null, alice.id))).code, 4500);
      assert.equal((await refusedWith(server, await signToken(wrong, 'parley', alice.id))).code, 4500);
    });

    it('refuses an unsigned alg:none token, with or without the own issuer', async () => {
      assert.equal((await refusedWith(server, unsignedToken({ sub: alice.id }), { via: 'header' })).code, 4500);
      assert.equal((await refusedWith(server, unsignedToken({ sub: alice.id, iss: 'parley' }), { via: 'query' })).code, 4500);
    });

    it("refuses a token signed with the external secret that claims the server's own issuer", async () => {
      assert.equal((await refusedWith(server, await signToken(EXTERNAL_SECRET, 'parley', alice.id))).code, 4500);
    });

    it('refuses an expired token (beyond the 30 s clock tolerance), own or external', async () => {
      assert.equal((await refusedWith(server, await server.token(alice.id, { expiresInSeconds: -60 }))).code, 4500);
      assert.equal((await refusedWith(server, await signToken(EXTERNAL_SECRET, null, 'ext-user-1', { expiresInSeconds: -60 }))).code, 4500);
    });

    it('answers REST without a usable token with 401 UNAUTHORIZED and the error body', async () => {
      for (const token of [null, 'garbage', await server.token(alice.id, { expiresInSeconds: -60 })]) {
        const res = await api(server, token, 'GET', '/api/v1/conversations');
        assert.equal(res.status, 401);
        assert.deepEqual(Object.keys(res.body), ['error']);
        assert.equal(res.body.error.code, 'UNAUTHORIZED');
        assert.equal(typeof res.body.error.message, 'string');
        assert.equal(res.body.error.temporary, false);
      }
    });
  });

  it('refuses a client that offers only an unsupported protocol version with 4501', async () => {
    const { code } = await refusedWith(server, alice.token, { via: 'header', protocols: ['parley.v9'] });
    assert.equal(code, 4501);
  });

  describe('built-in accounts', () => {
    it('registers and logs in; the login token connects as the same user', async () => {
      const created = await post(server, '/api/v1/accounts', { username: 'acct-carol', password: 'long enough password' });
      assert.equal(created.status, 201);
      assert.equal(created.body.user.name, 'acct-carol');
      assert.equal(typeof created.body.token, 'string');
      const login = await post(server, '/api/v1/sessions', { username: 'acct-carol', password: 'long enough password' });
      assert.equal(login.status, 200);
      assert.equal(login.body.user.id, created.body.user.id);
      const client = await RawClient.connect(server.wsUrl, login.body.token);
      assert.deepEqual((await client.waitFor('welcome')).user, { id: created.body.user.id, name: 'acct-carol' });
      client.close();
    });

    it('answers a wrong password or an unknown name with 401 INVALID_CREDENTIALS', async () => {
      const wrong = await post(server, '/api/v1/sessions', { username: 'auth-alice', password: 'not the password' });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.body.error.code, 'INVALID_CREDENTIALS');
      const unknown = await post(server, '/api/v1/sessions', { username: 'nobody-here', password: 'whatever123' });
      assert.equal(unknown.status, 401);
      assert.equal(unknown.body.error.code, 'INVALID_CREDENTIALS');
    });

    it('answers a taken username with 409 ACCOUNT_EXISTS', async () => {
      const res = await post(server, '/api/v1/accounts', { username: 'auth-alice', password: 'another password' });
      assert.equal(res.status, 409);
      assert.equal(res.body.error.code, 'ACCOUNT_EXISTS');
    });

    it('answers a password shorter than the minimum with 400 WEAK_PASSWORD', async () => {
      const res = await post(server, '/api/v1/accounts', { username: 'acct-short', password: 'short' });
      assert.equal(res.status, 400);
      assert.equal(res.body.error.code, 'WEAK_PASSWORD');
      assert.equal(res.body.error.details.reason, 'too_short');
      const login = await post(server, '/api/v1/sessions', { username: 'acct-short', password: 'short' });
      assert.equal(login.status, 401, 'the refused account was not created');
    });
  });

  describe('the user id is always the authenticated one', () => {
    it('stamps messages with the sender of the token and refuses a senderId in the request', async () => {
      const a = await RawClient.connect(server.wsUrl, alice.token);
      const b = await RawClient.connect(server.wsUrl, bob.token);
      const forged = await a.request('message.send', { to: bob.id, key: 'forge-1', text: 'from bob?', senderId: bob.id });
      assert.equal(forged.error?.code, 'INVALID_REQUEST');
      const message = await a.ok('message.send', { to: bob.id, key: 'honest-1', text: 'from alice' });
      assert.equal((await b.waitFor('message.new', (m) => m.id === message.id)).senderId, alice.id);
      const { messages } = await b.ok('history.after', { conversationId: message.conversationId, afterSeq: 0 });
      assert.deepEqual(messages.map((m: any) => [m.text, m.senderId]), [['from alice', alice.id]], 'the forged message was not stored');
      a.close();
      b.close();
    });
  });

  describe('banned users', () => {
    it('closes every connection of a banned user with 4502 at once, then refuses connects, REST and login', async () => {
      const mallory = await register(server, 'auth-mallory', 'mallory password');
      const phone = await RawClient.connect(server.wsUrl, mallory.token);
      const laptop = await RawClient.connect(server.wsUrl, mallory.token, { via: 'header' });
      const bystander = await RawClient.connect(server.wsUrl, alice.token);
      const started = Date.now();
      const ban = await api(server, ADMIN_TOKEN, 'POST', `/api/v1/admin/users/${mallory.id}/ban`);
      assert.equal(ban.status, 200);
      assert.equal(ban.body.user.banned, true);
      assert.equal((await phone.waitClose(2000)).code, 4502);
      assert.equal((await laptop.waitClose(2000)).code, 4502);
      assert.ok(Date.now() - started < 1500, 'closed at once, not at the next heartbeat');
      assert.deepEqual(await bystander.ok('ping'), {}, 'other users are untouched');

      assert.equal((await refusedWith(server, mallory.token)).code, 4502);
      const rest = await api(server, mallory.token, 'GET', '/api/v1/conversations');
      assert.equal(rest.status, 403);
      assert.equal(rest.body.error.code, 'BANNED');
      const login = await post(server, '/api/v1/sessions', { username: 'auth-mallory', password: 'mallory password' });
      assert.equal(login.status, 403);
      assert.equal(login.body.error.code, 'BANNED');
      bystander.close();
    });

    it('refuses the ban without the admin token', async () => {
      const res = await api(server, alice.token, 'POST', `/api/v1/admin/users/${bob.id}/ban`);
      assert.equal(res.status, 403);
      assert.equal(res.body.error.code, 'FORBIDDEN');
      const b = await RawClient.connect(server.wsUrl, bob.token);
      assert.equal((await b.waitFor('welcome')).user.id, bob.id);
      b.close();
    });
  });
});

describe('a token that expires while connected', () => {
  let server: TestServer;
  before(async () => {
    // No clock tolerance: a connection is closed at exp + tolerance (test/e2e/lifecycle.test.ts covers a tolerance).
    server = await startServer({ PARLEY_HEARTBEAT_INTERVAL_MS: '200', PARLEY_HEARTBEAT_TIMEOUT_MS: '200', PARLEY_AUTH_JWT_CLOCK_TOLERANCE_SECONDS: '0' });
  });
  after(async () => {
    await server.stop();
  });

  it('is closed with 4004 when the token expires, while a client with a long-lived token stays', async () => {
    const shortLived = await RawClient.connect(server.wsUrl, await server.token('expiring-user', { expiresInSeconds: 2 }));
    const longLived = await RawClient.connect(server.wsUrl, await server.token('staying-user'));
    assert.equal((await shortLived.waitFor('welcome')).user.id, 'expiring-user');
    const { code } = await shortLived.waitClose(5000);
    assert.equal(code, 4004);
    assert.equal(longLived.closed, null);
    assert.deepEqual(await longLived.ok('ping'), {});
    longLived.close();
  });
});

describe('with built-in accounts turned off', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ PARLEY_AUTH_ACCOUNTS_ENABLED: 'false' });
  });
  after(async () => {
    await server.stop();
  });

  it('answers register and login with 403 ACCOUNTS_DISABLED, while tokens still work', async () => {
    const reg = await post(server, '/api/v1/accounts', { username: 'nope-user', password: 'long enough password' });
    assert.equal(reg.status, 403);
    assert.equal(reg.body.error.code, 'ACCOUNTS_DISABLED');
    const login = await post(server, '/api/v1/sessions', { username: 'nope-user', password: 'long enough password' });
    assert.equal(login.status, 403);
    assert.equal(login.body.error.code, 'ACCOUNTS_DISABLED');
    const client = await RawClient.connect(server.wsUrl, await signToken(EXTERNAL_SECRET, null, 'product-user', { name: 'Product User' }));
    assert.equal((await client.waitFor('welcome')).user.id, 'product-user');
    client.close();
  });
});
