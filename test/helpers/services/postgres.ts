/**
 * A real PostgreSQL server for one test file: `initdb` into a temporary folder, `postgres` on a free loopback port,
 * stopped (and the folder removed) by `destroy()`. Never the machine's default cluster.
 *
 * Binaries come from `pg_config --bindir`, else the newest /usr/lib/postgresql/<version>/bin (Debian's layout).
 * PostgreSQL refuses to run as root: when the tests run as root, initdb, pg_ctl and postgres run as the `postgres`
 * user (Debian's package creates it) through `runuser`, with the folder owned by that user; otherwise as ourselves.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { reapOnExit } from './reaper.js';

const run = promisify(execFile);

/** The login role initdb creates; trust authentication on loopback, so no password. */
const superuser = 'parley';
/** How long the server may take to start or stop (pg_ctl -t, seconds). */
const startStopSeconds = 30;

export interface PostgresService {
  readonly port: number;
  /** The server's folder (data and log), removed by destroy(). */
  readonly folder: string;
  /** A connection URL for `database` on this server. */
  url(database: string): string;
  /** A fresh, empty database (its own name); returns its URL. Each contract test gets one, so tests never share data. */
  createDatabase(): Promise<string>;
  /** Stop the server (fast shutdown: open sessions are disconnected), keeping its data. */
  stop(): Promise<void>;
  /** Start it again on the same port and data, after stop(). Resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stop it if running and remove its folder. */
  destroy(): Promise<void>;
}

function binDir(): string {
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
    if (fs.existsSync(path.join(dir, 'initdb'))) return dir;
  } catch {
    // No pg_config on the PATH: look where Debian installs the server.
  }
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root) ? fs.readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const version of versions) {
    const dir = path.join(root, version, 'bin');
    if (fs.existsSync(path.join(dir, 'initdb'))) return dir;
  }
  throw new Error('PostgreSQL server binaries not found (no pg_config --bindir, nothing in /usr/lib/postgresql/*/bin): run scripts/install-test-deps.sh');
}

/** A loopback port free right now (the OS picks it). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** As root, the uid/gid of the `postgres` user to run the server as; otherwise null (run as ourselves). */
function serverUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error('running as root and no postgres user to run PostgreSQL as');
  return { uid, gid };
}

export async function startPostgres(): Promise<PostgresService> {
  const bin = binDir();
  const user = serverUser();
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-postgres-'));
  if (user) fs.chownSync(folder, user.uid, user.gid);
  const dataDir = path.join(folder, 'data');
  const logFile = path.join(folder, 'server.log');
  const argv = (name: string, args: string[]): string[] => {
    const command = path.join(bin, name);
    return user ? ['runuser', '-u', 'postgres', '--', command, ...args] : [command, ...args];
  };
  const tool = (name: string, args: string[]) => {
    const [command, ...rest] = argv(name, args);
    return run(command!, rest);
  };
  // An immediate shutdown (no checkpoint) if this process dies first; failing harmlessly when the server is stopped.
  const reaped = reapOnExit({ run: argv('pg_ctl', ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', String(startStopSeconds)]), remove: [folder] });

  let port = 0;
  let running = false;
  try {
    // --no-sync: initdb skips its final fsync of the new cluster (a crash of the test machine would only lose this
    // throwaway folder). The server itself keeps fsync and synchronous_commit on, as in production.
    await tool('initdb', ['-D', dataDir, '-U', superuser, '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']);
    port = await freePort();
    fs.appendFileSync(path.join(dataDir, 'postgresql.conf'), [
      '',
      '# Written by test/helpers/services/postgres.ts',
      "listen_addresses = '127.0.0.1'",
      `port = ${port}`,
      // TCP only: no socket file in a shared folder.
      "unix_socket_directories = ''",
      // Every contract test opens pools; two handles per test in the many-instance cases.
      'max_connections = 200',
      'shared_buffers = 64MB',
      '',
    ].join('\n'));
  } catch (err) {
    fs.rmSync(folder, { recursive: true, force: true });
    reaped.release();
    throw err;
  }

  const start = async (): Promise<void> => {
    try {
      await tool('pg_ctl', ['start', '-D', dataDir, '-l', logFile, '-w', '-t', String(startStopSeconds)]);
    } catch (err) {
      const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').slice(-2000) : '(no log)';
      throw new Error(`PostgreSQL did not start on port ${port}: ${String(err)}\n${log}`);
    }
    running = true;
    await waitForConnections(urlOf('postgres'));
  };
  const stop = async (): Promise<void> => {
    if (!running) return;
    try {
      await tool('pg_ctl', ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', String(startStopSeconds)]);
    } catch {
      // A fast shutdown still writes a checkpoint, which a loaded disk can stretch past the bound: stop without one
      // (the next start recovers from the WAL, as after a crash).
      await tool('pg_ctl', ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', String(startStopSeconds)]);
    }
    running = false;
  };
  const urlOf = (database: string): string => `postgres://${superuser}@127.0.0.1:${port}/${encodeURIComponent(database)}`;

  try {
    await start();
  } catch (err) {
    await stop().catch(() => undefined);
    fs.rmSync(folder, { recursive: true, force: true });
    reaped.release();
    throw err;
  }

  let databases = 0;
  return {
    port,
    folder,
    url: urlOf,
    async createDatabase(): Promise<string> {
      const name = `test_${++databases}`;
      const admin = new pg.Client({ connectionString: urlOf('postgres') });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${name}`);
      } finally {
        await admin.end();
      }
      return urlOf(name);
    },
    stop,
    start,
    async destroy(): Promise<void> {
      try {
        await stop();
      } finally {
        fs.rmSync(folder, { recursive: true, force: true });
        reaped.release();
      }
    },
  };
}

/** Resolves once a session can be opened; bounded: 100 tries 50 ms apart (pg_ctl -w has usually waited already). */
async function waitForConnections(url: string): Promise<void> {
  let last: unknown;
  for (let attempt = 0; attempt < 100; attempt++) {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return;
    } catch (err) {
      last = err;
    } finally {
      await client.end().catch(() => undefined);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`PostgreSQL accepted no connection within 5 s: ${String(last)}`);
}
