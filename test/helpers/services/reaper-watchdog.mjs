// The watchdog of test/helpers/services/reaper.ts: a process of its own that outlives the test process. It reads
// cleanups as lines of JSON on stdin ({ op: 'set', id, kill?, run?, remove? } or { op: 'drop', id }); when stdin
// closes (the test process is gone, however it ended: exit, crash, SIGKILL), it runs every cleanup still set, then
// exits. Plain JavaScript, run by `node` itself: it must not depend on the test's loader.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';

const cleanups = new Map();
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  let command;
  try {
    command = JSON.parse(line);
  } catch {
    return;
  }
  if (command.op === 'set') cleanups.set(command.id, command);
  else if (command.op === 'drop') cleanups.delete(command.id);
});
lines.on('close', async () => {
  for (const { kill, run, remove } of cleanups.values()) {
    if (run) {
      try {
        execFileSync(run[0], run.slice(1), { stdio: 'ignore', timeout: 30_000 });
      } catch {
        // Already stopped, or the command failed: the kill and removal below still run.
      }
    }
    if (kill) await stop(kill.pid, kill.signal);
    for (const path of remove ?? []) rmSync(path, { recursive: true, force: true });
  }
  process.exit(0);
});

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** `signal`, then SIGKILL if the process is still there after 5 s (checked every 50 ms). */
async function stop(pid, signal) {
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  for (let waited = 0; waited < 5000 && alive(pid); waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone between the check and the kill.
    }
  }
}
