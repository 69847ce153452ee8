import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../helpers/server.js';

/**
 * Two instances on one SQLite file with the in-memory bus would each deliver only their own clients' events: the
 * second is refused at start with what to change, and a crashed first one never blocks its restart.
 */
describe('instances on one SQLite file', () => {
  const shared = mkdtempSync(join(tmpdir(), 'parley-claim-'));
  after(() => rmSync(shared, { recursive: true, force: true }));

  it('refuses a second instance with the in-memory bus, naming the first and what to change', async () => {
    const env = { PARLEY_STORE_SQLITE_PATH: join(shared, 'one.db') };
    const first = await startServer(env);
    try {
      await assert.rejects(startServer(env), /CONFLICT: another Parley instance uses this store \(port 0, pid \d+ \(on [^)]*, sole\)\).*bus\.kind 'memory'.*'redis'/s);
    } finally {
      await first.stop();
    }
    // Stopped cleanly: its registration is gone.
    const again = await startServer(env);
    await again.stop();
  });

  it('lets an instance start at once after the previous one was killed', async () => {
    const env = { PARLEY_STORE_SQLITE_PATH: join(shared, 'two.db') };
    const first = await startServer(env);
    await first.kill('SIGKILL');
    const restarted = await startServer(env);
    assert.equal((await fetch(`${restarted.url}/readyz`)).status, 200);
    await restarted.stop();
  });
});
