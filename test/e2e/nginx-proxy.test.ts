import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawClient, until } from '../helpers/raw-client.js';
import { EXTERNAL_SECRET, register, signToken, startServer, type TestServer } from '../helpers/server.js';
import WebSocket from 'ws';
import { nginxConfig, startNginx, type TestNginx } from '../helpers/services/nginx.js';

/**
 * The shipped deploy/nginx.conf in front of a Parley instance, through a real nginx: WebSocket upgrade with the token
 * as a subprotocol, events both ways, REST and health, and an instance restart behind it (clients come back through
 * nginx and find what was stored). The many-instance tests (scale-out) use the same configuration and helper.
 */
describe('nginx in front of Parley (deploy/nginx.conf)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-nginx-data-'));
  let server: TestServer;
  let nginx: TestNginx;
  before(async () => {
    server = await startServer({}, { dataDir });
    nginx = await startNginx([server.port]);
  });
  after(async () => {
    await nginx?.stop();
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('fills in only the upstream servers and the listen port of the shipped file', () => {
    const conf = nginxConfig(18080, [18081, 18082], '/tmp/parley-nginx-x');
    assert.match(conf, /listen 127\.0\.0\.1:18080;/);
    assert.match(conf, /server 127\.0\.0\.1:18081 max_fails=0;\n\s*server 127\.0\.0\.1:18082 max_fails=0;/, 'with the shipped parameters');
    assert.match(conf, /proxy_set_header Upgrade \$http_upgrade;/);
    assert.doesNotMatch(conf, /:8081/, 'the example instances are replaced');
    // The shipped file names its own pid and log files (beside a system nginx); a test writes them in its folder.
    assert.match(readFileSync(new URL('../../deploy/nginx.conf', import.meta.url), 'utf8'), /^pid \/run\/nginx-parley\.pid;$/m);
    assert.match(conf, /access_log \/tmp\/parley-nginx-x\/access\.log parley;/);
    assert.doesNotMatch(conf, /\/var\/log|\/run\//, 'no system path is left for a test nginx to write');
  });

  it('carries a WebSocket conversation, REST and health through the proxy', async () => {
    const ann = await register(server, 'nginx-ann');
    const bob = await register(server, 'nginx-bob');
    const a = await RawClient.connect(nginx.wsUrl, ann.token);
    const b = await RawClient.connect(nginx.wsUrl, bob.token);
    try {
      assert.ok(a.eventsOf('welcome').length === 1 && b.eventsOf('welcome').length === 1, 'both welcomed through nginx');
      const sent = await a.ok('message.send', { to: bob.id, key: 'k1', text: 'through the proxy' });
      assert.equal((await b.waitFor('message.new', (m) => m.id === sent.id)).text, 'through the proxy');
      const ready = await fetch(`${nginx.url}/readyz`);
      assert.equal(ready.status, 200);
      assert.equal((await fetch(`${nginx.url}/metrics`)).status, 404, 'metrics are scraped from each instance, not through the balancer');
      assert.equal((await fetch(`${server.url}/metrics`)).status, 200);
      const list = await fetch(`${nginx.url}/api/v1/conversations`, { headers: { authorization: `Bearer ${bob.token}` } });
      assert.equal(list.status, 200);
      const body = (await list.json()) as { conversations: Array<{ id: string }> };
      assert.ok(body.conversations.some((c) => c.id === sent.conversationId), 'the direct conversation is listed over REST');
    } finally {
      a.close();
      b.close();
    }
  });

  it('brings clients back through nginx after the instance restarts, with what was stored', async () => {
    const cat = await register(server, 'nginx-cat');
    const dan = await register(server, 'nginx-dan');
    const c = await RawClient.connect(nginx.wsUrl, cat.token);
    const sent = await c.ok('message.send', { to: dan.id, key: 'before-restart', text: 'stored before the restart' });
    const port = server.port;
    await server.stop();
    await until(() => c.closed !== null, 'the client is closed by the draining instance', 10_000, 20);
    assert.equal(c.closed?.code, 4000, 'a drain closes with 4000 (reconnect)');
    server = await startServer({}, { dataDir, port });
    // The client retries as the SDK would until the restarted instance answers through nginx.
    let d: RawClient | null = null;
    await until(async () => {
      d = await RawClient.connect(nginx.wsUrl, dan.token).catch(() => null);
      return d !== null && d.eventsOf('welcome').length === 1;
    }, 'a client connects through nginx to the restarted instance', 20_000, 250);
    try {
      const welcome = d!.eventsOf('welcome')[0];
      const position = welcome.conversations.find((p: any) => p.id === sent.conversationId);
      assert.ok(position, 'the conversation is in welcome');
      assert.equal(position.lastSeq, sent.seq, 'the message stored before the restart is there');
    } finally {
      d!.close();
    }
  });
});

describe('a rolling restart of three instances behind the shipped nginx configuration', () => {
  /**
   * Each of CLIENTS clients reconnects as soon as its connection closes (the drain's 4000), through nginx, while the
   * instances restart one after another as docs/deploy.md says (SIGTERM, wait for the exit, start, wait for /readyz,
   * next), with no pause between them. nginx must hand every reconnect to a live instance: with its failure accounting
   * on (max_fails=1, fail_timeout=5s), a rolling restart quicker than fail_timeout took every instance out at once
   * and reconnects got 502 "no live upstreams".
   */
  it('hands every reconnect to a live instance: no upgrade refused by nginx', { timeout: 120_000 }, async (test) => {
    const CLIENTS = 20;
    const servers: TestServer[] = [];
    for (let i = 0; i < 3; i++) servers.push(await startServer({ PARLEY_SHUTDOWN_DRAIN_MS: '2000' }));
    const nginx = await startNginx(servers.map((server) => server.port));
    const refused: number[] = [];
    const welcomes: number[] = new Array(CLIENTS).fill(0);
    let running = true;
    const sockets = new Set<WebSocket>();
    /** One client: connect, count its welcomes and refusals, and connect again when closed, until the end. */
    const client = async (i: number): Promise<void> => {
      const token = await signToken(EXTERNAL_SECRET, null, `rolling-${i}`);
      const connect = (): void => {
        if (!running) return;
        const ws = new WebSocket(`${nginx.wsUrl}?token=${encodeURIComponent(token)}`);
        sockets.add(ws);
        ws.on('message', (data) => { if (String(data).includes('"welcome"')) welcomes[i]!++; });
        ws.on('unexpected-response', (_req, res) => { refused.push(res.statusCode ?? 0); res.resume(); });
        ws.on('error', () => undefined);
        ws.on('close', () => { sockets.delete(ws); setTimeout(connect, 20); });
      };
      connect();
    };
    try {
      for (let i = 0; i < CLIENTS; i++) await client(i);
      await until(() => welcomes.every((n) => n >= 1), 'every client welcomed once', 30_000, 20);
      for (let i = 0; i < servers.length; i++) {
        const port = servers[i]!.port;
        await servers[i]!.stop();
        servers[i] = await startServer({ PARLEY_SHUTDOWN_DRAIN_MS: '2000' }, { port });
        await until(async () => (await fetch(`${servers[i]!.url}/readyz`).catch(() => null))?.status === 200, `instance ${i} ready`, 20_000, 50);
      }
      // Every client was on some instance, and every instance went down once: each came back at least once more.
      await until(() => welcomes.every((n) => n >= 2), 'every client welcomed again after the restarts', 30_000, 20);
      test.diagnostic(`welcomes ${welcomes.reduce((a, b) => a + b, 0)}, refused upgrades ${refused.length}`);
      assert.deepEqual(refused, [], 'no reconnect was refused (HTTP status of each refusal)');
    } finally {
      running = false;
      for (const ws of sockets) ws.terminate();
      await nginx.stop();
      await Promise.allSettled(servers.map((server) => server.stop()));
    }
  });
});
