import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { until } from '../helpers/raw-client.js';

/**
 * A test process killed mid-run (a runner timeout, a crash, SIGKILL) leaves none of what it started: PostgreSQL,
 * Redis, a Parley instance and nginx stop, and their temporary folders go (test/helpers/services/reaper.ts).
 */
const FIXTURE = new URL('../helpers/fixtures/start-services.ts', import.meta.url).pathname;

/** Whether something accepts TCP connections on this loopback port. */
function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

describe('services started by a test process', () => {
  it('stop, and their folders go, when that process is SIGKILLed', { timeout: 120_000 }, async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const started = await new Promise<{ ports: Record<string, number>; folders: string[] }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`services not started within 90 s: ${stderr}`)), 90_000);
      createInterface({ input: child.stdout! }).once('line', (line) => { clearTimeout(timer); resolve(JSON.parse(line)); });
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`fixture exited with ${code}: ${stderr}`)); });
    });
    const ports = Object.entries(started.ports);
    assert.equal(ports.length, 4);
    for (const [name, port] of ports) assert.ok(await accepting(port), `${name} accepts connections before the kill`);
    for (const folder of started.folders) assert.ok(existsSync(folder), `${folder} exists before the kill`);

    child.kill('SIGKILL');
    for (const [name, port] of ports) await until(async () => !(await accepting(port)), `${name} on port ${port} stopped`, 30_000, 100);
    await until(() => started.folders.every((folder) => !existsSync(folder)), `folders removed: ${started.folders.join(', ')}`, 30_000, 100);
  });
});
