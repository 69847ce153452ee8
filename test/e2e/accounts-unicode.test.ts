import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { hashPassword } from '../../src/auth/passwords.js';
import { Database } from '../../src/store/sqlite/driver.js';
import { ADMIN_TOKEN, api, startServer, type TestServer } from '../helpers/server.js';

const run = promisify(execFile);
const CLI = new URL('../../dist/cli.js', import.meta.url).pathname;
const STRONG = 'violet tugboat fifty lantern';

const registerAs = (server: TestServer, username: string, password = STRONG) =>
  api(server, null, 'POST', '/api/v1/accounts', { username, password });
const loginAs = (server: TestServer, username: string, password = STRONG) =>
  api(server, null, 'POST', '/api/v1/sessions', { username, password });

function assertExists(res: { status: number; body: any }, reason: 'taken' | 'confusable', what: string): void {
  assert.equal(res.status, 409, `${what}: ${JSON.stringify(res.body)}`);
  assert.equal(res.body.error.code, 'ACCOUNT_EXISTS', what);
  assert.equal(res.body.error.details?.reason, reason, `${what}: ${JSON.stringify(res.body)}`);
  assert.equal(res.body.error.temporary, false);
}

describe('usernames: one account per name as Unicode compares them, no look-alikes', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.stop();
  });

  it('"Иван" and "иван" are one account, and logging in as "ИВАН" works', async () => {
    const first = await registerAs(server, 'Иван');
    assert.equal(first.status, 201, JSON.stringify(first.body));
    assert.equal(first.body.user.name, 'Иван');
    assertExists(await registerAs(server, 'иван'), 'taken', 'иван');
    for (const name of ['ИВАН', 'иван', 'Иван', ' иВаН ']) {
      const login = await loginAs(server, name);
      assert.equal(login.status, 200, `${name}: ${JSON.stringify(login.body)}`);
      assert.equal(login.body.user.id, first.body.user.id);
      assert.equal(login.body.user.name, 'Иван', 'the display form is kept as typed');
    }
  });

  it('full-width "ｂｏｂ" is "bob" (NFKC), and full case folding joins "Straße"/"STRASSE", "ﬃ"/"FFI", "ΣΑΣ"/"σας"', async () => {
    const pairs: Array<[string, string, string]> = [['bob', 'ｂｏｂ', 'ＢＯＢ'], ['Straße', 'STRASSE', 'strasse'], ['ﬃx', 'FFIX', 'ffix'], ['ΣΑΣ', 'σας', 'Σας']];
    for (const [name, twin, login] of pairs) {
      const created = await registerAs(server, name);
      assert.equal(created.status, 201, `${name}: ${JSON.stringify(created.body)}`);
      assertExists(await registerAs(server, twin), 'taken', `${twin} beside ${name}`);
      const res = await loginAs(server, login);
      assert.equal(res.status, 200, `${login}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.user.id, created.body.user.id, login);
    }
  });

  it('refuses a name confusable with an existing one (Unicode TR39 skeleton): Cyrillic "і", "ꮃ", math letters, "rn"/"m"', async () => {
    const pairs: Array<[string, string]> = [['ivan', 'іvan'], ['paypal', '𝔭𝒶ỿ𝕡𝕒ℓ'], ['alice', 'аlicе'], ['modern', 'rnodern'], ['sam', 'ѕаm']];
    for (const [name, lookalike] of pairs) {
      assert.equal((await registerAs(server, name)).status, 201, name);
      const res = await registerAs(server, lookalike);
      assertExists(res, 'confusable', `${lookalike} beside ${name}`);
      assert.match(res.body.error.message, /looks like an existing/);
      assert.equal((await loginAs(server, lookalike)).status, 401, `no account ${lookalike} was made`);
    }
  });

  it('keeps the display form in NFC: a name typed decomposed logs in composed and in any case', async () => {
    const created = await registerAs(server, 'Jose\u0301');
    assert.equal(created.status, 201);
    assert.equal(created.body.user.name, 'José');
    assert.equal((await loginAs(server, 'JOSÉ')).body.user?.id, created.body.user.id);
  });

  it('refuses names with spaces, controls, zero-width or bidi characters, a leading mark, or a bad length: INVALID_REQUEST', async () => {
    const bad = ['al ice', 'alice\u200b', 'ali\u200dce', '\u202eecila', 'a\u0000b', 'tab\there', 'bob\ufe0f', '\u3164', '\u0301abc', 'x'.repeat(65), '', '   ', 'emoji😀', 'a/b'];
    for (const name of bad) {
      const res = await registerAs(server, name);
      assert.equal(res.status, 400, `${JSON.stringify(name)}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'INVALID_REQUEST', JSON.stringify(name));
      assert.equal(res.body.error.details[0].path, 'username');
    }
    const trimmed = await registerAs(server, '  carol  ');
    assert.equal(trimmed.status, 201);
    assert.equal(trimmed.body.user.name, 'carol', 'surrounding white space is removed');
    const long = await registerAs(server, 'é'.repeat(64));
    assert.equal(long.status, 201, '64 characters are allowed, whatever their UTF-16 length');
    const marks = await registerAs(server, 'हिन्दी');
    assert.equal(marks.status, 201, 'scripts that need combining marks are allowed');
  });

  it('applies the same rules to the admin API', async () => {
    assert.equal((await api(server, ADMIN_TOKEN, 'POST', '/api/v1/admin/users', { username: 'grace', password: STRONG })).status, 201);
    assertExists(await api(server, ADMIN_TOKEN, 'POST', '/api/v1/admin/users', { username: 'GRACE', password: STRONG }), 'taken', 'GRACE');
    assertExists(await api(server, ADMIN_TOKEN, 'POST', '/api/v1/admin/users', { username: 'ɡrace', password: STRONG }), 'confusable', 'ɡrace');
    const weak = await api(server, ADMIN_TOKEN, 'POST', '/api/v1/admin/users', { username: 'heidi', password: 'password' });
    assert.equal(weak.body.error?.code, 'WEAK_PASSWORD');
  });
});

describe('passwords: NIST length, not only white space, not guessable (zxcvbn)', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.stop();
  });

  it('refuses 12345678, password, eight spaces and other guessable passwords with WEAK_PASSWORD, explaining why', async () => {
    const cases: Array<[string, string]> = [
      ['12345678', 'too_guessable'], ['password', 'too_guessable'], ['        ', 'whitespace_only'], ['\u3000'.repeat(10), 'whitespace_only'],
      ['qwertyuiop', 'too_guessable'], ['aaaaaaaaaaaa', 'too_guessable'], ['P@ssw0rd1', 'too_guessable'], ['iloveyou1', 'too_guessable'],
      ['short', 'too_short'], ['😀😀😀😀', 'too_short'],
    ];
    for (const [password, reason] of cases) {
      const res = await registerAs(server, 'pw-weak', password);
      assert.equal(res.status, 400, `${JSON.stringify(password)}: ${JSON.stringify(res.body)}`);
      const error = res.body.error;
      assert.equal(error.code, 'WEAK_PASSWORD', JSON.stringify(password));
      assert.equal(error.temporary, false);
      assert.equal(error.details.reason, reason, `${JSON.stringify(password)}: ${JSON.stringify(error)}`);
      assert.equal(error.details.minLength, 8);
      assert.equal(error.details.minScore, 3);
      assert.ok(Array.isArray(error.details.suggestions) && error.details.suggestions.length > 0, JSON.stringify(error));
      if (reason === 'too_guessable') assert.ok(error.details.score < 3);
    }
    const common = await registerAs(server, 'pw-weak', 'password');
    assert.match(common.body.error.details.warning, /common|used/i, 'the library\'s warning is passed on');
    assert.equal((await loginAs(server, 'pw-weak', 'password')).status, 401, 'no account was created');
  });

  it('refuses a password built on the username', async () => {
    const res = await registerAs(server, 'margarethe', 'margarethe2024');
    assert.equal(res.body.error?.code, 'WEAK_PASSWORD', JSON.stringify(res.body));
  });

  it('accepts long passphrases with spaces and any Unicode, and at least 64 characters', async () => {
    const good = [STRONG, 'фиалка буксир пятьдесят фонарь', '  spaced  out  tugboat  lantern  ', 'ŝtrange ñight ŵalk 42 ☂', 'x7#Lq9!vZ2@m'.repeat(8)];
    for (const [i, password] of good.entries()) {
      const res = await registerAs(server, `pw-good-${i}`, password);
      assert.equal(res.status, 201, `${JSON.stringify(password)}: ${JSON.stringify(res.body)}`);
      assert.equal((await loginAs(server, `pw-good-${i}`, password)).status, 200);
    }
  });

  it('auth.accounts.minPasswordScore 0 turns the guessability check off (length still applies)', async () => {
    const lenient = await startServer({ PARLEY_AUTH_ACCOUNTS_MIN_PASSWORD_SCORE: '0' });
    try {
      assert.equal((await registerAs(lenient, 'lenient', '12345678')).status, 201);
      assert.equal((await registerAs(lenient, 'lenient2', '1234567')).body.error?.code, 'WEAK_PASSWORD');
    } finally {
      await lenient.stop();
    }
  });
});

describe('the CLI applies the username and password rules', () => {
  let dataDir: string;
  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'parley-cli-unicode-'));
  });
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  const cli = (args: string[]) => run(process.execPath, [CLI, ...args, '--data-dir', dataDir], { env: { PATH: process.env.PATH ?? '' } })
    .then(() => ({ code: 0, stderr: '' }), (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }));

  it('user add: weak password, taken and confusable names are refused with the reason', async () => {
    assert.equal((await cli(['user', 'add', 'Иван', '--password', STRONG])).code, 0);
    const weak = await cli(['user', 'add', 'olga', '--password', '12345678']);
    assert.notEqual(weak.code, 0);
    assert.match(weak.stderr, /WEAK_PASSWORD/);
    const taken = await cli(['user', 'add', 'ИВАН', '--password', STRONG]);
    assert.notEqual(taken.code, 0);
    assert.match(taken.stderr, /ACCOUNT_EXISTS/);
    const confusable = await cli(['user', 'add', 'Ивaн', '--password', STRONG]);
    assert.notEqual(confusable.code, 0);
    assert.match(confusable.stderr, /ACCOUNT_EXISTS.*looks like/);
    const invisible = await cli(['user', 'add', 'ol\u200bga', '--password', STRONG]);
    assert.notEqual(invisible.code, 0);
    assert.match(invisible.stderr, /invisible/);
  });
});

describe('accounts created before the normalised names (migration 004)', () => {
  let dataDir: string;
  let server: TestServer;
  const ids = { ivan: 'legacy-ivan', ivanLower: 'legacy-ivan-lower', bob: 'legacy-bob' };
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'parley-legacy-'));
    // A store as the first release left it: only migration 001, and two accounts the old rules let coexist.
    const db = new Database(join(dataDir, 'parley.db'));
    db.exec(readFileSync(new URL('../../src/store/sqlite/migrations/001_init.sql', import.meta.url), 'utf8'));
    db.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)');
    db.prepare('INSERT INTO schema_migrations (version, name) VALUES (1, ?)').run('001_init.sql');
    const insert = db.prepare('INSERT INTO users (id, name, password_hash, created_at) VALUES (?, ?, ?, ?)');
    insert.run(ids.ivan, 'Иван', await hashPassword('first ivan password'), 1);
    insert.run(ids.ivanLower, 'иван', await hashPassword('second ivan password'), 2);
    insert.run(ids.bob, 'Bob', await hashPassword('bob legacy password'), 3);
    db.close();
    server = await startServer({}, { dataDir });
  });
  after(async () => {
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('fills the key and skeleton of existing accounts: they log in by any case, and look-alikes are refused', async () => {
    const bob = await loginAs(server, 'ＢＯＢ', 'bob legacy password');
    assert.equal(bob.body.user?.id, ids.bob, JSON.stringify(bob.body));
    assertExists(await registerAs(server, 'bob'), 'taken', 'bob');
    assertExists(await registerAs(server, 'bоb'), 'confusable', 'bоb with a Cyrillic о');
  });

  it('keeps both accounts that collide under the new rules: the older by any case, the younger by its exact name', async () => {
    assert.equal((await loginAs(server, 'ИВАН', 'first ivan password')).body.user?.id, ids.ivan);
    assert.equal((await loginAs(server, 'Иван', 'first ivan password')).body.user?.id, ids.ivan);
    assert.equal((await loginAs(server, 'иван', 'second ivan password')).body.user?.id, ids.ivanLower);
    assertExists(await registerAs(server, 'иВАН'), 'taken', 'иВАН');
  });
});
