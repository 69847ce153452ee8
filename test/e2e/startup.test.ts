import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Database } from '../../src/store/sqlite/driver.js';
import { RawClient, until } from '../helpers/raw-client.js';
import { startServer, type TestServer } from '../helpers/server.js';

/** A port free right now on loopback. */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });

describe('starting', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-startup-'));
  const servers: TestServer[] = [];
  after(async () => {
    for (const s of servers) await s.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('opens the port before the store, and serves what arrived meanwhile once ready (nothing refused)', async () => {
    const first = await startServer({}, { dataDir });
    const token = await first.token('early-bird');
    await first.stop();

    // Another process holds the database: the server cannot open its store until the test lets go.
    const holder = new Database(join(dataDir, 'parley.db'));
    holder.exec('BEGIN EXCLUSIVE');
    const port = await freePort();
    let ready = false;
    const starting = startServer({}, { dataDir, port }).then((server) => {
      ready = true;
      servers.push(server);
      return server;
    });
    try {
      await until(() => accepts(port), 'the port accepts connections while the store is still locked', 20_000, 20);
      const url = `ws://127.0.0.1:${port}/ws`;
      const early = RawClient.connect(url, token);
      const health = fetch(`http://127.0.0.1:${port}/healthz`);
      // The store is locked, so the server cannot be ready: these are held, not answered or refused.
      assert.equal(ready, false);
      holder.exec('ROLLBACK');
      holder.close();
      const server = await starting;
      assert.equal((await health).status, 200, '/healthz asked during start is answered once ready');
      const client = await early;
      assert.equal(client.events[0]?.event, 'welcome', 'the WebSocket opened during start gets its welcome');
      assert.ok((await client.request('ping')).result, 'and is served');
      client.close();
      assert.equal(server.logs.filter((l) => (l.level as number) >= 50).length, 0, 'no errors logged');
    } finally {
      if (holder.open) {
        holder.exec('ROLLBACK');
        holder.close();
      }
    }
  });
});
