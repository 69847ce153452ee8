import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { SignJWT } from 'jose';
import { reapOnExit } from './services/reaper.js';

/**
 * A real Parley server process for tests: `node dist/cli.js serve` on 127.0.0.1 with a random port, its data in a
 * fresh temporary folder, configured through PARLEY_* variables like an operator would. Requires `npm run build`.
 */
export interface TestServer {
  url: string;
  wsUrl: string;
  port: number;
  dataDir: string;
  process: ChildProcess;
  /** Every JSON log line the server printed so far. */
  logs: Array<Record<string, unknown>>;
  /** A token of the server's own issuer (what login returns) for any user id. */
  token(userId: string, options?: { name?: string; expiresInSeconds?: number }): Promise<string>;
  /** SIGTERM and wait for exit; returns the exit code. */
  stop(): Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

export const OWN_SECRET = 'test-own-secret-test-own-secret-0123456789';
export const EXTERNAL_SECRET = 'test-external-secret-0123456789-abcdefghij';
export const ADMIN_TOKEN = 'test-admin-token-0123456789';
/** BENCH_PARLEY_CLI runs another build's `dist/cli.js` (the bench compares two commits in one harness). */
const CLI = process.env.BENCH_PARLEY_CLI || new URL('../../dist/cli.js', import.meta.url).pathname;

/**
 * `options.dataDir` reuses a data folder (and leaves it in place on stop). `options.port` listens on that port instead
 * of a random one (the `--port` flag wins over PARLEY_SERVER_PORT), so that a restarted server is found at the same URL.
 */
export async function startServer(env: Record<string, string> = {}, options: { dataDir?: string; port?: number } = {}): Promise<TestServer> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'parley-test-'));
  const child = spawn(process.execPath, [CLI, 'serve', '--host', '127.0.0.1', '--port', String(options.port ?? 0), '--data-dir', dataDir], {
    env: {
      PATH: process.env.PATH ?? '',
      PARLEY_AUTH_ACCOUNTS_SECRET: OWN_SECRET,
      PARLEY_AUTH_JWT_SECRET: EXTERNAL_SECRET,
      PARLEY_ADMIN_TOKEN: ADMIN_TOKEN,
      PARLEY_LOG_LEVEL: 'info',
      // Tests create many accounts and conversations quickly; the defaults are for production.
      PARLEY_PRESENCE_BATCH_MS: '50',
      // One test process is one client address: per-address limits are raised unless a test is about them.
      PARLEY_LIMITS_REGISTRATION_RATE_PER_SECOND: '1000',
      PARLEY_LIMITS_REGISTRATION_RATE_BURST: '100000',
      PARLEY_LIMITS_REST_RATE_PER_SECOND: '1000',
      PARLEY_LIMITS_REST_RATE_BURST: '100000',
      // Reconnect storms are part of many tests; the per-user connection-attempt rate is raised unless a test is about it.
      PARLEY_LIMITS_USER_CONNECT_RATE_PER_SECOND: '1000',
      PARLEY_LIMITS_USER_CONNECT_RATE_BURST: '100000',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const ownFolder = options.dataDir ? [] : [dataDir];
  const reaped = reapOnExit({ kill: { pid: child.pid!, signal: 'SIGKILL' }, remove: ownFolder });
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += String(d)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then(() => reaped.set({ remove: ownFolder }));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 20 s\n${stderr}`)), 20_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry.msg === 'parley listening') {
        clearTimeout(timer);
        resolve(entry.port as number);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening\n${stderr}`));
    });
  });
  const url = `http://127.0.0.1:${port}`;
  const stopWith = async (signal: NodeJS.Signals): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const code = await exited;
    if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    reaped.release();
    return code;
  };
  return {
    url,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    port,
    dataDir,
    process: child,
    logs,
    token: (userId, opts = {}) => signToken(OWN_SECRET, 'parley', userId, opts),
    stop: () => stopWith('SIGTERM'),
    kill: (signal = 'SIGKILL') => stopWith(signal),
  };
}

export async function signToken(
  secret: string,
  issuer: string | null,
  userId: string,
  options: { name?: string; expiresInSeconds?: number } = {},
): Promise<string> {
  const jwt = new SignJWT(options.name ? { name: options.name } : {})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + (options.expiresInSeconds ?? 3600));
  if (issuer) jwt.setIssuer(issuer);
  return jwt.sign(new TextEncoder().encode(secret));
}

/** Register a built-in account over REST; returns its id and token. */
export async function register(server: TestServer, username: string, password = 'correct horse battery'): Promise<{ id: string; name: string; token: string }> {
  const res = await fetch(`${server.url}/api/v1/accounts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (res.status !== 201) throw new Error(`register ${username}: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { user: { id: string; name: string }; token: string };
  return { ...body.user, token: body.token };
}

/** A REST call with a bearer token; returns status and parsed body. */
export async function api(server: TestServer, token: string | null, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${server.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const json = (res.headers.get('content-type') ?? '').includes('json');
  return { status: res.status, body: text && json ? JSON.parse(text) : text || null };
}

/**
 * One sample of the server's /metrics, named as printed (`name{label="value"}`): its value, or `absent` when the
 * server prints no such sample (a labelled counter before its first increment; 0 by default).
 */
export async function metric(server: TestServer, sample: string, absent = 0): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line ? Number(line.slice(sample.length + 1)) : absent;
}
