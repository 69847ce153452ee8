import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError, describeEnvironmentVariables, loadConfig } from './config/load.js';
import type { Config } from './config/schema.js';
import { MAX_USER_METADATA_BYTES, productUserSchema, upsertProductUser } from './domain/product-users.js';
import { openListener } from './http/listener.js';
import { createLogger } from './logging.js';
import type { RunningServer } from './main.js';
import { displayNameProblem } from './protocol/display-names.js';
import { isParleyError } from './protocol/errors.js';
import type { Store, UserRecord } from './store/store.js';
import { findRefused, illFormedDetail, stringRefusal } from './protocol/well-formed.js';

// The server and the engines are imported by the commands that use them, not here: `parley serve` opens its port
// before loading them (most of a start), and the other commands load only what they need.
const server = () => import('./main.js');

/** A mistake in how the command was used: printed without a stack, exit code 1. */
class UsageError extends Error {}

const EXIT_FAILURE = 1;
const EXIT_CONFIG = 2;

// ---------------------------------------------------------------------------------------------------------- helpers

interface ConfigFlags {
  config?: string;
  port?: string;
  host?: string;
  dataDir?: string;
  logLevel?: string;
}

/** defaults < YAML (--config or PARLEY_CONFIG) < PARLEY_* < flags. Throws ConfigError. */
function configFrom(flags: ConfigFlags): Config {
  return loadConfig({
    file: flags.config,
    fileSource: '--config',
    overrides: {
      server: { port: flags.port, host: flags.host },
      dataDir: flags.dataDir,
      log: { level: flags.logLevel },
    },
    overrideSources: { 'server.port': '--port', 'server.host': '--host', dataDir: '--data-dir', 'log.level': '--log-level' },
  });
}

function withConfigOption(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'YAML configuration file (default: $PARLEY_CONFIG)')
    .option('-d, --data-dir <dir>', 'folder of the database and the signing secret (default: ./data)');
}

function positiveInt(name: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) <= 0) throw new InvalidArgumentError(`${name} must be a positive whole number.`);
    return Number(value);
  };
}

function readPackageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('Password (end with Enter, then Ctrl-D): ');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

function environmentHelp(): string {
  const rows = describeEnvironmentVariables();
  const width = Math.max(...rows.map((r) => r.name.length));
  const lines = rows.map((r) => `  ${r.name.padEnd(width)}  ${r.path}: ${r.type}${r.default !== undefined ? ` (default ${r.default})` : ''}`);
  return [
    '',
    'Configuration, lowest precedence first: defaults < YAML file (--config or PARLEY_CONFIG) < environment < flags.',
    'Environment variables:',
    '  PARLEY_CONFIG'.padEnd(width + 4) + '  the YAML configuration file',
    ...lines,
  ].join('\n');
}

// ------------------------------------------------------------------------------------------------------------ serve

async function serve(flags: ConfigFlags): Promise<void> {
  const config = configFrom(flags);
  const logger = createLogger(config);
  // Listening comes first: a client that reconnects while the rest of the server loads waits on an open connection,
  // served as soon as the server is ready, instead of being refused and backing off (src/http/listener.ts).
  const listener = await openListener(config);
  let running: RunningServer;
  try {
    const { startServer } = await server();
    running = await startServer(config, { logger, listener });
  } catch (err) {
    listener.abort();
    throw err;
  }

  const wsUrl = running.url.replace(/^http/, 'ws').replace(/\/+$/, '') + '/ws';
  const hints = [
    '',
    `Parley is listening on ${running.url}  (WebSocket: ${wsUrl})`,
    `Data folder: ${config.dataDir}  (store: ${storeDescription(config)})`,
    '',
    'Get a token to try it:',
    `  ${cliCommand()} token demo-user --create${flags.config ? ` --config ${shellWord(flags.config)}` : ''}${flags.dataDir ? ` --data-dir ${shellWord(flags.dataDir)}` : ''}`,
  ];
  if (config.auth.accounts.enabled) {
    hints.push(
      '  or register an account:',
      `  curl -s -X POST ${running.url}/api/v1/accounts -H 'content-type: application/json' \\`,
      `       -d '{"username":"alice","password":"violet tugboat fifty lantern"}'`,
      `  (log in later with POST ${running.url}/api/v1/sessions, same body)`,
    );
  } else {
    hints.push('  (built-in accounts are off: clients bring tokens from your product, see auth.jwt)');
  }
  hints.push('Press Ctrl-C to stop.', '');
  process.stderr.write(hints.join('\n') + '\n');

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      process.stderr.write(`${signal} again: exiting without draining\n`);
      process.exit(EXIT_FAILURE);
    }
    stopping = true;
    process.stderr.write(`${signal}: draining (up to ${config.shutdown.drainMs} ms)...\n`);
    const timer = setTimeout(() => {
      logger.error('shutdown took too long; exiting');
      process.exit(EXIT_FAILURE);
    }, config.shutdown.drainMs + 10_000);
    timer.unref();
    running.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(EXIT_FAILURE);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

// --------------------------------------------------------------------------------------------------- store commands

async function migrate(flags: ConfigFlags): Promise<void> {
  const config = configFrom(flags);
  const { openStore } = await server();
  const store = await openStore(config);
  try {
    await store.migrate();
  } finally {
    await store.close();
  }
  process.stderr.write(`Store is up to date: ${storeDescription(config)}\n`);
}

/** Where the store is, for a person: the SQLite file, or the PostgreSQL URL without its password. */
function storeDescription(config: Config): string {
  if (config.store.kind === 'sqlite') return config.store.sqlite.path ?? '(no path)';
  try {
    const url = new URL(config.store.postgres.url ?? '');
    if (url.password) url.password = '***';
    return `PostgreSQL ${url.toString()}`;
  } catch {
    return 'PostgreSQL (unparsable store.postgres.url)';
  }
}

async function userAdd(username: string, flags: ConfigFlags & { password?: string; passwordStdin?: boolean; admin?: boolean }): Promise<void> {
  if (flags.password !== undefined && flags.passwordStdin) throw new UsageError('give either --password or --password-stdin, not both');
  if (flags.password === undefined && !flags.passwordStdin) throw new UsageError('a password is needed: --password-stdin (recommended) or --password P');
  const config = configFrom(flags);
  // The same rules as registration over REST: username rules, password policy; the store refuses taken and
  // confusable names (ACCOUNT_EXISTS).
  const [{ checkNewPassword, usernameSchema }, { hashPassword }, { openStore }] = await Promise.all([
    import('./auth/accounts.js'), import('./auth/passwords.js'), server(),
  ]);
  const name = usernameSchema.safeParse(username);
  if (!name.success) throw new UsageError(`invalid username "${username}": ${name.error.issues[0]?.message ?? 'not allowed'}`);
  const password = flags.passwordStdin ? (await readStdin()).replace(/\r?\n$/, '') : flags.password!;
  refuseArguments([['the password', password]]);
  try {
    await checkNewPassword(password, name.data, config.auth.accounts);
  } catch (err) {
    const suggestions = isParleyError(err) ? (err.details as { suggestions?: string[] } | undefined)?.suggestions ?? [] : [];
    if (isParleyError(err)) throw new UsageError([`${err.code}: ${err.message}`, ...suggestions.map((s) => `  - ${s}`)].join('\n'));
    throw err;
  }

  const store = await openStore(config);
  try {
    const user = await store.createUser({
      id: randomUUID(),
      name: name.data,
      passwordHash: await hashPassword(password),
      isAdmin: flags.admin ?? false,
      now: Date.now(),
    });
    printJson({ user: { id: user.id, name: user.name, isAdmin: user.isAdmin } });
  } finally {
    await store.close();
  }
}

type Lookup = 'id' | 'username';

/** The user a `parley token` argument names: by id or by username (`by` forces one). Refuses an ambiguous argument. */
async function resolveUser(store: Store, which: string, by: Lookup | undefined): Promise<{ user: UserRecord; foundBy: Lookup } | null> {
  const byId = by === 'username' ? null : await store.getUser(which);
  const byName = by === 'id' ? null : await store.getUserByName(which);
  if (byId && byName && byId.id !== byName.id) {
    throw new UsageError(`"${which}" is the id of user ${byId.id} ("${byId.name}") and the username of user ${byName.id}; say which with --by id or --by username`);
  }
  if (byId) return { user: byId, foundBy: 'id' };
  if (byName) return { user: byName, foundBy: 'username' };
  return null;
}

/** The first argument no request could carry (a lone surrogate, U+0000: stringRefusal), as a usage error naming it. */
function refuseArguments(args: ReadonlyArray<readonly [string, string | undefined]>): void {
  for (const [what, value] of args) {
    const refusal = value === undefined ? null : stringRefusal(value);
    if (refusal) throw new UsageError(`${what} is ${refusal}`);
  }
}

async function token(which: string, flags: ConfigFlags & { name?: string; ttl?: number; create?: boolean; by?: Lookup }): Promise<void> {
  const config = configFrom(flags);
  refuseArguments([['the user', which], ['--name', flags.name]]);
  const nameProblem = flags.name === undefined ? null : displayNameProblem(flags.name.trim());
  if (nameProblem) throw new UsageError(`invalid --name: ${nameProblem}`);
  const [{ createTokenService }, { resolveOwnSecret }, { openStore }] = await Promise.all([
    import('./auth/tokens.js'), import('./auth/secret.js'), server(),
  ]);
  const service = createTokenService(config.auth, await resolveOwnSecret(config));
  const store = await openStore(config);
  let user: UserRecord;
  let what: string;
  try {
    const found = await resolveUser(store, which, flags.by);
    if (found) {
      if (flags.name !== undefined) throw new UsageError(`--name only names a user created with --create; ${found.user.id} exists and parley token never renames a user`);
      user = found.user;
      what = `found by ${found.foundBy}`;
    } else if (flags.create && flags.by !== 'username') {
      user = (await upsertProductUser(store, which, { name: flags.name?.trim() ?? which }, Date.now())).user;
      what = 'created now as a product user (no password)';
    } else {
      throw new UsageError(`no user has the ${flags.by ?? 'id or username'} "${which}"; nothing was created. ` +
        `Register an account (${cliCommand()} user add) or, for a user of your product, add --create (with --name "Display name").`);
    }
  } finally {
    await store.close();
  }
  if (user.banned) throw new UsageError(`user ${user.id} ("${user.name}") is banned; a token would be refused`);
  const { token: jwt, expiresAt } = await service.issue({ id: user.id, name: user.name, generation: user.tokenGeneration }, { ttlSeconds: flags.ttl });
  process.stdout.write(jwt + '\n');
  process.stderr.write(`token for user ${user.id} ("${user.name}", ${user.origin === 'builtin' ? 'built-in account' : 'product user'}), ${what}; expires ${new Date(expiresAt).toISOString()}\n`);
}

async function userUpsert(userId: string, flags: ConfigFlags & { name: string; metadata?: string }): Promise<void> {
  refuseArguments([['the user id', userId], ['--name', flags.name], ['--metadata', flags.metadata]]);
  let metadata: unknown;
  if (flags.metadata !== undefined) {
    try {
      metadata = JSON.parse(flags.metadata);
    } catch {
      throw new UsageError('--metadata must be JSON, for example \'{"team":"blue"}\'');
    }
    // JSON escapes can spell what the text itself does not hold ("\ud800", "\u0000"), and a `__proto__` key: the
    // same check as the admin API's body.
    const refused = findRefused(metadata);
    if (refused) {
      const detail = illFormedDetail(['metadata', ...refused.path]);
      throw new UsageError(`${detail.path} is ${refused.message}`);
    }
  }
  const input = productUserSchema.safeParse({ name: flags.name, metadata });
  if (!input.success) throw new UsageError(`invalid user: ${input.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ')}`);
  const config = configFrom(flags);
  const [{ publicUser }, { openStore }] = await Promise.all([import('./domain/admin.js'), server()]);
  const store = await openStore(config);
  try {
    const { user, created } = await upsertProductUser(store, userId, input.data, Date.now());
    printJson({ user: publicUser(user), created });
    process.stderr.write(`${created ? 'created' : 'updated'} product user ${user.id}\n`);
  } finally {
    await store.close();
  }
}

// ---------------------------------------------------------------------------------------------------- admin (HTTP)

interface AdminFlags {
  url: string;
  adminToken?: string;
}

function withAdminOptions(cmd: Command): Command {
  return cmd
    .option('--url <url>', 'address of the server', 'http://127.0.0.1:8080')
    .option('--admin-token <token>', 'admin bearer token (default: $PARLEY_ADMIN_TOKEN)');
}

async function adminCall(flags: AdminFlags, method: 'GET' | 'POST', path: string, body?: unknown): Promise<void> {
  const adminToken = flags.adminToken ?? process.env.PARLEY_ADMIN_TOKEN;
  if (!adminToken) throw new UsageError('an admin token is needed: --admin-token or PARLEY_ADMIN_TOKEN');
  let base: URL;
  try {
    base = new URL(flags.url);
  } catch {
    throw new UsageError(`--url: not a URL: ${flags.url}`);
  }
  const target = base.href.replace(/\/+$/, '') + path;
  let res: Response;
  try {
    res = await fetch(target, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(15_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new UsageError(`cannot reach ${base.origin}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
  }
  const text = await res.text();
  let pretty = text;
  try {
    pretty = JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    // not JSON: print as is
  }
  if (!res.ok) {
    process.stderr.write(`HTTP ${res.status} from ${method} ${path}\n${pretty}\n`);
    process.exitCode = EXIT_FAILURE;
    return;
  }
  process.stdout.write(pretty + (pretty.endsWith('\n') ? '' : '\n'));
}

function pageQuery(flags: { limit?: number; after?: string }): string {
  const q = new URLSearchParams();
  if (flags.limit !== undefined) q.set('limit', String(flags.limit));
  if (flags.after) q.set('after', flags.after);
  const s = q.toString();
  return s ? `?${s}` : '';
}

// ---------------------------------------------------------------------------------------------------------- program

function buildProgram(): Command {
  const program = new Command('parley')
    .description('Parley: a real-time chat server (WebSocket + REST).')
    .version(readPackageVersion(), '-V, --version')
    .showHelpAfterError('(add --help for usage)')
    .showSuggestionAfterError(true);

  withConfigOption(program.command('serve').description('Start the server.'))
    .option('-p, --port <n>', 'port to listen on; 0 picks a free one (default: 8080)')
    .option('-H, --host <host>', 'address to bind (default: 0.0.0.0)')
    .option('-l, --log-level <level>', 'fatal, error, warn, info, debug, trace or silent (default: info)')
    .addHelpText('after', environmentHelp())
    .action((flags: ConfigFlags) => serve(flags));

  withConfigOption(program.command('migrate').description('Create or upgrade the database tables, then exit.'))
    .action((flags: ConfigFlags) => migrate(flags));

  const user = program.command('user').description('Built-in accounts and product users, written directly to the store.');
  withConfigOption(user.command('add').description('Create a built-in account (username and password).'))
    .argument('<username>', '1-64 letters, combining marks, digits, _ . - (docs/protocol.md, Accounts)')
    .option('--password <password>', 'the password (visible in the process list; prefer --password-stdin)')
    .option('--password-stdin', 'read the password from standard input')
    .option('--admin', 'make the account an administrator', false)
    .addHelpText('after', `\nExample:\n  echo "$PASSWORD" | ${cliCommand()} user add alice --password-stdin --admin`)
    .action((username: string, flags) => userAdd(username, flags));

  withConfigOption(user.command('upsert').description('Create or update a product user (a user of your product, no password) by id.'))
    .argument('<user-id>', 'the id your product knows the user by (1 to 128 characters)')
    .requiredOption('--name <name>', 'display name')
    .option('--metadata <json>', `any JSON, up to ${MAX_USER_METADATA_BYTES} bytes (null clears it)`)
    .addHelpText('after', `\nNever touches a built-in account. Example:\n  ${cliCommand()} user upsert cust-42 --name "Ada Lovelace" --metadata '{"plan":"pro"}'`)
    .action((userId: string, flags) => userUpsert(userId, flags));

  withConfigOption(program.command('token').description("Print a token for an existing user, signed with this server's own secret (for trying things out and tests)."))
    .argument('<user>', 'a username (built-in account) or a user id')
    .addOption(new Option('--by <what>', 'look the argument up only as an id or only as a username').choices(['id', 'username']))
    .option('--create', 'if no user matches, create a product user with this id (no password)', false)
    .option('--name <name>', 'display name of the user --create makes (default: the id); never renames an existing user')
    .option('--ttl <seconds>', 'lifetime in seconds (default: auth.accounts.tokenTtlSeconds)', positiveInt('--ttl'))
    .addHelpText('after', [
      '',
      'Prints the token on standard output and what it did (which user, found how, expiry) on standard error.',
      'Use the same --config / --data-dir / PARLEY_* settings as the server, so that the same store and secret are used.',
      'Example:',
      `  TOKEN=$(${cliCommand()} token alice --ttl 3600)        # alice: an existing username or user id`,
      '  curl -H "authorization: Bearer $TOKEN" http://127.0.0.1:8080/api/v1/me',
    ].join('\n'))
    .action((userId: string, flags) => token(userId, flags));

  const admin = program.command('admin').description("Administration through a running server's admin API.");
  withAdminOptions(admin.command('users').description('List users.'))
    .option('--limit <n>', 'page size', positiveInt('--limit'))
    .option('--after <user-id>', 'continue after this user id')
    .action((flags: AdminFlags & { limit?: number; after?: string }) => adminCall(flags, 'GET', `/api/v1/admin/users${pageQuery(flags)}`));
  withAdminOptions(admin.command('ban').description('Ban a user: their connections are closed and new ones refused.'))
    .argument('<user-id>')
    .action((userId: string, flags: AdminFlags) => adminCall(flags, 'POST', `/api/v1/admin/users/${encodeURIComponent(userId)}/ban`));
  withAdminOptions(admin.command('logout').description("Log a user out everywhere: revoke the server's own tokens they hold and close their connections (4500)."))
    .argument('<user-id>')
    .action((userId: string, flags: AdminFlags) => adminCall(flags, 'POST', `/api/v1/admin/users/${encodeURIComponent(userId)}/logout`));
  withAdminOptions(admin.command('unban').description('Lift a ban.'))
    .argument('<user-id>')
    .action((userId: string, flags: AdminFlags) => adminCall(flags, 'POST', `/api/v1/admin/users/${encodeURIComponent(userId)}/unban`));
  withAdminOptions(admin.command('groups').description('List conversations.'))
    .option('--limit <n>', 'page size', positiveInt('--limit'))
    .option('--after <conversation-id>', 'continue after this conversation id')
    .action((flags: AdminFlags & { limit?: number; after?: string }) => adminCall(flags, 'GET', `/api/v1/admin/conversations${pageQuery(flags)}`));
  withAdminOptions(admin.command('create-group').description('Create a group.'))
    .argument('<name>')
    .option('--private', 'invite-only instead of public', false)
    .requiredOption('--owner <user-id>', 'the user who owns the group (the admin API requires one)')
    .action((name: string, flags: AdminFlags & { private: boolean; owner: string }) =>
      adminCall(flags, 'POST', '/api/v1/admin/groups', { name, visibility: flags.private ? 'private' : 'public', ownerId: flags.owner }));

  return program;
}

function report(err: unknown): number {
  if (err instanceof ConfigError) {
    process.stderr.write(err.message + '\n');
    return EXIT_CONFIG;
  }
  if (err instanceof UsageError) {
    process.stderr.write(`error: ${err.message}\n`);
    return EXIT_FAILURE;
  }
  if (isParleyError(err)) {
    process.stderr.write(`error: ${err.code}: ${err.message}\n`);
    return EXIT_FAILURE;
  }
  const e = err as NodeJS.ErrnoException;
  // System errors (EADDRINUSE, EACCES, ...) say enough; anything else is a bug worth its stack.
  process.stderr.write(`error: ${e?.code ? e.message : (e?.stack ?? String(err))}\n`);
  return EXIT_FAILURE;
}

async function run(argv: string[] = process.argv): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    process.exitCode = report(err);
  }
}

await run();

/**
 * How to run this CLI again from the current folder, for the commands it prints: `npx parley` where it is an installed
 * package (its bin is linked in node_modules/.bin), else `node <path to cli.js>`. In a checkout, `npx parley` would
 * install the checkout into npx's cache, which runs its `prepare` script: a full build that empties dist/ under a
 * server running from it.
 */
export function cliCommand(): string {
  const cli = fileURLToPath(new URL('./cli.js', import.meta.url));
  if (cli.split(sep).includes('node_modules')) return 'npx parley';
  const path = relative(process.cwd(), cli);
  return `node ${shellWord(path.startsWith('..') || isAbsolute(path) ? cli : path)}`;
}

/** A path as one word for a POSIX shell, for commands we print: as it is when safe, else in single quotes. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}
