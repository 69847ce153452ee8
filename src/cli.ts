#!/usr/bin/env node
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { credentialsSchema } from './auth/accounts.js';
import { hashPassword } from './auth/passwords.js';
import { resolveOwnSecret } from './auth/secret.js';
import { createTokenService } from './auth/tokens.js';
import { ConfigError, describeEnvironmentVariables, loadConfig } from './config/load.js';
import type { Config } from './config/schema.js';
import { createLogger } from './logging.js';
import { openStore, startServer } from './main.js';
import { isParleyError } from './protocol/errors.js';

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
  const server = await startServer(config, { logger });

  const wsUrl = server.url.replace(/^http/, 'ws').replace(/\/+$/, '') + '/ws';
  const hints = [
    '',
    `Parley is listening on ${server.url}  (WebSocket: ${wsUrl})`,
    `Data folder: ${config.dataDir}  (store: ${config.store.sqlite.path})`,
    '',
    'Get a token to try it:',
    `  npx parley token demo-user${flags.config ? ` --config ${flags.config}` : ''}${flags.dataDir ? ` --data-dir ${flags.dataDir}` : ''}`,
  ];
  if (config.auth.accounts.enabled) {
    hints.push(
      '  or register an account:',
      `  curl -s -X POST ${server.url}/api/v1/accounts -H 'content-type: application/json' \\`,
      `       -d '{"username":"alice","password":"choose-a-password"}'`,
      `  (log in later with POST ${server.url}/api/v1/sessions, same body)`,
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
    server.close().then(
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
  const store = await openStore(config);
  try {
    await store.migrate();
  } finally {
    await store.close();
  }
  process.stderr.write(`Store is up to date: ${config.store.sqlite.path}\n`);
}

async function userAdd(username: string, flags: ConfigFlags & { password?: string; passwordStdin?: boolean; admin?: boolean }): Promise<void> {
  if (flags.password !== undefined && flags.passwordStdin) throw new UsageError('give either --password or --password-stdin, not both');
  if (flags.password === undefined && !flags.passwordStdin) throw new UsageError('a password is needed: --password-stdin (recommended) or --password P');
  const config = configFrom(flags);
  const name = credentialsSchema.shape.username.safeParse(username);
  if (!name.success) throw new UsageError(`invalid username "${username}": ${name.error.issues[0]?.message ?? 'not allowed'}`);
  const password = flags.passwordStdin ? (await readStdin()).replace(/\r?\n$/, '') : flags.password!;
  const min = config.auth.accounts.minPasswordLength;
  if (password.length < min) throw new UsageError(`the password needs at least ${min} characters`);

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

async function token(userId: string, flags: ConfigFlags & { name?: string; ttl?: number }): Promise<void> {
  const config = configFrom(flags);
  const service = createTokenService(config.auth, await resolveOwnSecret(config));
  const { token: jwt, expiresAt } = await service.issue({ id: userId, name: flags.name ?? userId }, { ttlSeconds: flags.ttl });
  process.stdout.write(jwt + '\n');
  if (process.stderr.isTTY) process.stderr.write(`(user ${userId}, expires ${new Date(expiresAt).toISOString()})\n`);
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

  const user = program.command('user').description('Built-in accounts, written directly to the store.');
  withConfigOption(user.command('add').description('Create a built-in account (username and password).'))
    .argument('<username>', 'letters, digits, _ . -')
    .option('--password <password>', 'the password (visible in the process list; prefer --password-stdin)')
    .option('--password-stdin', 'read the password from standard input')
    .option('--admin', 'make the account an administrator', false)
    .addHelpText('after', '\nExample:\n  echo "$PASSWORD" | parley user add alice --password-stdin --admin')
    .action((username: string, flags) => userAdd(username, flags));

  withConfigOption(program.command('token').description("Print a token for a user, signed with this server's own secret (for trying things out and tests)."))
    .argument('<user-id>', 'the user id (the token subject)')
    .option('--name <name>', 'display name claim (default: the user id)')
    .option('--ttl <seconds>', 'lifetime in seconds (default: auth.accounts.tokenTtlSeconds)', positiveInt('--ttl'))
    .addHelpText('after', [
      '',
      'Use the same --config / --data-dir / PARLEY_* settings as the server, so that the same secret is used.',
      'Example:',
      '  TOKEN=$(parley token alice --ttl 3600)',
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
