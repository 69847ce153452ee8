/**
 * How long a write waits for another process's lock on the database file (SQLite's busy timeout).
 *
 * One connection on one thread runs every store call in turn, so a write waiting out the busy timeout holds up every
 * call queued behind it, reads included. While another process holds the write lock (a maintenance shell in
 * `BEGIN EXCLUSIVE`, a stuck backup tool), waiting the full timeout per write made the queue grow without bound:
 * calls went unanswered for minutes. So after a write fails for the lock, later writes fail at once (busy timeout 0,
 * answered UNAVAILABLE, temporary) until one commits again: the health probe retries every few seconds, and the
 * first write to get through restores the normal wait. Reads are unaffected in WAL mode.
 */
import { Database } from './driver.js';

/** The normal wait, in ms: long enough for another process's checkpoint or short transaction, short enough that
 * the calls queued behind one waiting write are answered within about a second. */
export const defaultBusyTimeoutMs = 1000;

export class LockWait {
  private failingFast = false;

  constructor(private readonly db: Database, private readonly busyTimeoutMs: number) {}

  /** An error from a store call: a lock timeout switches later writes to fail at once. */
  noteError(err: unknown): void {
    if (this.failingFast || !isLockTimeout(err)) return;
    this.failingFast = true;
    this.setBusyTimeout(0);
  }

  /** A write committed: the lock is free again, so writes wait the normal time again. */
  noteCommit(): void {
    if (!this.failingFast) return;
    this.failingFast = false;
    this.setBusyTimeout(this.busyTimeoutMs);
  }

  private setBusyTimeout(ms: number): void {
    if (this.db.open) this.db.pragma(`busy_timeout = ${ms}`);
  }
}

function isLockTimeout(err: unknown): boolean {
  return err instanceof Database.SqliteError && /^SQLITE_(BUSY|LOCKED)/.test(err.code);
}
