import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Database } from '../../src/store/sqlite/driver.js';
import { RawClient } from '../helpers/raw-client.js';
import { register, startServer, type TestServer } from '../helpers/server.js';

/**
 * Another process (a maintenance shell, a backup tool) holds the write lock on the server's database file. Here the
 * test process itself takes it, with its own connection to the same file.
 */
describe('store: another process holds the database lock', () => {
  let server: TestServer;
  let alice: { id: string; token: string };
  let bob: { id: string; token: string };
  let client: RawClient;
  let conversationId: string;
  before(async () => {
    server = await startServer();
    alice = await register(server, 'lock-alice');
    bob = await register(server, 'lock-bob');
    client = await RawClient.connect(server.wsUrl, alice.token);
    conversationId = (await client.ok('direct.open', { userId: bob.id })).conversation.id;
  });
  after(async () => {
    client?.close();
    await server?.stop();
  });

  const readyz = async (): Promise<{ status: number; body: any; ms: number }> => {
    const startedAt = Date.now();
    const res = await fetch(`${server.url}/readyz`, { signal: AbortSignal.timeout(10_000) });
    return { status: res.status, body: await res.json(), ms: Date.now() - startedAt };
  };
  const lockErrors = async (): Promise<number> => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    return text.split('\n').filter((l) => l.startsWith('parley_store_errors_total{'))
      .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
  };

  it('answers every call within a bound (UNAVAILABLE for writes), /readyz 503 promptly, counts each failure, and recovers', async () => {
    await client.ok('message.send', { to: bob.id, key: 'before', text: 'stored' });
    assert.equal((await readyz()).status, 200);
    const errorsBefore = await lockErrors();

    const db = new Database(join(server.dataDir, 'parley.db'));
    db.pragma('busy_timeout = 0');
    db.exec('BEGIN EXCLUSIVE');
    try {
      // Many writes at once: each is answered within a bound, not one busy timeout after the other.
      const startedAt = Date.now();
      const replies = await Promise.all(Array.from({ length: 8 }, (_, i) =>
        client.request('message.send', { conversationId, key: `locked-${i}`, text: 'x' }, 10_000)));
      const took = Date.now() - startedAt;
      for (const reply of replies) {
        assert.equal(reply.error?.code, 'UNAVAILABLE', JSON.stringify(reply));
        assert.equal(reply.error.temporary, true);
      }
      assert.ok(took < 4000, `8 writes during the lock answered after ${took} ms`);

      // Later writes fail at once; reads still answer (WAL readers are not blocked by a writer).
      const laterAt = Date.now();
      const later = await client.request('message.send', { conversationId, key: 'locked-later', text: 'x' }, 10_000);
      assert.equal(later.error?.code, 'UNAVAILABLE');
      const read = await client.request('history.after', { conversationId, afterSeq: 0 }, 10_000);
      assert.equal(read.error, undefined, JSON.stringify(read));
      assert.ok(Date.now() - laterAt < 2500, `later write and read answered after ${Date.now() - laterAt} ms`);

      const notReady = await readyz();
      assert.equal(notReady.status, 503, JSON.stringify(notReady.body));
      assert.equal(notReady.body.error.code, 'UNAVAILABLE');
      assert.ok(notReady.ms < 3000, `/readyz answered after ${notReady.ms} ms`);
      assert.ok(await lockErrors() - errorsBefore >= 9, 'each failed write is counted');
    } finally {
      db.exec('ROLLBACK');
      db.close();
    }

    // Bounded wait for the first write to get through again (the probe or this write itself restores the wait).
    let reply: any = null;
    for (let attempt = 0; attempt < 50; attempt++) {
      reply = await client.request('message.send', { conversationId, key: 'after', text: 'stored again' }, 10_000);
      if (!reply.error) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(reply.error, undefined, JSON.stringify(reply));
    let ready = await readyz();
    // /readyz shares one probe outcome per second: poll (bounded) until a probe run after the release answers.
    for (let attempt = 0; attempt < 50 && ready.status !== 200; attempt++) {
      await new Promise((r) => setTimeout(r, 100));
      ready = await readyz();
    }
    assert.equal(ready.status, 200);
    const history = await client.ok('history.before', { conversationId });
    assert.deepEqual(history.messages.map((m: any) => m.text), ['stored', 'stored again'], 'nothing half-written');
  });
});
