import type { ErrorCode } from '../../protocol/errors.js';
import type { Store } from '../store.js';

/** What crosses between the main thread and the store thread: batches of calls and batches of results. */
export type Call = [id: number, method: keyof Store, args: unknown[]];
export type Result = [id: number, ok: true, value: unknown] | [id: number, ok: false, error: WireError];
export interface WireError {
  parley: boolean;
  code: ErrorCode | null;
  message: string;
  details: unknown;
  /** RATE_LIMITED: the wait suggested to the caller. */
  retryAfterMs?: number;
}
