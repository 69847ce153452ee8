/**
 * Translates node-postgres failures into ParleyErrors: the engine being away (connection refused or lost, server
 * shutting down or starting, pool timeout, statement timeout) is UNAVAILABLE (temporary: retry later); constraint
 * outcomes are CONFLICT / NOT_FOUND / ACCOUNT_EXISTS as the Store seam documents; a string PostgreSQL cannot hold
 * (U+0000) is INVALID_REQUEST; anything else is a bug and is rethrown untouched.
 */
import { ParleyError, isParleyError } from '../../protocol/errors.js';

/** SQLSTATE classes and codes meaning the server, not the request, is at fault. */
const unavailableClasses = new Set([
  '08', // connection exception
  '53', // insufficient resources (disk full, out of memory, too many connections)
  '58', // system error (I/O)
  'XX', // internal error (e.g. data corrupted)
]);
const unavailableCodes = new Set([
  '57P01', // admin_shutdown: the server is stopping
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: the server is starting or recovering
  '57P04', // database_dropped
  '57014', // query_canceled: statement_timeout
  '55P03', // lock_not_available: lock_timeout
  '25006', // read_only_sql_transaction: connected to a standby (after a failover, before DNS follows)
  '40001', // serialization_failure, after the store's own retries
  '40P01', // deadlock_detected, likewise
]);

/** Codes whose transaction the store runs again (bounded): the conflict is gone once the other transaction ends. */
export function isRetryable(err: unknown): boolean {
  const code = sqlState(err);
  return code === '40001' || code === '40P01';
}

/** node-postgres failures of the connection itself (no SQLSTATE); see its client.js and pg-pool. */
const connectionMessages = [
  /connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /query read timeout/i,
  /not queryable/i,
  /connection (?:is )?(?:closed|ended)/i,
  /cannot use a pool after calling end/i,
  /client was closed and is not queryable/i,
];

function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** Node's system errors (ECONNREFUSED, ECONNRESET, ETIMEDOUT, ENOTFOUND, EPIPE...). */
function isSystemError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^E[A-Z0-9_]+$/.test(code) && (err as { syscall?: unknown }).syscall !== undefined;
}

/** Whether the connection the error came from can no longer be trusted (destroy it rather than return it to the pool). */
export function isConnectionFailure(err: unknown): boolean {
  if (isParleyError(err)) return false;
  const code = sqlState(err);
  if (code !== undefined) return unavailableClasses.has(code.slice(0, 2)) || code.startsWith('57P');
  return err instanceof Error && (isSystemError(err) || connectionMessages.some((m) => m.test(err.message)));
}

/** Unique constraints whose violation has a documented meaning of its own; any other is CONFLICT. */
const uniqueMeaning: Record<string, () => ParleyError> = {
  users_pkey: () => new ParleyError('CONFLICT', 'A user with this id exists'),
  users_name_key: () => new ParleyError('ACCOUNT_EXISTS', 'An account with this username already exists (names are compared after NFKC and case folding)', { reason: 'taken' }),
  conversations_pkey: () => new ParleyError('CONFLICT', 'A conversation with this id exists'),
  invites_pkey: () => new ParleyError('CONFLICT', 'An invite with this token exists'),
};

export function toParleyError(err: unknown): unknown {
  if (isParleyError(err)) return err;
  const code = sqlState(err);
  if (code === '23505') {
    const constraint = (err as { constraint?: string }).constraint ?? '';
    return uniqueMeaning[constraint]?.() ?? new ParleyError('CONFLICT', (err as Error).message);
  }
  if (code === '23503') return new ParleyError('NOT_FOUND', 'A referenced user or conversation does not exist');
  // The request checks refuse U+0000 in every string they see (src/protocol/well-formed.ts); this is for a string that
  // came another way (a command-line argument): PostgreSQL's text cannot hold it, which is the caller's fault, not ours.
  if (code === '22021') return new ParleyError('INVALID_REQUEST', 'A string holds U+0000 (NUL), which PostgreSQL text cannot hold');
  if (code !== undefined && (unavailableCodes.has(code) || unavailableClasses.has(code.slice(0, 2)))) {
    return new ParleyError('UNAVAILABLE', `Store unavailable: ${(err as Error).message}`);
  }
  if (isConnectionFailure(err)) return new ParleyError('UNAVAILABLE', `Store unavailable: ${(err as Error).message}`);
  return err;
}

export function closedError(): ParleyError {
  return new ParleyError('UNAVAILABLE', 'The store is closed');
}
