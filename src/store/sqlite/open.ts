/** Opens the SQLite file with the pragmas the store relies on. */
import fs from 'node:fs';
import path from 'node:path';
import { Database } from './driver.js';
import { defaultBusyTimeoutMs } from './lock-wait.js';

export interface OpenOptions {
  path: string;
  synchronous: 'full' | 'normal';
  /** Appends waiting for their group commit at most; one more is refused with RATE_LIMITED. @default unbounded */
  maxQueuedWrites?: number;
  /** Calls posted to a store thread and not yet answered, at most; one more is refused with RATE_LIMITED. @default unbounded */
  maxPendingCalls?: number;
  /** How long a write waits for another process's lock before failing as UNAVAILABLE (see lock-wait.ts). @default 1000 */
  busyTimeoutMs?: number;
  /**
   * Open an existing, migrated file for reading only (a second connection beside the writer's; WAL lets it read while
   * the writer commits). @default false
   */
  readOnly?: boolean;
}

function isFilePath(p: string): boolean {
  return p !== '' && p !== ':memory:' && !p.startsWith('file:');
}

/** Whether a second connection can be opened on `p` (a file, not a private in-memory database). */
export const canOpenReader = isFilePath;

export function openDatabase(options: OpenOptions): Database {
  if (options.readOnly) return openReader(options);
  if (isFilePath(options.path)) fs.mkdirSync(path.dirname(path.resolve(options.path)), { recursive: true });
  const db = new Database(options.path);
  try {
    // WAL lets readers (other processes, backups) proceed while a batch commits, and makes commits one fsync.
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    db.pragma('foreign_keys = ON');
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? defaultBusyTimeoutMs))}`);
    // Appends across many conversations dirty pages all over every index: a larger cache keeps them from being re-read,
    // and checkpointing every ~40 MB instead of every 4 MB lets a page dirtied by many batches be copied back once.
    db.pragma('cache_size = -65536');
    db.pragma('wal_autocheckpoint = 10000');
    db.pragma('journal_size_limit = 67108864');
    // Savepoints (the slow append path) and sorts spill to temp storage; memory avoids temp files.
    db.pragma('temp_store = MEMORY');
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

function openReader(options: OpenOptions): Database {
  const db = new Database(options.path, { readonly: true, fileMustExist: true });
  try {
    db.pragma('query_only = ON');
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? defaultBusyTimeoutMs))}`);
    db.pragma('cache_size = -16384');
    db.pragma('temp_store = MEMORY');
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}
