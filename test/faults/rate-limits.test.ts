import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { RawClient, sleep } from '../helpers/raw-client.js';
import { api, register, startServer, type TestServer } from '../helpers/server.js';

/**
 * A REST call from a chosen loopback address (127.0.0.x: every one reaches the server on Linux), so one test process
 * can act as several clients. Returns status, Retry-After header and parsed body.
 */
function callFrom(server: TestServer, from: string, method: string, path: string, body?: unknown, extraHeaders: Record<string, string> = {}): Promise<{ status: number; retryAfter: string | undefined; body: any }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request({
      host: '127.0.0.1', port: server.port, path, method, localAddress: from,
      headers: { ...extraHeaders, ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, retryAfter: res.headers['retry-after'] as string | undefined, body: text ? JSON.parse(text) : null }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(payload);
  });
}

const login = (server: TestServer, from: string, username: string, password: string) =>
  callFrom(server, from, 'POST', '/api/v1/sessions', { username, password });

function assertRateLimited(reply: { status: number; retryAfter?: string; body: any }, what: string): number {
  assert.equal(reply.status, 429, `${what}: ${JSON.stringify(reply.body)}`);
  assert.equal(reply.body.error.code, 'RATE_LIMITED');
  assert.equal(reply.body.error.temporary, true);
  const wait = reply.body.error.retryAfterMs;
  assert.ok(Number.isInteger(wait) && wait >= 1, `${what}: retryAfterMs ${wait}`);
  assert.equal(reply.retryAfter, String(Math.ceil(wait / 1000)), `${what}: Retry-After matches retryAfterMs`);
  return wait;
}

describe('limits: the per-user message rate', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ PARLEY_LIMITS_USER_MESSAGE_RATE_PER_SECOND: '0.5', PARLEY_LIMITS_USER_MESSAGE_RATE_BURST: '5' });
  });
  after(async () => {
    await server.stop();
  });

  it('survives the last connection closing: reconnecting does not refill the budget', async () => {
    const alice = await register(server, 'reconnect-alice');
    let client = await RawClient.connect(server.wsUrl, alice.token);
    const { conversation } = await client.ok('conversation.create', { name: 'r' });
    const sent: any[] = [];
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 3; i++) sent.push(await client.request('message.send', { conversationId: conversation.id, key: `k${round}-${i}`, text: 'x' }));
      client.close();
      await client.waitClose();
      client = await RawClient.connect(server.wsUrl, alice.token);
    }
    const accepted = sent.filter((r) => r.result).length;
    assert.ok(accepted <= 6, `${accepted} of 12 sends accepted with a budget of 5 (+1 refill)`);
    const refused = sent.filter((r) => r.error);
    assert.ok(refused.every((r) => r.error.code === 'RATE_LIMITED' && r.error.retryAfterMs >= 1 && r.error.retryAfterMs <= 2000), JSON.stringify(refused[0]));
    const { messages } = await client.ok('history.after', { conversationId: conversation.id, afterSeq: 0 });
    assert.equal(messages.length, accepted, 'refused sends stored nothing');
    client.close();
  });

  it('is one budget for the WebSocket and the REST message routes', async () => {
    const carol = await register(server, 'rest-carol');
    const client = await RawClient.connect(server.wsUrl, carol.token);
    const { conversation } = await client.ok('conversation.create', { name: 'rest' });
    for (let i = 0; i < 3; i++) await client.ok('message.send', { conversationId: conversation.id, key: `ws${i}`, text: 'x' });
    const path = `/api/v1/conversations/${conversation.id}/messages`;
    const replies = [];
    for (let i = 0; i < 5; i++) replies.push(await api(server, carol.token, 'POST', path, { key: `rest${i}`, text: 'y' }));
    const created = replies.filter((r) => r.status === 201);
    assert.ok(created.length >= 2 && created.length <= 3, JSON.stringify(replies.map((r) => r.status)));
    assert.equal(created[0].body.duplicate, false);
    assert.equal(typeof created[0].body.seq, 'number');
    for (const r of replies.filter((x) => x.status !== 201)) {
      assert.equal(r.status, 429);
      assert.equal(r.body.error.code, 'RATE_LIMITED');
      assert.ok(r.body.error.retryAfterMs >= 1);
    }
    const refusedOnWs = await client.request('message.send', { conversationId: conversation.id, key: 'ws-late', text: 'x' });
    assert.equal(refusedOnWs.error?.code, 'RATE_LIMITED', 'REST sends spent the WebSocket budget too');
    const edit = await api(server, carol.token, 'PATCH', `${path}/1`, { text: 'edited' });
    assert.equal(edit.status, 429, 'edits spend it as well');
    client.close();
  });

  it('tells when to retry on the per-connection rate too', async () => {
    const bob = await register(server, 'conn-rate-bob');
    const client = await RawClient.connect(server.wsUrl, bob.token);
    const replies = await Promise.all(Array.from({ length: 150 }, () => client.request('ping')));
    const refused = replies.filter((r) => r.error);
    assert.ok(refused.length > 0);
    assert.ok(refused.every((r) => r.error.code === 'RATE_LIMITED' && Number.isInteger(r.error.retryAfterMs) && r.error.retryAfterMs >= 1));
    client.close();
  });
});

describe('limits: the per-user search rate', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ PARLEY_LIMITS_USER_SEARCH_RATE_PER_SECOND: '0.5', PARLEY_LIMITS_USER_SEARCH_RATE_BURST: '4' });
  });
  after(async () => {
    await server.stop();
  });

  it('is one budget per user across connections and the REST API; other users keep theirs', async () => {
    const dora = await register(server, 'search-dora');
    const first = await RawClient.connect(server.wsUrl, dora.token);
    const second = await RawClient.connect(server.wsUrl, dora.token);
    const replies = [
      await first.request('conversation.search', { query: 'abc' }),
      await second.request('conversation.search', { query: 'abc' }),
      await first.request('conversation.search', { query: '' }),
    ];
    assert.ok(replies.every((r) => Array.isArray(r.result?.conversations)), JSON.stringify(replies));
    const rest = await api(server, dora.token, 'GET', '/api/v1/conversations/search?query=abc');
    assert.equal(rest.status, 200, 'the 4th search of the burst, over REST');
    const refusedRest = await api(server, dora.token, 'GET', '/api/v1/conversations/search?query=abc');
    assert.equal(refusedRest.status, 429);
    assert.equal(refusedRest.body.error.code, 'RATE_LIMITED');
    assert.equal(refusedRest.body.error.message, 'too many searches; slow down');
    const refusedWs = await second.request('conversation.search', { query: 'abc' });
    assert.equal(refusedWs.error?.code, 'RATE_LIMITED', 'the REST searches spent the WebSocket budget too');
    assert.ok(refusedWs.error.retryAfterMs >= 1 && refusedWs.error.retryAfterMs <= 2000, JSON.stringify(refusedWs));
    assert.ok((await first.request('ping')).result, 'other requests are not limited by it');

    const erin = await register(server, 'search-erin');
    const other = await RawClient.connect(server.wsUrl, erin.token);
    assert.ok((await other.request('conversation.search', { query: 'abc' })).result, 'another user has a budget of its own');
    await sleep(refusedWs.error.retryAfterMs + 20);
    assert.ok((await first.request('conversation.search', { query: 'abc' })).result, 'the budget refills at its rate');
    for (const c of [first, second, other]) c.close();
  });
});

describe('limits: user lookups', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ PARLEY_LIMITS_USER_LOOKUP_RATE_PER_SECOND: '0.5', PARLEY_LIMITS_USER_LOOKUP_RATE_BURST: '3' });
  });
  after(async () => {
    await server.stop();
  });

  it('gives user.find a budget per user across connections, so names cannot be guessed at the connection rate', async () => {
    const guesser = await register(server, 'lookup-guesser');
    await register(server, 'lookup-target');
    const connections = await Promise.all([0, 1, 2].map(() => RawClient.connect(server.wsUrl, guesser.token)));
    const replies = [];
    for (const [i, name] of ['lookup-target', 'nobody-1', 'nobody-2', 'nobody-3', 'lookup-target'].entries()) {
      replies.push(await connections[i % 3].request('user.find', { username: name }));
    }
    assert.equal(replies[0].result?.user.name, 'lookup-target');
    assert.deepEqual(replies.slice(1, 3).map((r) => r.error?.code), ['NOT_FOUND', 'NOT_FOUND']);
    for (const r of replies.slice(3)) {
      assert.equal(r.error?.code, 'RATE_LIMITED', JSON.stringify(r));
      assert.equal(r.error.message, 'too many user lookups; slow down');
      assert.ok(r.error.retryAfterMs >= 1);
    }
    for (const c of connections) c.close();
  });
});

describe('limits: REST per client address', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({
      PARLEY_LIMITS_REST_RATE_PER_SECOND: '1',
      PARLEY_LIMITS_REST_RATE_BURST: '20',
      PARLEY_LIMITS_REGISTRATION_RATE_PER_SECOND: '0.001',
      PARLEY_LIMITS_REGISTRATION_RATE_BURST: '3',
    });
  });
  after(async () => {
    await server.stop();
  });

  it('refuses API requests past the address budget with 429, retryAfterMs and Retry-After; other addresses are unaffected', async () => {
    const replies = [];
    for (let i = 0; i < 30; i++) replies.push(await callFrom(server, '127.0.0.5', 'GET', '/api/v1/me'));
    assert.ok(replies.slice(0, 15).every((r) => r.status === 401), 'the budget is spent first');
    const refused = replies.filter((r) => r.status === 429);
    assert.ok(refused.length >= 9, `${refused.length} refused`);
    for (const r of refused) assertRateLimited(r, 'GET /api/v1/me');
    assert.equal((await callFrom(server, '127.0.0.6', 'GET', '/api/v1/me')).status, 401, 'another address has its own budget');
    assert.equal((await callFrom(server, '127.0.0.5', 'GET', '/healthz')).status, 200, 'health checks are not API requests');
  });

  it('ignores X-Forwarded-For from a client that is not a trusted proxy (it cannot mint budgets)', async () => {
    const replies = [];
    for (let i = 0; i < 30; i++) {
      replies.push(await callFrom(server, '127.0.0.9', 'GET', '/api/v1/me', undefined, { 'x-forwarded-for': `198.51.100.${i}` }));
    }
    assert.ok(replies.filter((r) => r.status === 429).length >= 9, JSON.stringify(replies.map((r) => r.status)));
  });

  it('limits registrations per address', async () => {
    const statuses = [];
    for (let i = 0; i < 6; i++) {
      const reply = await callFrom(server, '127.0.0.7', 'POST', '/api/v1/accounts', { username: `reg-${i}`, password: 'correct horse battery' });
      statuses.push(reply.status);
      if (reply.status === 429) assertRateLimited(reply, 'registration');
    }
    assert.deepEqual(statuses, [201, 201, 201, 429, 429, 429]);
    assert.equal((await callFrom(server, '127.0.0.8', 'POST', '/api/v1/accounts', { username: 'reg-other', password: 'correct horse battery' })).status, 201);
  });
});

describe('limits: behind a trusted reverse proxy (server.trustedProxies)', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({
      PARLEY_SERVER_TRUSTED_PROXIES: '127.0.0.30,127.0.1.0/24',
      PARLEY_LIMITS_REST_RATE_PER_SECOND: '1',
      PARLEY_LIMITS_REST_RATE_BURST: '5',
    });
  });
  after(async () => {
    await server.stop();
  });

  it('counts each forwarded client address on its own, not the proxy\'s', async () => {
    const viaProxy = (proxy: string, client: string) => callFrom(server, proxy, 'GET', '/api/v1/me', undefined, { 'x-forwarded-for': client });
    const first = [];
    for (let i = 0; i < 8; i++) first.push((await viaProxy('127.0.0.30', '203.0.113.5')).status);
    assert.deepEqual(first.slice(0, 5), [401, 401, 401, 401, 401]);
    assert.ok(first.slice(5).every((s) => s === 429), `one client behind the proxy is limited: ${first.join(' ')}`);
    assert.equal((await viaProxy('127.0.0.30', '203.0.113.6')).status, 401, 'another client behind the same proxy has its own budget');
    assert.equal((await viaProxy('127.0.1.7', '203.0.113.7')).status, 401, 'a proxy in a trusted range too');
    // A proxy appends the address it saw: only the entry the trusted proxy added counts, not what the client wrote.
    const spoofed = [];
    for (let i = 0; i < 8; i++) spoofed.push((await viaProxy('127.0.0.30', `198.51.100.${i}, 203.0.113.8`)).status);
    assert.ok(spoofed.slice(5).every((s) => s === 429), `a forged first entry does not mint budgets: ${spoofed.join(' ')}`);
  });

  it('refuses a trustedProxies entry that is not an address or range, naming it', async () => {
    await assert.rejects(startServer({ PARLEY_SERVER_TRUSTED_PROXIES: '10.0.0.0/33' }), /server\.trustedProxies|TRUSTED_PROXIES/);
  });
});

describe('limits: login throttling', () => {
  let server: TestServer;
  const password = 'correct horse battery';
  before(async () => {
    server = await startServer({
      PARLEY_LIMITS_LOGIN_PAIR_FREE_FAILURES: '3',
      PARLEY_LIMITS_LOGIN_ADDRESS_FREE_FAILURES: '8',
      PARLEY_LIMITS_LOGIN_ACCOUNT_FREE_FAILURES: '6',
      PARLEY_LIMITS_LOGIN_BASE_DELAY_MS: '1000',
      PARLEY_LIMITS_LOGIN_MAX_DELAY_MS: '60000',
      PARLEY_LIMITS_LOGIN_ACCOUNT_MAX_DELAY_MS: '60000',
    });
  });
  after(async () => {
    await server.stop();
  });

  it('answers wrong passwords with growing delays (RATE_LIMITED, retryAfterMs), without checking the password while blocked', async () => {
    await register(server, 'guess-me', password);
    const from = '127.0.0.20';
    for (let i = 0; i < 3; i++) assert.equal((await login(server, from, 'guess-me', 'wrong')).status, 401, `free failure ${i + 1}`);
    assert.equal((await login(server, from, 'guess-me', 'wrong')).status, 401, 'the 4th failure is answered, then blocks');
    const first = assertRateLimited(await login(server, from, 'guess-me', password), 'blocked even with the right password');
    assert.ok(first <= 1000);
    await sleep(first + 20);
    assert.equal((await login(server, from, 'Guess-Me', 'wrong')).status, 401, 'the name is compared case-insensitively');
    const second = assertRateLimited(await login(server, from, 'guess-me', 'wrong'), 'second block');
    assert.ok(second > 1000 && second <= 2000, `the delay doubled: ${second}`);
    // A burst of wrong passwords gets no further than the block.
    const burst = await Promise.all(Array.from({ length: 50 }, () => login(server, from, 'guess-me', 'wrong')));
    assert.ok(burst.every((r) => r.status === 429), JSON.stringify(burst.map((r) => r.status)));
  });

  it('does not lock the real user out: an address that logged in recently passes a distributed attack on its account', async () => {
    await register(server, 'victim', password);
    const home = '127.0.0.30';
    assert.equal((await login(server, home, 'victim', password)).status, 200);
    // Two attacker addresses exhaust the account's free failures from unknown addresses.
    for (const from of ['127.0.0.31', '127.0.0.32']) {
      for (let i = 0; i < 3; i++) assert.equal((await login(server, from, 'victim', 'wrong')).status, 401);
    }
    assert.equal((await login(server, '127.0.0.33', 'victim', 'wrong')).status, 401);
    assertRateLimited(await login(server, '127.0.0.34', 'victim', password), 'a new address is slowed down for this account');
    assert.equal((await login(server, home, 'victim', password)).status, 200, 'the known address logs in');
    assert.equal((await login(server, '127.0.0.34', 'someone-else', 'wrong')).status, 401, 'other accounts are unaffected');
  });

  it('throttles one address over many accounts', async () => {
    const from = '127.0.0.40';
    const statuses = [];
    for (let i = 0; i < 12; i++) statuses.push((await login(server, from, `nobody-${i}`, 'wrong')).status);
    assert.deepEqual(statuses.slice(0, 9), Array(9).fill(401));
    assert.ok(statuses.slice(9).every((s) => s === 429), JSON.stringify(statuses));
    const elsewhere = await api(server, null, 'POST', '/api/v1/sessions', { username: 'nobody-0', password: 'wrong' });
    assert.equal(elsewhere.status, 401, 'another address is not blocked');
  });
});
