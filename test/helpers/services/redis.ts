import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reapOnExit } from './reaper.js';

/**
 * A real `redis-server` for one test file (Debian's package, installed by scripts/install-test-deps.sh; never the
 * machine's own service): on a random loopback port, its working folder in a fresh temporary folder, no persistence
 * (`--save ''`, `--appendonly no`), so a restart starts empty, as a Redis that lost its data. `stop` and `start` make
 * the faults of the bus and presence tests (Redis down, Redis back empty); `close` stops it and removes the folder.
 * `PARLEY_TEST_REDIS_SERVER` names another binary.
 */
export interface RedisService {
  /** `redis://127.0.0.1:<port>`: the same for the whole life of the service, restarts included. */
  readonly url: string;
  readonly port: number;
  /** Its working folder, removed by close(). */
  readonly folder: string;
  /** Whether the server process runs now. */
  readonly running: boolean;
  /** Stop the server (SIGKILL: as a crash, nothing is flushed); resolves once the process has exited. */
  stop(): Promise<void>;
  /** Start it again on the same port, empty; resolves once it answers PING. */
  start(): Promise<void>;
  /** Stop it and remove its folder. */
  close(): Promise<void>;
}

const binary = process.env.PARLEY_TEST_REDIS_SERVER ?? 'redis-server';
/** How long a starting server may take to answer PING (a busy 2-core machine), and how often it is asked. */
const READY_TIMEOUT_MS = 15_000;
const POLL_MS = 20;

/** A free loopback port: bound by the OS, then released for redis-server to take (retried by the caller if lost). */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/** One PING over a raw socket: true when the answer is +PONG. Bounded by `timeoutMs`. */
function pingOnce(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (data) => {
      answer += data.toString('latin1');
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
    socket.on('error', () => done(false));
  });
}

export async function startRedis(): Promise<RedisService> {
  const dir = mkdtempSync(join(tmpdir(), 'parley-redis-'));
  const reaped = reapOnExit({ remove: [dir] });
  let child: ChildProcess | null = null;
  let exited: Promise<unknown> = Promise.resolve();
  let port = 0;

  async function launch(onPort: number): Promise<void> {
    const args = ['--port', String(onPort), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no',
      '--protected-mode', 'yes', '--daemonize', 'no', '--loglevel', 'warning', '--logfile', ''];
    const proc = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exit = once(proc, 'exit');
    reaped.set({ kill: { pid: proc.pid!, signal: 'SIGKILL' }, remove: [dir] });
    child = proc;
    exited = exit;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!(await pingOnce(onPort, 1000))) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`redis-server exited (${proc.exitCode ?? proc.signalCode}) before answering PING: ${stderr.trim()}`);
      }
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        await exit;
        throw new Error(`redis-server did not answer PING on port ${onPort} within ${READY_TIMEOUT_MS} ms: ${stderr.trim()}`);
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  // The port is free when chosen but another process may take it before redis-server binds it: a few attempts.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await launch(port);
      break;
    } catch (err) {
      if (attempt >= 3) {
        rmSync(dir, { recursive: true, force: true });
        reaped.release();
        throw err;
      }
    }
  }

  async function stop(): Promise<void> {
    const proc = child;
    if (!proc) return;
    child = null;
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
    reaped.set({ remove: [dir] });
  }

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    folder: dir,
    get running() {
      return child !== null;
    },
    stop,
    async start() {
      if (child) return;
      await launch(port);
    },
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
      reaped.release();
    },
  };
}
