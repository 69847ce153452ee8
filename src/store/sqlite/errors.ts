/**
 * Translates better-sqlite3 failures into ParleyErrors, so callers can tell "retry later" (UNAVAILABLE) and
 * data conflicts (CONFLICT, NOT_FOUND) from bugs, which are rethrown untouched.
 */
import { Database } from './driver.js';
import { ParleyError, isParleyError } from '../../protocol/errors.js';

// Result codes that mean the engine, not the request, is at fault: retrying later may succeed.
const unavailableCodes = new Set([
  'SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_IOERR', 'SQLITE_FULL', 'SQLITE_CANTOPEN', 'SQLITE_NOMEM',
  'SQLITE_READONLY', 'SQLITE_PROTOCOL', 'SQLITE_CORRUPT', 'SQLITE_NOTADB', 'SQLITE_INTERRUPT', 'SQLITE_ABORT',
]);

function primaryCode(code: string): string {
  // Extended codes look like SQLITE_IOERR_FSYNC; the family is the first two parts.
  return code.split('_').slice(0, 2).join('_');
}

export function toParleyError(err: unknown): unknown {
  if (isParleyError(err)) return err;
  if (err instanceof Database.SqliteError) return fromSqliteError(err);
  if (err instanceof TypeError && /database connection is not open/i.test(err.message)) {
    return new ParleyError('UNAVAILABLE', 'The store is closed');
  }
  return err;
}

function fromSqliteError(err: InstanceType<typeof Database.SqliteError>): unknown {
  if (err.code === 'SQLITE_CONSTRAINT_FOREIGNKEY') return new ParleyError('NOT_FOUND', 'A referenced user or conversation does not exist');
  if (err.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || err.code === 'SQLITE_CONSTRAINT_UNIQUE') {
    return new ParleyError('CONFLICT', err.message);
  }
  if (unavailableCodes.has(primaryCode(err.code))) return new ParleyError('UNAVAILABLE', `Store unavailable: ${err.message}`);
  return err;
}

export function closedError(): ParleyError {
  return new ParleyError('UNAVAILABLE', 'The store is closed');
}
