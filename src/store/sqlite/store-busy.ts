import { rateLimited, type ParleyError } from '../../protocol/errors.js';

/** The least retryAfterMs a busy store suggests. */
const MIN_RETRY_MS = 10;

/**
 * The refusal of a store whose bounded queue is full: RATE_LIMITED with a `retryAfterMs` drawn uniformly from
 * [wait, 2 × wait), where `wait` (ms) is how long the queue is expected to take to drain. Spread, not one value: the
 * callers refused in one burst would otherwise all come back at the same moment and find the queue full again.
 */
export function storeBusy(waitMs: number, what: 'writes' | 'calls', random: () => number = Math.random): ParleyError {
  const wait = Math.max(MIN_RETRY_MS, Math.ceil(waitMs));
  return rateLimited(wait + Math.floor(random() * wait), `The store is busy: too many ${what} are waiting; retry after retryAfterMs`);
}
