import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from '../raw-client.js';
import { reapOnExit } from './reaper.js';

/**
 * A real nginx (Debian's package) in front of Parley instances for a test, running the shipped deploy/nginx.conf with
 * only its upstream servers and listen port filled in (between the marker comments), so the tested configuration is
 * the one operators get. Listens on a random loopback port; its prefix (logs, temp files, pid) is a temporary folder.
 */
export interface TestNginx {
  url: string;
  wsUrl: string;
  port: number;
  /** Its prefix folder (configuration, logs), removed by stop(). */
  folder: string;
  stop(): Promise<void>;
}

const SHIPPED = new URL('../../../deploy/nginx.conf', import.meta.url).pathname;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/** The shipped configuration with these upstream ports and this listen port, as a test runs it. */
export function nginxConfig(listenPort: number, upstreamPorts: number[], prefix: string): string {
  const shipped = readFileSync(SHIPPED, 'utf8');
  // Each instance gets the parameters of the shipped example lines (`server 127.0.0.1:8081 <parameters>;`).
  const parameters = /^\s*server 127\.0\.0\.1:8081 ([^;]*);/m.exec(shipped)?.[1] ?? '';
  const servers = upstreamPorts.map((port) => `    server 127.0.0.1:${port} ${parameters};`).join('\n');
  const filled = shipped
    .replace(/(# parley-instances-begin\n)[\s\S]*?(\s*# parley-instances-end)/, `$1${servers}$2`)
    .replace(/(# parley-listen\n\s*)listen \d+;/, `$1listen 127.0.0.1:${listenPort};`)
    // A test needs a small nginx: one worker, few connections, no rlimit change.
    .replace(/^worker_processes .*$/m, 'worker_processes 1;')
    .replace(/^worker_rlimit_nofile .*$/m, '')
    // The process id and error log are given on the command line (-g), the access log goes to the test's folder.
    .replace(/^pid .*$/m, '')
    .replace(/^error_log .*$/m, '')
    .replace(/access_log \S+ parley;/, `access_log ${join(prefix, 'access.log')} parley;`)
    .replace(/worker_connections \d+;/, 'worker_connections 1024;');
  if (!filled.includes(`listen 127.0.0.1:${listenPort};`) || !filled.includes(servers)) throw new Error('deploy/nginx.conf lost its marker comments');
  return filled;
}

export async function startNginx(upstreamPorts: number[]): Promise<TestNginx> {
  const prefix = mkdtempSync(join(tmpdir(), 'parley-nginx-'));
  const port = await freePort();
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(conf, nginxConfig(port, upstreamPorts, prefix));
  const globals = `daemon off; pid ${join(prefix, 'nginx.pid')}; error_log ${join(prefix, 'error.log')} warn;`;
  const child: ChildProcess = spawn('nginx', ['-p', prefix, '-c', conf, '-e', join(prefix, 'error.log'), '-g', globals], { stdio: ['ignore', 'ignore', 'pipe'] });
  // nginx's fast shutdown (SIGTERM) stops its workers too.
  const reaped = reapOnExit({ kill: { pid: child.pid!, signal: 'SIGTERM' }, remove: [prefix] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let exited = false;
  child.once('exit', () => (exited = true));
  const accepting = async (): Promise<boolean> => {
    if (exited) throw new Error(`nginx exited: ${stderr}${readFileSync(join(prefix, 'error.log'), 'utf8')}`);
    return fetch(`http://127.0.0.1:${port}/healthz`).then(() => true, () => false);
  };
  await until(accepting, 'nginx accepts connections', 10_000, 50);
  return {
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    port,
    folder: prefix,
    async stop() {
      if (!exited) {
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGQUIT');
        await Promise.race([gone, new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
        if (!exited) child.kill('SIGKILL');
      }
      // PARLEY_TEST_KEEP_LOGS=<folder>: keep this nginx's access and error logs there, to read after a failed run.
      const keep = process.env.PARLEY_TEST_KEEP_LOGS;
      if (keep) cpSync(prefix, join(keep, `nginx-${port}`), { recursive: true });
      rmSync(prefix, { recursive: true, force: true });
      reaped.release();
    },
  };
}
