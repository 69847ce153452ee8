import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawClient, until } from '../helpers/raw-client.js';
import { register, startServer, type TestServer } from '../helpers/server.js';
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
    assert.match(conf, /server 127\.0\.0\.1:18081 max_fails=1 fail_timeout=5s;\n\s*server 127\.0\.0\.1:18082 /);
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
    // nginx marks the instance failed for fail_timeout after refused attempts; the client retries as the SDK would.
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
