import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { RawClient } from '../helpers/raw-client.js';
import { register, startServer, type TestServer } from '../helpers/server.js';
import { rawSocket } from '../helpers/raw-socket.js';

/** Resolve with the HTTP status of a refused upgrade, or 101 once it is accepted. */
function upgradeStatus(server: TestServer, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(server.wsUrl, ['parley.v1', `bearer.${token}`]);
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('error', (err) => reject(err));
  });
}

describe('limits: connections', () => {
  let server: TestServer;
  let alice: { id: string; token: string };
  let carol: { id: string; token: string };
  before(async () => {
    server = await startServer({
      PARLEY_LIMITS_HEADERS_TIMEOUT_MS: '500',
      PARLEY_LIMITS_MAX_CONNECTIONS: '30',
      PARLEY_LIMITS_MAX_CONNECTIONS_PER_USER: '3',
    });
    alice = await register(server, 'conn-alice');
    carol = await register(server, 'conn-carol');
  });
  after(async () => {
    await server.stop();
  });

  it('closes a TCP connection that never sends a byte after headersTimeoutMs', async () => {
    const { closed, received } = await rawSocket(server);
    const lifetime = await closed;
    assert.ok(lifetime >= 400 && lifetime < 3000, `closed after ${lifetime} ms`);
    assert.equal(received(), '');
  });

  it('closes an upgrade whose headers never complete (slowloris) after headersTimeoutMs', async () => {
    const { socket, closed } = await rawSocket(server);
    socket.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n');
    const lifetime = await closed;
    assert.ok(lifetime < 3000, `closed after ${lifetime} ms`);
  });

  it('answers connections past maxConnections with 503, and serves again once they are gone', async () => {
    const idle = await Promise.all(Array.from({ length: 30 }, () => rawSocket(server)));
    const refused = await rawSocket(server);
    await refused.closed;
    assert.match(refused.received(), /^HTTP\/1\.1 503 /);
    for (const s of idle) s.socket.destroy();
    await Promise.all(idle.map((s) => s.closed));
    // The server sees the closes after the client does: retry (bounded) until the count has dropped. As another user
    // than alice: an upgrade of hers still being unregistered counted against her 3 in the next test, which then saw
    // one of her devices refused 4006 instead of the fourth (CI, under load).
    let status = 0;
    for (let attempt = 0; attempt < 50 && status !== 101; attempt++) status = await upgradeStatus(server, carol.token).catch(() => 0);
    assert.equal(status, 101);
  });

  it('closes a user\'s connection past maxConnectionsPerUser with 4006 (reconnect with backoff); other users are unaffected', async () => {
    const devices = await Promise.all(Array.from({ length: 3 }, () => RawClient.connect(server.wsUrl, alice.token)));
    const extra = await RawClient.connect(server.wsUrl, alice.token, { waitWelcome: false });
    const close = await extra.waitClose();
    assert.equal(close.code, 4006);
    for (const d of devices) assert.deepEqual(await d.ok('ping'), {});
    const bob = await register(server, 'conn-bob');
    const other = await RawClient.connect(server.wsUrl, bob.token);
    assert.deepEqual(await other.ok('ping'), {});
    devices[0].close();
    await devices[0].waitClose();
    let again: RawClient | null = null;
    for (let attempt = 0; attempt < 50; attempt++) {
      again = await RawClient.connect(server.wsUrl, alice.token);
      if (again.closed === null && again.events.some((e) => e.event === 'welcome')) break;
      await again.waitClose().catch(() => undefined);
    }
    assert.deepEqual(await again!.ok('ping'), {}, 'a freed place can be taken');
    for (const c of [...devices, again!, other]) c.close();
  });

  it('keeps serving HTTP while idle sockets come and go', async () => {
    const res = await fetch(`${server.url}/healthz`);
    assert.equal(res.status, 200);
  });
});

describe('limits: connection attempts per user', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ PARLEY_LIMITS_USER_CONNECT_RATE_PER_SECOND: '0.5', PARLEY_LIMITS_USER_CONNECT_RATE_BURST: '5' });
  });
  after(async () => {
    await server.stop();
  });

  it('closes connections past the attempt rate with 4006, so reconnecting cannot mint request budgets; others connect', async () => {
    const dana = await register(server, 'reconnect-dana');
    const closes: Array<number | null> = [];
    for (let i = 0; i < 8; i++) {
      const client = await RawClient.connect(server.wsUrl, dana.token, { waitWelcome: false });
      const outcome = await Promise.race([
        client.waitFor('welcome').then(() => null),
        client.waitClose().then((c) => c.code),
      ]);
      closes.push(outcome);
      client.close();
    }
    assert.deepEqual(closes.slice(0, 5), [null, null, null, null, null]);
    assert.ok(closes.slice(5).every((c) => c === 4006), JSON.stringify(closes));
    const erin = await register(server, 'reconnect-erin');
    const other = await RawClient.connect(server.wsUrl, erin.token);
    assert.deepEqual(await other.ok('ping'), {});
    other.close();
  });
});

