/**
 * The start-up check that the folders Parley writes to are writable. SQLite opens a read-only file without complaint
 * and only fails at the first write, so a server on a read-only or unwritable data folder used to start, answer
 * /readyz, and refuse every message. Checking with a real write (create, write, fsync, delete a probe file) also
 * catches what permission bits do not show: a read-only mount, a full disk, a path through a file.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Refusal to start: the message is one line naming the folder, the setting and the system's reason. */
export class UnwritableFolderError extends Error {
  readonly code = 'EPARLEY_UNWRITABLE';
  constructor(readonly folder: string, what: string, cause: NodeJS.ErrnoException) {
    super(`cannot write to ${what} ${folder}: ${cause.code ?? 'error'} (${describe(cause)}); Parley needs it writable to start`);
    this.name = 'UnwritableFolderError';
  }
}

function describe(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'EROFS': return 'read-only file system';
    case 'EACCES':
    case 'EPERM': return 'permission denied';
    case 'ENOSPC': return 'no space left on the device';
    case 'EDQUOT': return 'disk quota exceeded';
    case 'ENOTDIR': return 'a part of the path is a file, not a folder';
    case 'EEXIST': return 'a file of that name is in the way';
    default: return err.message;
  }
}

/**
 * Create `folder` if missing and prove it writable. Throws UnwritableFolderError.
 * @param what how the operator knows the folder, e.g. `the data folder (dataDir)`.
 */
export function assertWritableFolder(folder: string, what: string): void {
  const dir = resolve(folder);
  const probe = join(dir, `.parley-write-check-${process.pid}`);
  let fd: number | undefined;
  try {
    mkdirSync(dir, { recursive: true });
    fd = openSync(probe, 'w');
    writeSync(fd, 'ok');
    fsyncSync(fd);
  } catch (err) {
    throw new UnwritableFolderError(dir, what, err as NodeJS.ErrnoException);
  } finally {
    if (fd !== undefined) {
      closeSync(fd);
      try {
        unlinkSync(probe);
      } catch {
        // a probe left behind is harmless
      }
    }
  }
}
