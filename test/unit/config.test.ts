import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError, describeEnvironmentVariables, loadConfig } from '../../src/config/load.js';

const dir = mkdtempSync(join(tmpdir(), 'parley-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
function yamlFile(text: string): string {
  const file = join(dir, `config-${++fileCount}.yaml`);
  writeFileSync(file, text);
  return file;
}

/** Run loadConfig expecting a ConfigError; returns its message lines. */
function mistakes(options: Parameters<typeof loadConfig>[0]): string[] {
  try {
    loadConfig(options);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.equal(err.message.split('\n').length, err.problems.length + 1);
    return err.message.split('\n').slice(1);
  }
  assert.fail('expected a ConfigError');
}

describe('defaults', () => {
  test('an empty environment and no file give the schema defaults', () => {
    const config = loadConfig({ env: {} });
    assert.equal(config.server.host, '0.0.0.0');
    assert.equal(config.server.port, 8080);
    assert.equal(config.dataDir, './data');
    assert.equal(config.store.sqlite.synchronous, 'full');
    assert.equal(config.auth.accounts.issuer, 'parley');
    assert.equal(config.auth.jwt.clockToleranceSeconds, 30);
    assert.deepEqual(config.limits.connectionRate, { perSecond: 50, burst: 100 });
    assert.equal(config.log.level, 'info');
  });

  test('derived defaults: the database lives in dataDir, the instance has an id', () => {
    assert.equal(loadConfig({ env: {} }).store.sqlite.path, join('data', 'parley.db'));
    assert.equal(loadConfig({ env: { PARLEY_DATA_DIR: '/srv/parley' } }).store.sqlite.path, '/srv/parley/parley.db');
    assert.equal(loadConfig({ env: { PARLEY_DATA_DIR: '/srv/parley', PARLEY_STORE_SQLITE_PATH: '/db/x.db' } }).store.sqlite.path, '/db/x.db');
    assert.match(loadConfig({ env: {} }).server.instanceId ?? '', /-\d+$/);
  });

  test('a partial section keeps the defaults of its other fields', () => {
    const config = loadConfig({ env: {}, file: yamlFile('limits:\n  maxPageSize: 7\n') });
    assert.equal(config.limits.maxPageSize, 7);
    assert.equal(config.limits.maxMessageBytes, 4096);
    assert.deepEqual(config.limits.connectionRate, { perSecond: 50, burst: 100 });
  });

  test('a section given in part keeps the defaults of its other fields, even a rate', () => {
    const config = loadConfig({ env: { PARLEY_LIMITS_USER_MESSAGE_RATE_PER_SECOND: '5' }, file: yamlFile('limits:\n  connectionRate:\n    burst: 7\n') });
    assert.deepEqual(config.limits.connectionRate, { perSecond: 50, burst: 7 });
    assert.deepEqual(config.limits.userMessageRate, { perSecond: 5, burst: 50 });
  });

  test('loading never mutates the defaults shared between loads', () => {
    loadConfig({ env: { PARLEY_DATA_DIR: '/one' } });
    assert.equal(loadConfig({ env: { PARLEY_DATA_DIR: '/two' } }).store.sqlite.path, '/two/parley.db');
    const a = loadConfig({ env: {} });
    a.limits.connectionRate.burst = 1;
    assert.equal(loadConfig({ env: {} }).limits.connectionRate.burst, 100);
  });

  test('an empty YAML file and empty sections are fine', () => {
    assert.equal(loadConfig({ env: {}, file: yamlFile('') }).server.port, 8080);
    assert.equal(loadConfig({ env: {}, file: yamlFile('server:\nauth:\n  jwt:\n') }).server.port, 8080);
  });
});

describe('precedence: defaults < YAML < environment < overrides', () => {
  const file = () => yamlFile('server:\n  port: 1111\n  host: 10.0.0.1\nlog:\n  level: debug\ndataDir: /from/yaml\n');

  test('YAML over defaults', () => {
    const config = loadConfig({ env: {}, file: file() });
    assert.equal(config.server.port, 1111);
    assert.equal(config.server.host, '10.0.0.1');
    assert.equal(config.log.level, 'debug');
    assert.equal(config.heartbeat.intervalMs, 25_000);
  });

  test('environment over YAML', () => {
    const config = loadConfig({ env: { PARLEY_SERVER_PORT: '2222' }, file: file() });
    assert.equal(config.server.port, 2222);
    assert.equal(config.server.host, '10.0.0.1');
  });

  test('overrides over environment', () => {
    const config = loadConfig({ env: { PARLEY_SERVER_PORT: '2222', PARLEY_LOG_LEVEL: 'warn' }, file: file(), overrides: { server: { port: 3333 } } });
    assert.equal(config.server.port, 3333);
    assert.equal(config.log.level, 'warn');
    assert.equal(config.dataDir, '/from/yaml');
  });

  test('undefined overrides (flags not given) change nothing', () => {
    const config = loadConfig({ env: { PARLEY_SERVER_PORT: '2222' }, overrides: { server: { port: undefined, host: undefined }, dataDir: undefined } });
    assert.equal(config.server.port, 2222);
    assert.equal(config.server.host, '0.0.0.0');
  });

  test('string overrides (raw flag values) are coerced like environment values', () => {
    assert.equal(loadConfig({ env: {}, overrides: { server: { port: '4444' } } }).server.port, 4444);
  });

  test('the file can come from PARLEY_CONFIG; options.file wins over it', () => {
    const other = yamlFile('server:\n  port: 5555\n');
    assert.equal(loadConfig({ env: { PARLEY_CONFIG: file() } }).server.port, 1111);
    assert.equal(loadConfig({ env: { PARLEY_CONFIG: file() }, file: other }).server.port, 5555);
  });
});

describe('environment variable names are derived from the schema', () => {
  const names = new Map(describeEnvironmentVariables().map((v) => [v.path, v.name]));

  test('camelCase paths become PARLEY_SCREAMING_SNAKE', () => {
    assert.equal(names.get('limits.maxMessageBytes'), 'PARLEY_LIMITS_MAX_MESSAGE_BYTES');
    assert.equal(names.get('server.port'), 'PARLEY_SERVER_PORT');
    assert.equal(names.get('auth.jwt.secret'), 'PARLEY_AUTH_JWT_SECRET');
    assert.equal(names.get('dataDir'), 'PARLEY_DATA_DIR');
    assert.equal(names.get('limits.connectionRate.perSecond'), 'PARLEY_LIMITS_CONNECTION_RATE_PER_SECOND');
    assert.equal(names.get('auth.jwt.jwksUrl'), 'PARLEY_AUTH_JWT_JWKS_URL');
  });

  test('every leaf has exactly one distinct variable, with its type and default', () => {
    const list = describeEnvironmentVariables();
    assert.equal(new Set(list.map((v) => v.name)).size, list.length);
    assert.ok(list.length >= 40);
    const port = list.find((v) => v.path === 'server.port');
    assert.equal(port?.type, 'a whole number between 0 and 65535');
    assert.equal(port?.default, '8080');
    assert.equal(list.find((v) => v.path === 'store.sqlite.path')?.default, '<dataDir>/parley.db');
  });

  test('the default shown for every variable is the default the server runs with (sections with their own defaults too)', () => {
    const loaded = loadConfig({ env: {} }) as unknown as Record<string, unknown>;
    const at = (path: string): unknown => path.split('.').reduce<any>((node, key) => node?.[key], loaded);
    for (const v of describeEnvironmentVariables()) {
      const actual = at(v.path);
      if (actual === undefined || v.path === 'store.sqlite.path' || v.path === 'server.instanceId') continue; // derived
      assert.equal(v.default, Array.isArray(actual) ? actual.join(',') || 'none' : String(actual), `${v.name}`);
    }
    const byPath = new Map(describeEnvironmentVariables().map((v) => [v.path, v.default]));
    assert.equal(byPath.get('limits.connectionRate.perSecond'), '50');
    assert.equal(byPath.get('limits.connectionRate.burst'), '100');
  });

  test('values are coerced to the leaf type', () => {
    const config = loadConfig({
      env: {
        PARLEY_LIMITS_MAX_MESSAGE_BYTES: '1234',
        PARLEY_LIMITS_CONNECTION_RATE_PER_SECOND: '2.5',
        PARLEY_AUTH_ACCOUNTS_ENABLED: 'false',
        PARLEY_STORE_SQLITE_SYNCHRONOUS: 'normal',
        PARLEY_AUTH_JWT_SECRET: 's'.repeat(40),
        PARLEY_SERVER_HOST: '127.0.0.1',
      },
    });
    assert.equal(config.limits.maxMessageBytes, 1234);
    assert.equal(config.limits.connectionRate.perSecond, 2.5);
    assert.equal(config.auth.accounts.enabled, false);
    assert.equal(config.store.sqlite.synchronous, 'normal');
    assert.equal(config.auth.jwt.secret, 's'.repeat(40));
    assert.equal(config.server.host, '127.0.0.1');
  });

  test('booleans accept true/false/1/0', () => {
    for (const [raw, value] of [['true', true], ['TRUE', true], ['1', true], ['false', false], ['0', false]] as const) {
      assert.equal(loadConfig({ env: { PARLEY_AUTH_ACCOUNTS_ENABLED: raw } }).auth.accounts.enabled, value, raw);
    }
  });

  test('an empty variable counts as unset; non-PARLEY variables are ignored', () => {
    assert.equal(loadConfig({ env: { PARLEY_SERVER_PORT: '', HOME: '/root', PORT: 'abc' } }).server.port, 8080);
  });
});

describe('mistakes are reported as "path: problem (from source)", all at once', () => {
  test('a bad number from the environment', () => {
    assert.deepEqual(mistakes({ env: { PARLEY_SERVER_PORT: 'abc' } }), [
      'server.port: expected a whole number between 0 and 65535, got "abc" (from PARLEY_SERVER_PORT)',
    ]);
  });

  test('a number out of range, from YAML, names the file', () => {
    const file = yamlFile('server:\n  port: 70000\n');
    assert.deepEqual(mistakes({ env: {}, file }), [`server.port: expected a whole number between 0 and 65535, got 70000 (from ${file})`]);
  });

  test('a number out of range from a flag names the flag', () => {
    assert.deepEqual(mistakes({ env: {}, overrides: { server: { port: '99999' } }, overrideSources: { 'server.port': '--port' } }), [
      'server.port: expected a whole number between 0 and 65535, got 99999 (from --port)',
    ]);
  });

  test('a wrong type in YAML', () => {
    const file = yamlFile('server:\n  port: "eighty"\nauth:\n  accounts:\n    enabled: maybe\n');
    assert.deepEqual(mistakes({ env: {}, file }), [
      `server.port: expected a whole number between 0 and 65535, got "eighty" (from ${file})`,
      `auth.accounts.enabled: expected true or false, got "maybe" (from ${file})`,
    ]);
  });

  test('an unknown environment variable, with a suggestion when close', () => {
    assert.deepEqual(mistakes({ env: { PARLEY_SERVER_PROT: '80' } }), [
      'PARLEY_SERVER_PROT: unknown environment variable; did you mean PARLEY_SERVER_PORT? (from environment)',
    ]);
    assert.deepEqual(mistakes({ env: { PARLEY_PORT: '80' } }), [
      'PARLEY_PORT: unknown environment variable; did you mean PARLEY_SERVER_PORT? (from environment)',
    ]);
    assert.deepEqual(mistakes({ env: { PARLEY_FROBNICATE_EVERYTHING: 'yes' } }), [
      'PARLEY_FROBNICATE_EVERYTHING: unknown environment variable (from environment)',
    ]);
  });

  test('PARLEY_CONFIG is not a config leaf but is allowed', () => {
    assert.equal(loadConfig({ env: { PARLEY_CONFIG: yamlFile('') } }).server.port, 8080);
  });

  test('an unknown YAML key, at any depth, with a suggestion', () => {
    const file = yamlFile('server:\n  prot: 80\nlimits:\n  connectionRate:\n    perSecond: 1\n    burst: 2\n    brust: 3\nfrobnicate: true\n');
    assert.deepEqual(mistakes({ env: {}, file }), [
      `server.prot: unknown setting; did you mean "server.port"? (from ${file})`,
      `limits.connectionRate.brust: unknown setting; did you mean "limits.connectionRate.burst"? (from ${file})`,
      `frobnicate: unknown setting (from ${file})`,
    ]);
  });

  test('a bad enum value lists the choices', () => {
    assert.deepEqual(mistakes({ env: { PARLEY_LOG_LEVEL: 'loud' } }), [
      'log.level: expected one of "fatal", "error", "warn", "info", "debug", "trace", "silent", got "loud" (from PARLEY_LOG_LEVEL)',
    ]);
    const file = yamlFile('store:\n  sqlite:\n    synchronous: fast\n');
    assert.deepEqual(mistakes({ env: {}, file }), [`store.sqlite.synchronous: expected one of "full", "normal", got "fast" (from ${file})`]);
  });

  test('a bad boolean from the environment', () => {
    assert.deepEqual(mistakes({ env: { PARLEY_AUTH_ACCOUNTS_ENABLED: 'yes' } }), [
      'auth.accounts.enabled: expected true, false, 1 or 0, got "yes" (from PARLEY_AUTH_ACCOUNTS_ENABLED)',
    ]);
  });

  test('a secret that is too short is described, never echoed', () => {
    const lines = mistakes({ env: { PARLEY_AUTH_JWT_SECRET: 'hunter2' } });
    assert.deepEqual(lines, ['auth.jwt.secret: expected a string of at least 32 characters, got 7 characters (from PARLEY_AUTH_JWT_SECRET)']);
    assert.ok(!lines.join('\n').includes('hunter2'));
  });

  test('a Redis URL is never echoed (it may hold a password), and a Redis engine needs one', () => {
    const lines = mistakes({ env: { PARLEY_REDIS_URL: 'http://:hunter2@cache:6379' } });
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^redis\.url: .*a redis:\/\/ or rediss:\/\/ URL.*\(from PARLEY_REDIS_URL\)$/);
    assert.ok(!lines[0]!.includes('hunter2'), lines[0]);
    assert.deepEqual(mistakes({ env: { PARLEY_BUS_KIND: 'redis', PARLEY_PRESENCE_KIND: 'redis', PARLEY_RATELIMIT_KIND: 'redis' } }).map((l) => l.replace(/ \(from .*\)$/, '')), [
      "redis.url: required when bus.kind, presence.kind, ratelimit.kind are 'redis'",
      "auth.accounts.secret: required when bus.kind is 'redis' (several instances): every instance must sign and verify the same tokens; set the same value (32 characters or more) on each",
    ]);
    const config = loadConfig({ env: { PARLEY_PRESENCE_KIND: 'redis', PARLEY_REDIS_URL: 'redis://:pw@cache:6379/2' } });
    assert.deepEqual([config.presence.kind, config.bus.kind, config.ratelimit.kind, config.redis.keyPrefix], ['redis', 'memory', 'memory', 'parley:']);
  });

  test('a bad URL', () => {
    assert.deepEqual(mistakes({ env: { PARLEY_AUTH_JWT_JWKS_URL: 'not a url' } }), [
      'auth.jwt.jwksUrl: expected a URL, got "not a url" (from PARLEY_AUTH_JWT_JWKS_URL)',
    ]);
  });

  test('several mistakes from several sources are listed together, one per line', () => {
    const file = yamlFile('server:\n  prot: 80\n');
    const lines = mistakes({ env: { PARLEY_SERVER_PORT: 'abc', PARLEY_TYPO: '1' }, file, overrides: { log: { level: 'loud' as 'info' } } });
    assert.equal(lines.length, 4);
    assert.ok(lines.some((l) => l.startsWith('server.prot: unknown setting')));
    assert.ok(lines.some((l) => l.startsWith('server.port: expected a whole number')));
    assert.ok(lines.some((l) => l.startsWith('PARLEY_TYPO: unknown environment variable')));
    assert.ok(lines.some((l) => l === 'log.level: expected one of "fatal", "error", "warn", "info", "debug", "trace", "silent", got "loud" (from command line)'));
  });

  test('a missing file and a YAML syntax error', () => {
    const missing = join(dir, 'nope.yaml');
    assert.deepEqual(mistakes({ env: {}, file: missing, fileSource: '--config' }), [`${missing}: cannot read the config file: no such file (from --config)`]);
    const broken = yamlFile('server:\n  port: [1, 2\n');
    const [line] = mistakes({ env: {}, file: broken });
    assert.match(line, /YAML syntax error at line \d+/);
    const notMapping = yamlFile('- a\n- b\n');
    assert.deepEqual(mistakes({ env: {}, file: notMapping }), [`${notMapping}: expected a mapping of settings at the top level (from options.file)`]);
  });
});

describe('limits that depend on each other', () => {
  test('refuse an outgoing backlog level below twice the largest event one message makes (catch-up would be impossible)', () => {
    const lines = mistakes({ env: { PARLEY_LIMITS_MAX_OUTGOING_BYTES: '4096', PARLEY_LIMITS_MAX_OUTGOING_HARD_BYTES: '8192' } });
    assert.ok(lines.some((l) => /limits\.maxOutgoingBytes: .*must be at least 61440 bytes: twice the largest event one message makes/.test(l)), lines.join('\n'));
    // Smaller messages allow a smaller level: 6 × 1000 + 1000 + 2048 = 9048 per event.
    const config = loadConfig({ env: {
      PARLEY_LIMITS_MAX_MESSAGE_BYTES: '1000', PARLEY_LIMITS_MAX_META_BYTES: '1000',
      PARLEY_LIMITS_MAX_OUTGOING_BYTES: '18096', PARLEY_LIMITS_MAX_OUTGOING_HARD_BYTES: '36192',
    } });
    assert.equal(config.limits.maxOutgoingBytes, 18096);
  });
});

describe('the outgoing budget and pages', () => {
  test('refuse a process-wide outgoing budget below two pages (a page request reserves maxReplyBytes of it)', () => {
    const lines = mistakes({ env: { PARLEY_LIMITS_MAX_OUTGOING_TOTAL_BYTES: '65536' } });
    assert.deepEqual(lines, ['limits.maxOutgoingTotalBytes: must be at least twice the reply budget (524288 bytes; limits.maxReplyBytes, at most half of limits.maxOutgoingBytes): each page request reserves that much of it while it is served (from PARLEY_LIMITS_MAX_OUTGOING_TOTAL_BYTES)']);
    // The budget in force counts: 20 MiB pages are cut at half of maxOutgoingBytes (512 KiB), so the default 32 MiB is fine.
    assert.equal(loadConfig({ env: { PARLEY_LIMITS_MAX_REPLY_BYTES: String(20 * 1024 * 1024) } }).limits.maxOutgoingTotalBytes, 32 * 1024 * 1024);
    const smallPages = loadConfig({ env: { PARLEY_LIMITS_MAX_OUTGOING_TOTAL_BYTES: '65536', PARLEY_LIMITS_MAX_REPLY_BYTES: '32768' } });
    assert.equal(smallPages.limits.maxOutgoingTotalBytes, 65536);
  });
});

describe('the store engine', () => {
  test('postgres is chosen with its url, from the environment or a file; its pool settings have defaults', () => {
    const url = 'postgres://parley:pw@db.internal:5432/parley';
    const config = loadConfig({ env: { PARLEY_STORE_KIND: 'postgres', PARLEY_STORE_POSTGRES_URL: url, PARLEY_STORE_POSTGRES_POOL_SIZE: '20' } });
    assert.equal(config.store.kind, 'postgres');
    assert.deepEqual(config.store.postgres, { url, poolSize: 20, connectTimeoutMs: 5000, statementTimeoutMs: 30_000, maxQueuedWrites: 10_000 });
    const fromFile = loadConfig({ env: {}, file: yamlFile(`store:\n  kind: postgres\n  postgres:\n    url: ${url}\n`) });
    assert.equal(fromFile.store.postgres.url, url);
  });

  test('postgres without a url, a url of another scheme, or an unknown engine is refused, naming the setting', () => {
    assert.deepEqual(mistakes({ env: { PARLEY_STORE_KIND: 'postgres' } }).map((line) => line.split(':')[0]), ['store.postgres.url']);
    const scheme = mistakes({ env: { PARLEY_STORE_KIND: 'postgres', PARLEY_STORE_POSTGRES_URL: 'mysql://x/y' } });
    assert.equal(scheme.length, 1);
    assert.match(scheme[0], /store\.postgres\.url.*postgres:\/\//);
    assert.match(mistakes({ env: { PARLEY_STORE_KIND: 'mongodb' } }).join('\n'), /store\.kind/);
  });

  test('a # or another unencoded URL character in a password is refused with how to encode it, never echoing it', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['PARLEY_STORE_POSTGRES_URL', 'postgres://parley:se#cretpw@db:5432/parley', /^store\.postgres\.url: not a valid URL .*# as %23/],
      ['PARLEY_STORE_POSTGRES_URL', 'postgres://parley:se@cr#etpw@db:5432/parley', /^store\.postgres\.url: holds a # .*%23/],
      ['PARLEY_REDIS_URL', 'redis://:se#cretpw@cache:6379', /^redis\.url: not a valid URL .*# as %23/],
      ['PARLEY_REDIS_URL', 'redis://:cretpw@cache:6379/0#x', /^redis\.url: holds a # .*%23/],
    ];
    for (const [name, url, expected] of cases) {
      const engines = name === 'PARLEY_REDIS_URL' ? { PARLEY_PRESENCE_KIND: 'redis' } : { PARLEY_STORE_KIND: 'postgres' };
      const lines = mistakes({ env: { ...engines, [name]: url } });
      assert.equal(lines.length, 1, lines.join('\n'));
      assert.match(lines[0]!, expected);
      assert.ok(!lines[0]!.includes('cretpw'), lines[0]);
    }
    // Encoded, the same passwords are accepted; so is a libpq URL naming a socket folder instead of a host.
    for (const url of ['postgres://parley:se%23cretpw@db:5432/parley', 'postgres:///parley?host=/var/run/postgresql']) {
      assert.equal(loadConfig({ env: { PARLEY_STORE_KIND: 'postgres', PARLEY_STORE_POSTGRES_URL: url } }).store.postgres.url, url);
    }
  });

  test('a cluster (bus on Redis) with presence or rate limits in memory is refused, saying what would go wrong', () => {
    const lines = mistakes({ env: { PARLEY_BUS_KIND: 'redis', PARLEY_REDIS_URL: 'redis://cache:6379', PARLEY_AUTH_ACCOUNTS_SECRET: 'x'.repeat(40) } });
    assert.deepEqual(lines.map((l) => l.split(':')[0]), ['presence.kind', 'ratelimit.kind']);
    assert.match(lines[0]!, /look offline/);
    assert.match(lines[1]!, /N times/);
  });
});
