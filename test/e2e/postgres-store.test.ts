import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type PostgresService, startPostgres } from '../helpers/services/postgres.js';
import pg from 'pg';
import { RawClient, until } from '../helpers/raw-client.js';
import { api, register, startServer } from '../helpers/server.js';

/** The server process on PostgreSQL: `parley migrate`, then serving, with the data outliving a restart. */
const run = promisify(execFile);
const CLI = new URL('../../dist/cli.js', import.meta.url).pathname;

let postgres: PostgresService;
before(async () => {
  postgres = await startPostgres();
});
after(async () => {
  await postgres?.destroy();
});

describe('parley on PostgreSQL', () => {
  it('migrates with `parley migrate`, serves, and keeps its data across a restart', async () => {
    const url = (await postgres.createDatabase()).replace('parley@', 'parley:not-shown@');
    const env = { PARLEY_STORE_KIND: 'postgres', PARLEY_STORE_POSTGRES_URL: url };
    const migrated = await run(process.execPath, [CLI, 'migrate'], { env: { PATH: process.env.PATH ?? '', ...env } });
    assert.match(migrated.stderr, /Store is up to date: PostgreSQL postgres:\/\/parley:\*\*\*@127\.0\.0\.1/);
    assert.doesNotMatch(migrated.stderr, /not-shown/, 'the password is not printed');

    const first = await startServer(env);
    let conversationId: string;
    try {
      assert.equal((await fetch(`${first.url}/readyz`)).status, 200);
      const alice = await register(first, 'alice');
      const created = await api(first, alice.token, 'POST', '/api/v1/conversations', { name: 'Team' });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      conversationId = created.body.conversation.id;
      const sent = await api(first, alice.token, 'POST', `/api/v1/conversations/${conversationId}/messages`, { key: 'k1', text: 'hello' });
      assert.equal(sent.status, 201, JSON.stringify(sent.body));
      const again = await api(first, alice.token, 'POST', `/api/v1/conversations/${conversationId}/messages`, { key: 'k1', text: 'hello' });
      assert.equal(again.status, 200, 'a repeated key answers the original');
    } finally {
      await first.stop();
    }

    const second = await startServer(env);
    try {
      const login = await api(second, null, 'POST', '/api/v1/sessions', { username: 'ALICE', password: 'correct horse battery' });
      assert.equal(login.status, 200, JSON.stringify(login.body));
      const history = await api(second, login.body.token, 'GET', `/api/v1/conversations/${conversationId}/messages`);
      assert.equal(history.status, 200);
      assert.deepEqual(history.body.messages.map((m: { seq: number; text: string }) => [m.seq, m.text]), [[1, 'hello']]);
    } finally {
      await second.stop();
    }
  });
});

describe('instances on one PostgreSQL database', () => {
  it('says which setting to fix when the database cannot be opened, without its password', async () => {
    const url = postgres.url('nosuchdb').replace(/^postgres:\/\/(\w+)@/, 'postgres://$1:hunter2hunter2@');
    assert.ok(url.includes('hunter2hunter2@'), url);
    await assert.rejects(startServer({ PARLEY_STORE_KIND: 'postgres', PARLEY_STORE_POSTGRES_URL: url }), (err: Error) =>
      /cannot open the PostgreSQL store at postgres:\/\/\w+:\*\*\*@127\.0\.0\.1:\d+\/nosuchdb \(store\.postgres\.url\): database "nosuchdb" does not exist/.test(err.message)
      && !err.message.includes('hunter2'));
  });

  it('refuses a second instance whose bus is in its own memory, and lets one start once the first is gone', async () => {
    const url = await postgres.createDatabase();
    const env = { PARLEY_STORE_KIND: 'postgres', PARLEY_STORE_POSTGRES_URL: url };
    const first = await startServer(env);
    try {
      await assert.rejects(startServer(env), /CONFLICT: another Parley instance uses this store \(parley port 0, pid \d+.*bus\.kind 'memory'.*'redis'/s);
    } finally {
      // SIGKILL: the claim must end with the session, not wait for a clean stop.
      await first.kill('SIGKILL');
    }
    const next = await startServer(env);
    await next.stop();
  });

  it('takes its claim again after PostgreSQL restarts, so a second sole instance is still refused', async () => {
    const url = await postgres.createDatabase();
    const env = { PARLEY_STORE_KIND: 'postgres', PARLEY_STORE_POSTGRES_URL: url };
    const first = await startServer(env);
    const admin = new pg.Client({ connectionString: url });
    try {
      await postgres.stop();
      await postgres.start();
      await admin.connect();
      const claims = async (): Promise<number> =>
        Number((await admin.query("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted")).rows[0].n);
      await until(async () => (await claims()) > 0, 'the first instance holds its claim again', 15_000, 100);
      await assert.rejects(startServer(env), /CONFLICT: another Parley instance uses this store/);
    } finally {
      await admin.end().catch(() => undefined);
      await first.stop();
    }
  });

  it('closes a connection attempt 4005 (reconnect), never 4500, while PostgreSQL is away, and welcomes it once back', async () => {
    const url = await postgres.createDatabase();
    const server = await startServer({ PARLEY_STORE_KIND: 'postgres', PARLEY_STORE_POSTGRES_URL: url });
    try {
      const alice = await register(server, 'alice');
      await postgres.stop();
      try {
        const refused = await RawClient.connect(server.wsUrl, alice.token, { waitWelcome: false });
        const { code } = await refused.waitClose(15_000);
        assert.equal(code, 4005, 'a store that is away is a temporary fault, not a verdict on the token');
        assert.equal(refused.eventsOf('welcome').length, 0);
      } finally {
        await postgres.start();
      }
      await until(async () => {
        const client = await RawClient.connect(server.wsUrl, alice.token);
        client.close();
        return client.eventsOf('welcome').length === 1;
      }, 'a connection is welcomed once PostgreSQL is back', 20_000, 200);
    } finally {
      await server.stop();
    }
  });

  it('answers with codes a client can read while PostgreSQL is frozen: 4005 to a connection attempt, 504 TIMEOUT to REST', async () => {
    const url = await postgres.createDatabase();
    const server = await startServer({
      PARLEY_STORE_KIND: 'postgres', PARLEY_STORE_POSTGRES_URL: url,
      PARLEY_LIMITS_HEADERS_TIMEOUT_MS: '4000', PARLEY_LIMITS_REQUEST_TIMEOUT_MS: '4000',
    });
    // The postmaster and every backend stopped: connections stay open and nothing answers (SIGSTOP, not a shutdown).
    const postmaster = Number(readFileSync(join(postgres.folder, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    const { stdout } = await run('pgrep', ['-P', String(postmaster)]).catch(() => ({ stdout: '' }));
    const frozen = [postmaster, ...stdout.split('\n').filter(Boolean).map(Number)];
    try {
      const alice = await register(server, 'alice');
      for (const pid of frozen) process.kill(pid, 'SIGSTOP');
      const client = await RawClient.connect(server.wsUrl, alice.token, { waitWelcome: false });
      const { code } = await client.waitClose(15_000);
      assert.equal(code, 4005, 'closed with a code to reconnect on, not reset by the upgrade deadline');
      const me = await api(server, alice.token, 'GET', '/api/v1/me');
      assert.equal(me.status, 504, JSON.stringify(me.body));
      assert.equal(me.body.error.code, 'TIMEOUT');
    } finally {
      for (const pid of frozen) process.kill(pid, 'SIGCONT');
      await server.stop();
    }
  });
});
