import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { hashPassword } from '../../src/auth/passwords.js';
import { Database } from '../../src/store/sqlite/driver.js';
import { SignJWT } from 'jose';
import { RawClient } from '../helpers/raw-client.js';
import { ADMIN_TOKEN, EXTERNAL_SECRET, api, register, signToken, startServer, type TestServer } from '../helpers/server.js';

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

const codePoints = (s: string) => [...s].map((c) => `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`).join(' ');

function assertMixedScripts(res: { status: number; body: any }, what: string): void {
  assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
  assert.equal(res.body.error.code, 'INVALID_REQUEST', what);
  assert.equal(res.body.error.details[0].path, 'username', what);
  assert.match(res.body.error.details[0].message, /may not mix letters of/, what);
}

describe('usernames: look-alikes in any case, digits, stray marks and mixed scripts', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.stop();
  });

  it('refuses capital, digit and Cyrillic/Greek look-alikes that case folding used to erase (409 confusable), making no account', async () => {
    const lookAlikes: Array<[string, string[]]> = [
      ['Bob', ['Воb', 'ВОВ', 'bob\u{16FE4}', 'bo\u1A60b', 'bob\u0CBC', 'BOB\u0307']],
      ['TOM', ['ТОМ']], ['TEXAS', ['ТЕХАЅ']], ['Kate', ['Κate', 'ΚΑΤΕ']], ['paypal', ['paypaI', 'PAYPAI']],
      ['Alice', ['AIice']], ['google', ['g00gle', 'G00GLE']], ['apple', ['аррӏе', 'АРРӀЕ']],
      ['ivan', ['i\u0307van']], ['maria', ['MARİA'.toLowerCase(), 'Maria\u0301']], ['Jose', ['José']],
    ];
    for (const [name, copies] of lookAlikes) {
      assert.equal((await registerAs(server, name)).status, 201, name);
      for (const copy of copies) {
        const what = `${JSON.stringify(copy)} [${codePoints(copy)}] beside ${name}`;
        const res = await registerAs(server, copy);
        assertExists(res, 'confusable', what);
        assert.equal((await loginAs(server, copy)).status, 401, `${what}: no account was made`);
      }
    }
  });

  it('refuses a name whose letters mix Latin, Cyrillic, Greek, Armenian or Cherokee (INVALID_REQUEST), and allows other mixes', async () => {
    for (const mixed of ['Ivanов', 'Ωmega', 'Հello', 'ᏣᎳᎩchat']) assertMixedScripts(await registerAs(server, mixed), `${mixed} [${codePoints(mixed)}]`);
    for (const fine of ['李alice', 'hindiहिन्दी', 'Ωμέγα', 'Иван_2', 'さくらsakura']) {
      const res = await registerAs(server, fine);
      assert.equal(res.status, 201, `${fine}: ${JSON.stringify(res.body)}`);
    }
  });

  it('the admin API refuses the same look-alikes and mixes', async () => {
    const admin = (username: string) => api(server, ADMIN_TOKEN, 'POST', '/api/v1/admin/users', { username, password: STRONG });
    assert.equal((await admin('TRENT')).status, 201);
    assertExists(await admin('ТRЕNТ'), 'confusable', 'ТRЕNТ (mixed-script copy) beside TRENT');
    assertExists(await admin('trent\u0CBC'), 'confusable', 'trent + Kannada nukta');
    assertMixedScripts(await admin('Petrов'), 'Petrов');
  });

  it('concurrent registrations of one name\'s look-alikes create exactly one account', async () => {
    const groups = [
      ['maria2', 'MARIA2', 'Maria2', 'ｍａｒｉａ2', 'mAria2', 'marIa2', 'MARİA2'.toLowerCase(), 'rnaria2'],
      ['COOP', 'СООР', 'C00P', 'coop', 'ϹΟΟΡ', 'cOOp', 'СООР\u0CBC'],
      ['oscar', 'оscar', 'osсar', 'oscаr', 'οscar', 'ｏｓｃａｒ', '0SCAR'],
    ];
    for (const variants of groups) {
      const results = await Promise.all(variants.map((v) => registerAs(server, v)));
      const summary = variants.map((v, i) => `${v}:${results[i]!.status}/${results[i]!.body.error?.details?.reason ?? results[i]!.body.error?.code ?? ''}`).join('  ');
      assert.equal(results.filter((r) => r.status === 201).length, 1, summary);
      for (const r of results) {
        if (r.status === 201) continue;
        // A loser is a taken or look-alike name, or (never an account) a mixed-script one that raced the winner.
        if (r.status === 409) assert.ok(['taken', 'confusable'].includes(r.body.error.details.reason), summary);
        else assertMixedScripts(r, summary);
      }
    }
  });
});

describe('display names: group and product-user names, token name claims', () => {
  let server: TestServer;
  let alice: { id: string; name: string; token: string };
  let client: RawClient;
  let conversationId: string;
  const BAD: Array<[string, RegExp]> = [
    ['a\u202eb\u0000c', /control|U\+0000/], ['a\u202eb', /bidi/], ['x\u2066y\u2069', /bidi/], ['line\nbreak', /control/],
    ['bell\u0007', /control/], ['c1\u009b31m', /control/], ['del\u007f', /control/], ['x'.repeat(201), /at most 200/], ['   ', /at least one/],
    // Nothing visible: zero-width, fillers, braille blank, marks alone, bidi marks alone.
    ['\u200b', /visible/], ['\u3164\u3164', /visible/], ['\u2800', /visible/], ['\u115f', /visible/], ['\u0301\u0302', /visible/], ['\u200e\u200f', /visible/],
    ['\ufeff\u00ad', /visible/],
    ['line\u2028break', /separator/], ['para\u2029graph', /separator/],
    ['hidden\u{E0069}\u{E0067}\u{E006E}', /tag characters/], ['\u{1F3F4}\u{E0067}\u{E0062}', /tag characters/],
    ['bad\ufffd\ufffdbytes', /U\+FFFD/],
    ['\ufff9\ufffa\ufffb', /visible/], ['\u{13430}\u{13431}', /visible/], ['\uffff\ufdd0', /visible/], ['\u0378', /visible/], ['\ufffc', /visible/],
    // Hidden text dressed as a flag: upper-case tags, spaces in tags, or far too many.
    ['Team \u{1F3F4}\u{E0047}\u{E0042}\u{E0045}\u{E004E}\u{E0047}\u{E007F}', /tag characters/],
    ['Team \u{1F3F4}\u{E0069}\u{E0067}\u{E006E}\u{E0020}\u{E0061}\u{E007F}', /tag characters/],
    [`Team \u{1F3F4}${String.fromCodePoint(...Array(30).fill(0xe0061))}\u{E007F}`, /tag characters/],
  ];
  const assertBadName = (res: { status?: number; body?: any; error?: any }, why: RegExp, what: string) => {
    const error = res.error ?? res.body?.error;
    assert.equal(error?.code, 'INVALID_REQUEST', `${what}: ${JSON.stringify(res)}`);
    if (res.status !== undefined) assert.equal(res.status, 400, what);
    assert.equal(error.details[0].path, 'name', what);
    assert.match(error.details[0].message, why, what);
  };

  const userNamed = async (id: string): Promise<string | undefined> => {
    const res = await api(server, ADMIN_TOKEN, 'GET', '/api/v1/admin/users?limit=1000');
    return (res.body.users as Array<{ id: string; name: string }>).find((u) => u.id === id)?.name;
  };

  before(async () => {
    server = await startServer();
    alice = await register(server, 'names-alice');
    client = await RawClient.connect(server.wsUrl, alice.token);
    conversationId = (await client.ok('conversation.create', { name: 'Room 🎉 déjà-vu' })).conversation.id;
  });
  after(async () => {
    client.close();
    await server.stop();
  });

  it('group names over WebSocket: conversation.create and conversation.rename refuse controls and bidi overrides', async () => {
    for (const [bad, why] of BAD) {
      assertBadName(await client.request('conversation.create', { name: bad }), why, `create ${JSON.stringify(bad)}`);
      assertBadName(await client.request('conversation.rename', { conversationId, name: bad }), why, `rename ${JSON.stringify(bad)}`);
    }
    assert.equal((await client.ok('conversation.get', { conversationId })).conversation.name, 'Room 🎉 déjà-vu', 'the name is unchanged');
    const england = '\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}';
    assert.equal((await client.ok('conversation.rename', { conversationId, name: `Fans ${england}` })).conversation.name, `Fans ${england}`, 'a flag tag sequence is fine');
    assert.equal((await client.ok('conversation.rename', { conversationId, name: '\u200fשלום 2\u200e' })).conversation.name, '\u200fשלום 2\u200e', 'bidi marks beside visible text are fine');
    assert.equal((await client.ok('conversation.rename', { conversationId, name: '  עברית and English ✓  ' })).conversation.name, 'עברית and English ✓');
    assert.equal((await client.ok('conversation.get', { conversationId })).conversation.name, 'עברית and English ✓', 'trimmed, kept');
  });

  it('group names over REST and the admin API refuse the same', async () => {
    for (const [bad, why] of BAD) {
      assertBadName(await api(server, alice.token, 'POST', '/api/v1/conversations', { name: bad }), why, `REST create ${JSON.stringify(bad)}`);
      assertBadName(await api(server, alice.token, 'PATCH', `/api/v1/conversations/${conversationId}`, { name: bad }), why, `REST rename ${JSON.stringify(bad)}`);
      assertBadName(await api(server, ADMIN_TOKEN, 'POST', '/api/v1/admin/groups', { name: bad, ownerId: alice.id }), why, `admin group ${JSON.stringify(bad)}`);
    }
    const list = await client.ok('conversation.list', {});
    assert.equal(list.conversations.length, 1, `no group was created: ${JSON.stringify(list)}`);
    assert.equal((await api(server, ADMIN_TOKEN, 'POST', '/api/v1/admin/groups', { name: 'Ops ⚙', ownerId: alice.id })).status, 201);
  });

  it('product-user names (admin PUT /api/v1/admin/users/{id}) refuse the same, creating and changing nothing', async () => {
    for (const [bad, why] of BAD) {
      assertBadName(await api(server, ADMIN_TOKEN, 'PUT', '/api/v1/admin/users/prod-1', { name: bad }), why, `upsert ${JSON.stringify(bad)}`);
    }
    assert.equal(await userNamed('prod-1'), undefined, 'no product user was created');
    assert.equal((await api(server, ADMIN_TOKEN, 'PUT', '/api/v1/admin/users/prod-1', { name: 'Ada Lovelace' })).status, 201);
    assertBadName(await api(server, ADMIN_TOKEN, 'PUT', '/api/v1/admin/users/prod-1', { name: 'a\u202eb\u0000c' }), /control|U\+0000/, 'update');
    assert.equal(await userNamed('prod-1'), 'Ada Lovelace');
  });

  it('refuses a product token whose name or preferred_username claim holds a control or bidi override: 401 and close 4500', async () => {
    const preferred = (value: string) => new SignJWT({ preferred_username: value }).setProtectedHeader({ alg: 'HS256' }).setSubject('claims-user')
      .setIssuedAt().setExpirationTime(Math.floor(Date.now() / 1000) + 3600).sign(new TextEncoder().encode(EXTERNAL_SECRET));
    const cases: Array<[string, RegExp]> = [
      [await signToken(EXTERNAL_SECRET, null, 'claims-user', { name: 'a\u202eb\u0000c' }), /name claim: .*control/],
      [await signToken(EXTERNAL_SECRET, null, 'claims-user', { name: 'evil\u2067' }), /name claim: .*bidi/],
      [await preferred('x\u202ay'), /preferred_username claim: .*bidi/],
      [await preferred('esc\u001b[2J'), /preferred_username claim: .*control/],
      // Judged as kept (cut at 128 characters): the cut must not leave nothing visible or a flag without its end.
      [await signToken(EXTERNAL_SECRET, null, 'claims-user', { name: `${'\u200b'.repeat(130)}A` }), /name claim: .*visible/],
      [await signToken(EXTERNAL_SECRET, null, 'claims-user', { name: `${'a'.repeat(124)}\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}b` }), /name claim: .*tag characters/],
    ];
    for (const [token, why] of cases) {
      const res = await api(server, token, 'GET', '/api/v1/me');
      assert.equal(res.status, 401, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'UNAUTHORIZED');
      assert.match(res.body.error.message, why);
      const ws = await RawClient.connect(server.wsUrl, token, { waitWelcome: false });
      assert.equal((await ws.waitClose()).code, 4500);
    }
    assert.equal(await userNamed('claims-user'), undefined, 'no user was created');
    const fine = await api(server, await signToken(EXTERNAL_SECRET, null, 'claims-user', { name: 'Ada 🎉' }), 'GET', '/api/v1/me');
    assert.equal(fine.status, 200, JSON.stringify(fine.body));
    const cut = await api(server, await signToken(EXTERNAL_SECRET, null, 'claims-cut', { name: `a${' '.repeat(127)}b` }), 'GET', '/api/v1/me');
    assert.equal(cut.status, 200);
    assert.equal(cut.body.user.name, 'a', 'cut at 128 characters, then trimmed');
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
    const lookAlike = await cli(['user', 'add', 'ИBAH', '--password', STRONG]);
    assert.notEqual(lookAlike.code, 0);
    assert.match(lookAlike.stderr, /ACCOUNT_EXISTS.*looks like|may not mix/);
    assert.equal((await cli(['user', 'add', 'BOB', '--password', STRONG])).code, 0);
    for (const copy of ['ВОВ', 'Воb', 'bob\u0CBC', 'B0B']) {
      const res = await cli(['user', 'add', copy, '--password', STRONG]);
      assert.notEqual(res.code, 0, copy);
      assert.match(res.stderr, /ACCOUNT_EXISTS.*looks like/, copy);
    }
    const mixed = await cli(['user', 'add', 'Petrов', '--password', STRONG]);
    assert.notEqual(mixed.code, 0);
    assert.match(mixed.stderr, /INVALID_REQUEST.*may not mix/);
    const invisible = await cli(['user', 'add', 'ol\u200bga', '--password', STRONG]);
    assert.notEqual(invisible.code, 0);
    assert.match(invisible.stderr, /invisible/);
  });
});

describe('the CLI applies the display-name rule', () => {
  let dataDir: string;
  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'parley-cli-names-'));
  });
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  const cli = (args: string[]) => run(process.execPath, [CLI, ...args, '--data-dir', dataDir], { env: { PATH: process.env.PATH ?? '' } })
    .then((ok: { stderr: string }) => ({ code: 0, stderr: ok.stderr }), (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }));

  it('user upsert and token --create --name refuse bidi overrides and controls in a product user\'s name', async () => {
    for (const args of [['user', 'upsert', 'cust-1', '--name', 'a\u202eb'], ['token', 'cust-2', '--create', '--name', 'x\u2066y']]) {
      const res = await cli(args);
      assert.notEqual(res.code, 0, args.join(' '));
      assert.match(res.stderr, /bidi/, `${args.join(' ')}: ${res.stderr}`);
    }
    const tab = await cli(['user', 'upsert', 'cust-3', '--name', 'a\tb']);
    assert.notEqual(tab.code, 0);
    assert.match(tab.stderr, /control/);
    assert.equal((await cli(['user', 'upsert', 'cust-1', '--name', 'Ada Lovelace'])).code, 0);
    // token --create stores the name trimmed, as upsert does (white space includes U+2028, U+2029 and U+3000).
    const created = await cli(['token', 'cust-4', '--create', '--name', '\u3000\u2028Zoë \u2029']);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stderr, /token for user cust-4 \("Zoë", product user\)/);
  });
});

describe('accounts created before the normalised names (migration 004)', () => {
  let dataDir: string;
  let server: TestServer;
  const ids = { ivan: 'legacy-ivan', ivanLower: 'legacy-ivan-lower', bob: 'legacy-bob', paypal: 'legacy-paypal', paypalI: 'legacy-paypal-capital-i' };
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
    // Two accounts that look alike under today's rules (same skeletons, different keys): the skeleton indexes are not
    // unique, so the migration keeps both.
    insert.run(ids.paypal, 'paypal', await hashPassword('paypal legacy password'), 4);
    insert.run(ids.paypalI, 'paypaI', await hashPassword('paypaI legacy password'), 5);
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

  it('keeps two existing look-alike accounts (the skeleton indexes are not unique), and refuses a third', async () => {
    assert.equal((await loginAs(server, 'PAYPAL', 'paypal legacy password')).body.user?.id, ids.paypal);
    assert.equal((await loginAs(server, 'paypaI', 'paypaI legacy password')).body.user?.id, ids.paypalI);
    assertExists(await registerAs(server, 'PAYPAI'), 'taken', 'PAYPAI (the key of paypaI)');
    assertExists(await registerAs(server, 'paypa1'), 'confusable', 'paypa1');
    assertExists(await registerAs(server, 'раураl'.replace('l', 'ӏ')), 'confusable', 'Cyrillic раураӏ');
  });
});
