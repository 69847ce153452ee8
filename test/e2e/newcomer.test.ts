import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';

const root = new URL('../../', import.meta.url).pathname;
const run = promisify(execFile);

/** The README's path, as a newcomer walks it: `npm start` (after `npm ci` built dist/), then the printed hint. */
describe("a newcomer's path (README: Run it)", () => {
  let dataDir: string;
  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'parley-newcomer-'));
  });
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  it('`npm start` serves from dist without building again, the port is a flag away, and the printed token command works', async () => {
    const child = spawn('npm', ['start', '--', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), PARLEY_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group: npm, the shell and the server are stopped together
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += String(d)));
    child.stderr.on('data', (d) => (stderr += String(d)));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      const deadline = Date.now() + 30_000;
      while (!(stdout.includes('"parley listening"') && stderr.includes('Press Ctrl-C to stop.'))) {
        assert.ok(Date.now() < deadline, `not listening within 30 s\n${stdout}\n${stderr}`);
        assert.equal(child.exitCode, null, `npm start exited\n${stdout}\n${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.doesNotMatch(stdout + stderr, /\btsc\b|npm run build/, 'no TypeScript build at start');
      const port = (JSON.parse(stdout.split('\n').find((l) => l.includes('"parley listening"'))!) as { port: number }).port;

      const hint = /^ {2}(node dist\/cli\.js token demo-user.*)$/m.exec(stderr);
      assert.ok(hint, `the banner shows the token command:\n${stderr}`);
      // Not `npx parley` in a checkout: npx would install the checkout into its cache, and that runs the whole build
      // (emptying dist/ under the running server and under every other test).
      assert.equal(hint[1], `node dist/cli.js token demo-user --create --data-dir ${dataDir}`);
      const { stdout: token } = await run(process.execPath, ['dist/cli.js', 'token', 'demo-user', '--create', '--data-dir', dataDir], { cwd: root, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir() } });
      const me = await fetch(`http://127.0.0.1:${port}/api/v1/me`, { headers: { authorization: `Bearer ${token.trim()}` } });
      assert.equal(me.status, 200);
      assert.deepEqual(await me.json(), { user: { id: 'demo-user', name: 'demo-user' } });
    } finally {
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGTERM');
      await exited;
    }
  });

  it('`serve --help` lists every setting with the default the server runs with', async () => {
    const { stdout } = await run(process.execPath, [join(root, 'dist/cli.js'), 'serve', '--help']);
    assert.match(stdout, /PARLEY_SERVER_PORT +server\.port: .*\(default 8080\)/);
    assert.match(stdout, /PARLEY_LIMITS_CONNECTION_RATE_PER_SECOND +limits\.connectionRate\.perSecond: .*\(default 50\)/);
    assert.match(stdout, /PARLEY_LIMITS_CONNECTION_RATE_BURST +limits\.connectionRate\.burst: .*\(default 100\)/);
    assert.match(stdout, /PARLEY_LIMITS_USER_MESSAGE_RATE_PER_SECOND +limits\.userMessageRate\.perSecond: .*\(default 20\)/);
    assert.match(stdout, /PARLEY_SERVER_CORS_ORIGINS +server\.cors\.origins: .*\(default none\)/);
  });
});
