import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, statfsSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RawClient, sleep, until } from '../helpers/raw-client.js';
import { register, startServer, type TestServer } from '../helpers/server.js';

const CLI = new URL('../../dist/cli.js', import.meta.url).pathname;

/** Run `parley serve` to its end (it must refuse to start); returns exit code and stderr. */
function serveExpectingRefusal(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'serve', '--host', '127.0.0.1', '--port', '0', ...args], {
      env: { PATH: process.env.PATH ?? '', PARLEY_LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d) => (stderr += String(d)));
    child.stdout.on('data', (d) => (stdout += String(d)));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the server did not refuse to start within 15 s\n${stdout}\n${stderr}`));
    }, 15_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

function assertRefused(result: { code: number | null; stderr: string }, pattern: RegExp): void {
  assert.notEqual(result.code, 0, 'exit code');
  assert.notEqual(result.code, null, 'exited by itself');
  const lines = result.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${result.stderr}`);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(lines[0], /\bat .*\.js:\d+/, 'no stack trace');
}

/**
 * A read-only folder, made honestly: permission bits for an ordinary user; for root (whom permission bits do not
 * stop) a read-only tmpfs mount when this machine allows mounting. Null (with why) when neither is possible.
 */
function readOnlyFolder(parent: string): { path: string; release: () => void } | { skip: string } {
  const path = join(parent, 'read-only');
  mkdirSync(path);
  if (process.getuid?.() !== 0) {
    chmodSync(path, 0o555);
    return { path, release: () => chmodSync(path, 0o755) };
  }
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', path], { encoding: 'utf8' });
  if (mounted.status !== 0) return { skip: `running as root without permission to mount a read-only tmpfs (${(mounted.stderr || mounted.error?.message || '').trim()})` };
  return { path, release: () => spawnSync('umount', [path]) };
}

/** A small disk of its own: a tmpfs of `size` mounted on a fresh folder, when this machine allows mounting. */
function smallDisk(size: string): { path: string; release: () => void } | { skip: string } {
  const path = mkdtempSync(join(tmpdir(), 'parley-small-disk-'));
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', path], { encoding: 'utf8' });
  if (mounted.status !== 0) {
    rmSync(path, { recursive: true, force: true });
    return { skip: `cannot mount a tmpfs here (${(mounted.stderr || mounted.error?.message || '').trim()})` };
  }
  return { path, release: () => { spawnSync('umount', [path]); rmSync(path, { recursive: true, force: true }); } };
}

describe('store failures are visible to operators', () => {
  describe('refusing to start on an unwritable data folder', () => {
    let parent: string;
    before(() => {
      parent = mkdtempSync(join(tmpdir(), 'parley-unwritable-'));
    });
    after(() => rmSync(parent, { recursive: true, force: true }));

    it('when the data folder is read-only', async (t) => {
      const folder = readOnlyFolder(parent);
      if ('skip' in folder) return t.skip(folder.skip);
      try {
        const result = await serveExpectingRefusal(['--data-dir', folder.path]);
        assertRefused(result, /^error: cannot write to the data folder \(dataDir\) .*read-only: (EROFS|EACCES) \((read-only file system|permission denied)\)/);
      } finally {
        folder.release();
      }
    });

    it('when the data folder is a path through a file', async () => {
      const file = join(parent, 'a-file');
      writeFileSync(file, 'not a folder');
      const result = await serveExpectingRefusal(['--data-dir', join(file, 'data')]);
      assertRefused(result, /^error: cannot write to the data folder \(dataDir\) .*a-file\/data: (ENOTDIR|EEXIST) /);
    });

    it("when only the database's own folder (store.sqlite.path) is unwritable", async () => {
      const dataDir = join(parent, 'writable');
      const file = join(parent, 'another-file');
      writeFileSync(file, 'not a folder');
      const result = await serveExpectingRefusal(['--data-dir', dataDir], { PARLEY_STORE_SQLITE_PATH: join(file, 'db', 'parley.db') });
      assertRefused(result, /^error: cannot write to the folder of store\.sqlite\.path .*another-file\/db: ENOTDIR /);
    });
  });

  describe('writes failing while running (the disk is full)', () => {
    let server: TestServer;
    let alice: { id: string; token: string };
    let bob: { id: string; token: string };
    let client: RawClient;
    const prlimit = spawnSync('prlimit', ['--version']).status === 0;

    /** Allow the server process no file growth beyond `bytes` (RLIMIT_FSIZE: writes past it fail with EFBIG, as on a full disk). */
    const limitFileSize = (bytes: number | 'unlimited'): void => {
      execFileSync('prlimit', ['--pid', String(server.process.pid), `--fsize=${bytes}:unlimited`]);
    };
    const metric = async (sample: string): Promise<number> => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith(sample + ' '));
      return line ? Number(line.slice(sample.length + 1)) : 0;
    };
    const readyz = async () => {
      const res = await fetch(`${server.url}/readyz`);
      return { status: res.status, body: (await res.json()) as any };
    };
    /** Poll until `check` holds (bounded), returning its last value. */
    const waitUntil = async <T>(what: string, get: () => Promise<T>, check: (v: T) => boolean, timeoutMs = 5000): Promise<T> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const value = await get();
        if (check(value)) return value;
        if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value)} after ${timeoutMs} ms`);
        await sleep(100);
      }
    };

    before(async () => {
      if (!prlimit) return;
      server = await startServer();
      alice = await register(server, 'store-alice');
      bob = await register(server, 'store-bob');
      client = await RawClient.connect(server.wsUrl, alice.token);
    });
    after(async () => {
      client?.close();
      await server?.stop();
    });

    it('answers UNAVAILABLE, turns /readyz 503 with the reason, logs one error line, counts it; and recovers', async (t) => {
      if (!prlimit) return t.skip('prlimit (util-linux) is not installed');
      await client.ok('message.send', { to: bob.id, key: 'before', text: 'stored' });
      assert.equal((await readyz()).status, 200);
      assert.equal(await metric('parley_store_ready'), 1);

      const wal = join(server.dataDir, 'parley.db-wal');
      limitFileSize(statSync(wal).size);
      for (let i = 0; i < 5; i++) {
        const reply = await client.request('message.send', { to: bob.id, key: `full-${i}`, text: 'x'.repeat(2000) });
        assert.equal(reply.error?.code, 'UNAVAILABLE', JSON.stringify(reply));
        assert.equal(reply.error.temporary, true);
      }

      const notReady = await waitUntil('/readyz while writes fail', readyz, (r) => r.status === 503);
      assert.equal(notReady.body.error.code, 'UNAVAILABLE');
      assert.match(notReady.body.error.message, /store writes failing \(\d+ in a row since .*; last: (appendMessage|ping): /);
      assert.equal(await metric('parley_store_ready'), 0);
      assert.ok(await metric('parley_store_errors_total{op="appendMessage"}') >= 5);
      const errors = server.logs.filter((l) => l.level === 50 && l.msg === 'store write failed: clients get UNAVAILABLE and /readyz answers 503 until a write succeeds');
      assert.equal(errors.length, 1, 'one error line for the run of failures, not one per request');
      assert.equal(errors[0].op, 'appendMessage');

      limitFileSize('unlimited');
      // Nobody asks /readyz: the server's own probe write (every 5 s while failing) finds the store writable again.
      await waitUntil('parley_store_ready after the disk has room again', () => metric('parley_store_ready'), (v) => v === 1, 10_000);
      assert.equal((await readyz()).status, 200);
      await client.ok('message.send', { to: bob.id, key: 'after', text: 'stored again' });
      await waitUntil('the recovery log line', async () => server.logs.filter((l) => l.level === 40 && l.msg === 'store writes succeed again').length, (n) => n === 1);
      const history = await client.ok('history.before', { conversationId: (await client.ok('direct.open', { userId: bob.id })).conversation.id });
      assert.deepEqual(history.messages.map((m: any) => m.text), ['stored', 'stored again'], 'nothing half-written');
    });
  });
  describe('a nearly full disk (a real 16 MB tmpfs)', () => {
    it('keeps /readyz at 503 while messages do not fit, even when its own tiny probe write does; loses nothing; recovers', async (t) => {
      const disk = smallDisk('16m');
      if ('skip' in disk) return t.skip(disk.skip);
      let server: TestServer | undefined;
      let client: RawClient | undefined;
      try {
        // Not the free-space watermark (the next test): here the store must find out by failing writes.
        server = await startServer({ PARLEY_STORE_SQLITE_MIN_FREE_BYTES: '0' }, { dataDir: disk.path });
        const alice = await register(server, 'disk-alice');
        const bob = await register(server, 'disk-bob');
        client = await RawClient.connect(server.wsUrl, alice.token);
        const { conversation } = await client.ok('direct.open', { userId: bob.id });
        await client.ok('message.send', { conversationId: conversation.id, key: 'before', text: 'stored before' });

        // Fill the disk but for 12 KiB: room for a probe write (one WAL frame, ~4 KiB), not for a message (several).
        const { bavail, bsize } = statfsSync(disk.path);
        const filler = join(disk.path, 'filler');
        writeFileSync(filler, Buffer.alloc(Math.max(0, bavail * bsize - 12 * 1024)));

        const accepted: string[] = ['stored before'];
        let failedSends = 0;
        let probeFitted = 0;
        const readiness: number[] = [];
        for (let i = 0; i < 20; i++) {
          const text = `m${i} ${'x'.repeat(2000)}`;
          const reply: any = await client.request('message.send', { conversationId: conversation.id, key: `full-${i}`, text });
          if (reply.result) {
            assert.equal(failedSends, 0, 'no send succeeds again once the disk is full');
            accepted.push(text);
            continue;
          }
          assert.equal(reply.error.code, 'UNAVAILABLE', JSON.stringify(reply));
          assert.equal(reply.error.temporary, true);
          failedSends++;
          const ready = await fetch(`${server.url}/readyz`);
          readiness.push(ready.status);
          // The reason names the last failed write: a failed probe would name `ping`.
          if (/last: appendMessage/.test(((await ready.json()) as any).error?.message ?? '')) probeFitted++;
        }
        assert.ok(failedSends >= 15, `${failedSends} of 20 sends failed on the full disk`);
        assert.deepEqual([...new Set(readiness)], [503], `/readyz while sends fail: ${readiness.join(' ')}`);
        assert.ok(probeFitted > 0, 'the case under test happened: a probe write succeeded while messages failed');
        assert.equal(server.process.exitCode, null, 'the server is still running');

        unlinkSync(filler);
        // The server's own probe write (every 5 s while failing) finds room again; nobody needs to ask /readyz.
        await until(async () => (await fetch(`${server!.url}/readyz`)).status === 200, '/readyz back to 200 after freeing the disk', 15_000, 200);
        await client.ok('message.send', { conversationId: conversation.id, key: 'after', text: 'stored after' });
        const { messages } = await client.ok('history.after', { conversationId: conversation.id, afterSeq: 0 });
        assert.deepEqual(messages.map((m: any) => m.text), [...accepted, 'stored after'], 'every acknowledged message, nothing half-written');
        assert.deepEqual(messages.map((m: any) => m.seq), messages.map((_: unknown, i: number) => i + 1), 'seq stays gap-free');
      } finally {
        client?.close();
        await server?.stop();
        disk.release();
      }
    });
  });
  describe('the free-space watermark (store.sqlite.minFreeBytes, a real 16 MB tmpfs)', () => {
    it('turns /readyz 503 with the free space, a gauge and one warn line when the disk fills, before any write fails; and back', async (t) => {
      const disk = smallDisk('16m');
      if ('skip' in disk) return t.skip(disk.skip);
      let server: TestServer | undefined;
      try {
        server = await startServer({ PARLEY_STORE_SQLITE_MIN_FREE_BYTES: String(4 * 1024 * 1024) }, { dataDir: disk.path });
        const readyz = async () => {
          const res = await fetch(`${server!.url}/readyz`);
          return { status: res.status, body: (await res.json()) as any };
        };
        assert.equal((await readyz()).status, 200, 'ready with ~15 MB free');

        // Leave 1 MiB: every write still fits, and nobody writes; the watermark alone must tell.
        const { bavail, bsize } = statfsSync(disk.path);
        const filler = join(disk.path, 'filler');
        writeFileSync(filler, Buffer.alloc(Math.max(0, bavail * bsize - 1024 * 1024)));
        // /readyz answers from a probe at most 1 s old: wait for the next one.
        let low = await readyz();
        await until(async () => (low = await readyz()).status === 503, '/readyz turns 503 with 1 MiB left and no write', 5000, 100);
        assert.equal(low.body.error.code, 'UNAVAILABLE');
        assert.match(low.body.error.message, /only [\d.]+ (KiB|MiB) free on the disk of the store, below store\.sqlite\.minFreeBytes \(4\.0 MiB\)/);
        const gauge = (await (await fetch(`${server.url}/metrics`)).text()).split('\n').find((l) => l.startsWith('parley_store_disk_free_bytes '));
        assert.ok(gauge && Number(gauge.split(' ')[1]) < 4 * 1024 * 1024, gauge);
        await readyz();
        const warned = server.logs.filter((l) => l.level === 40 && String(l.msg).startsWith('the disk of the store is nearly full'));
        assert.equal(warned.length, 1, 'one warn line on crossing, not one per check');
        assert.equal(server.logs.filter((l) => (l.level as number) >= 50).length, 0, 'no write failed');

        unlinkSync(filler);
        await until(async () => (await readyz()).status === 200, '/readyz ready again once space is freed', 5000, 100);
        await until(() => server!.logs.some((l) => l.msg === 'the disk of the store has room again'), 'the log says so', 5000, 50);
      } finally {
        await server?.stop();
        disk.release();
      }
    });
  });
});
