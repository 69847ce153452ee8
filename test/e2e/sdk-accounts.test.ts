/**
 * The SDK's REST helper for built-in accounts (ParleyAccounts) against a real server process: sign up, log in, who a
 * token is, log out (the token's connections close 4500), log out everywhere, and each failure as a typed error.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ParleyAccounts, ParleyClient, ParleyClientError, type DisconnectInfo, type WebSocketConstructor } from '../../packages/sdk/src/index.js';
import { until } from '../helpers/raw-client.js';
import { startServer, type TestServer } from '../helpers/server.js';

const PASSWORD = 'violet tugboat fifty lantern';

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<ParleyClientError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ParleyClientError, String(err));
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}`);
}

describe('SDK accounts (REST helper)', () => {
  let server: TestServer;
  let accounts: ParleyAccounts;
  before(async () => {
    server = await startServer();
    accounts = new ParleyAccounts({ baseUrl: server.url });
  });
  after(async () => {
    await server.stop();
  });

  it('signs up, logs in and tells whose a token is; the token opens a connection', async () => {
    const created = await accounts.signUp('acc-ann', PASSWORD);
    assert.equal(typeof created.token, 'string');
    assert.ok(created.expiresAt > Date.now(), 'expiresAt is in the future');
    const session = await accounts.logIn('ACC-Ann', PASSWORD); // matched after case folding
    assert.equal(session.user.id, created.user.id);
    assert.deepEqual(await accounts.me(session.token), created.user);
    const client = new ParleyClient({ url: server.wsUrl, token: session.token, WebSocket: WebSocket as unknown as WebSocketConstructor });
    try {
      assert.equal((await client.connect()).user.id, created.user.id);
    } finally {
      client.close();
    }
  });

  it('accepts the WebSocket URL as its base, and an https-less base with a trailing slash', async () => {
    const viaWs = new ParleyAccounts({ baseUrl: server.wsUrl });
    const viaSlash = new ParleyAccounts({ baseUrl: `${server.url}/` });
    const created = await viaWs.signUp('acc-base', PASSWORD);
    assert.equal((await viaSlash.me(created.token)).id, created.user.id);
  });

  it('rejects with the server\'s typed errors', async () => {
    await accounts.signUp('acc-taken', PASSWORD);
    const taken = await rejectsWith(accounts.signUp('acc-taken', PASSWORD), 'ACCOUNT_EXISTS');
    assert.equal(taken.temporary, false);
    const weak = await rejectsWith(accounts.signUp('acc-weak', 'password'), 'WEAK_PASSWORD');
    assert.ok(weak.details && typeof (weak.details as { reason?: unknown }).reason === 'string', JSON.stringify(weak.details));
    await rejectsWith(accounts.logIn('acc-taken', 'not the password at all'), 'INVALID_CREDENTIALS');
    await rejectsWith(accounts.me('not-a-token'), 'UNAUTHORIZED');
    await rejectsWith(new ParleyAccounts({ baseUrl: `http://127.0.0.1:${await closedPort()}` }).logIn('x', PASSWORD), 'DISCONNECTED');
  });

  it('logs out: the token stops working and its connection closes with 4500; log out everywhere revokes the others', async () => {
    await accounts.signUp('acc-out', PASSWORD);
    const first = await accounts.logIn('acc-out', PASSWORD);
    const second = await accounts.logIn('acc-out', PASSWORD);
    const third = await accounts.logIn('acc-out', PASSWORD);
    const disconnects: DisconnectInfo[] = [];
    const client = new ParleyClient({ url: server.wsUrl, token: first.token, WebSocket: WebSocket as unknown as WebSocketConstructor });
    client.on('disconnect', (d) => disconnects.push(d));
    try {
      await client.connect();
      await accounts.logOut(first.token);
      await until(() => disconnects.length === 1, 'the 4500 close', 5000);
      assert.equal(disconnects[0]!.code, 4500);
      assert.equal(disconnects[0]!.willReconnect, false);
      await rejectsWith(accounts.me(first.token), 'UNAUTHORIZED');
      assert.equal((await accounts.me(second.token)).id, first.user.id, 'another session still works');
      await accounts.logOutEverywhere(second.token);
      await rejectsWith(accounts.me(third.token), 'UNAUTHORIZED');
    } finally {
      client.close();
    }
  });
});
