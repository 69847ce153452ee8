import { spawn, type ChildProcess } from 'node:child_process';

/**
 * Stops what a test started when the test process dies without stopping it (a runner timeout, a crash, SIGKILL):
 * servers (PostgreSQL, Redis, nginx, Parley instances) and their temporary folders would otherwise outlive it.
 *
 * One watchdog process per test process (reaper-watchdog.mjs, in its own process group so that a signal to the test's
 * group does not take it too) holds a pipe from this process. A helper registers a cleanup for what it starts and
 * releases it once it has stopped that itself; when the pipe closes, the watchdog runs every cleanup still registered.
 * The watchdog never keeps the test process alive (its handles are unref'd).
 */
export interface Cleanup {
  /** A process to stop: `signal` first, SIGKILL if it is still there 5 s later. */
  kill?: { pid: number; signal: NodeJS.Signals };
  /** A command to run first (e.g. `pg_ctl stop`), bounded to 30 s; its failure is ignored. */
  run?: string[];
  /** Folders to remove, last. */
  remove?: string[];
}

export interface Reaped {
  /** Replace the cleanup (a restarted server has a new pid). */
  set(cleanup: Cleanup): void;
  /** The helper stopped it itself: nothing to do when the test process dies. */
  release(): void;
}

const WATCHDOG = new URL('./reaper-watchdog.mjs', import.meta.url).pathname;
let watchdog: ChildProcess | undefined;
let nextId = 0;

function send(command: Record<string, unknown>): void {
  if (!watchdog) {
    watchdog = spawn(process.execPath, [WATCHDOG], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
    watchdog.unref();
    (watchdog.stdin as unknown as { unref(): void }).unref();
    // The watchdog gone early (killed from outside) must not crash the test with EPIPE.
    watchdog.stdin!.on('error', () => undefined);
  }
  watchdog.stdin!.write(`${JSON.stringify(command)}\n`);
}

/** Register `cleanup` to run if this process dies before `release()`. */
export function reapOnExit(cleanup: Cleanup): Reaped {
  const id = ++nextId;
  send({ op: 'set', id, ...cleanup });
  return {
    set: (next) => send({ op: 'set', id, ...next }),
    release: () => send({ op: 'drop', id }),
  };
}
