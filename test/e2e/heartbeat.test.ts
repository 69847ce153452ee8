import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RawClient, sleep } from '../helpers/raw-client.js';
import { register, startServer, type TestServer } from '../helpers/server.js';

const INTERVAL_MS = 200;
const TIMEOUT_MS = 300;
/** Timer granularity of the server (half the smaller period) plus scheduling and loopback latency. */
const SLACK_MS = 700;

describe('heartbeat', () => {
  let server: TestServer;
  let alice: { id: string; token: string };
  let bob: { id: string; token: string };
  before(async () => {
    server = await startServer({
      PARLEY_HEARTBEAT_INTERVAL_MS: String(INTERVAL_MS),
      PARLEY_HEARTBEAT_TIMEOUT_MS: String(TIMEOUT_MS),
      PARLEY_PRESENCE_BATCH_MS: '20',
    });
    alice = await register(server, 'hb-alice');
    bob = await register(server, 'hb-bob');
    const a = await RawClient.connect(server.wsUrl, alice.token);
    await a.ok('direct.open', { userId: bob.id });
    a.close();
  });
  after(async () => {
    await server.stop();
  });

  it('tells the client the interval in the welcome', async () => {
    const client = await RawClient.connect(server.wsUrl, alice.token);
    assert.equal((await client.waitFor('welcome')).heartbeatIntervalMs, INTERVAL_MS);
    client.close();
  });

  it('closes a client that does not answer pings with 4001 within interval + timeout, and its peer sees it go offline', async () => {
    const peer = await RawClient.connect(server.wsUrl, alice.token);
    const started = Date.now();
    const silent = await RawClient.connect(server.wsUrl, bob.token, { autoPong: false });
    let pings = 0;
    silent.ws.on('ping', () => pings++);
    await peer.waitFor('presence', (d) => d.users.some((u: any) => u.userId === bob.id && u.online), 2000);

    const { code } = await silent.waitClose(INTERVAL_MS + TIMEOUT_MS + SLACK_MS + 2000);
    const elapsed = Date.now() - started;
    assert.equal(code, 4001);
    assert.ok(pings >= 1, 'the server pinged');
    assert.ok(elapsed >= TIMEOUT_MS - 10, `not before the timeout (${elapsed} ms)`);
    assert.ok(elapsed <= INTERVAL_MS + TIMEOUT_MS + SLACK_MS, `closed after ${elapsed} ms`);

    const offline = await peer.waitFor('presence', (d) => d.users.some((u: any) => u.userId === bob.id && !u.online), 2000);
    const info = offline.users.find((u: any) => u.userId === bob.id);
    assert.equal(typeof info.lastSeen, 'number');
    assert.ok(info.lastSeen >= started && info.lastSeen <= Date.now());
    assert.equal(peer.closed, null, 'the answering peer is untouched');
    peer.close();
  });

  it('keeps a client that answers pings connected across many intervals', async () => {
    const client = await RawClient.connect(server.wsUrl, alice.token);
    let pings = 0;
    client.ws.on('ping', () => pings++);
    // Wait for the pings themselves (not a fixed time): many intervals, each past the timeout a silent client gets.
    const deadline = Date.now() + INTERVAL_MS * 20 + 5000;
    while (pings < 6 && client.closed === null && Date.now() < deadline) await sleep(INTERVAL_MS / 2);
    assert.equal(client.closed, null);
    assert.ok(pings >= 6, `${pings} pings`);
    assert.deepEqual(await client.ok('ping'), {});
    client.close();
  });

  it('does not count requests as liveness: a client that talks but never pongs is still closed', async () => {
    const client = await RawClient.connect(server.wsUrl, bob.token, { autoPong: false });
    const deadline = Date.now() + INTERVAL_MS + TIMEOUT_MS + SLACK_MS + 2000;
    while (client.closed === null && Date.now() < deadline) {
      await client.request('ping', undefined, 1000).catch(() => undefined);
      await sleep(50);
    }
    assert.equal((await client.waitClose(1000)).code, 4001);
  });
});
