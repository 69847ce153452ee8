/**
 * Reconnect / retry delays: exponential growth with "full jitter" (AWS architecture blog): the delay of attempt `n`
 * (0-based) is uniform in [0, min(maxMs, initialMs * 2^n)). Full jitter spreads a crowd of clients that lost the same
 * server evenly instead of letting them return in synchronized waves.
 */
export interface BackoffOptions {
  /** Ceiling of the first delay. @default 250 */
  initialMs?: number;
  /** Largest ceiling any delay may have. @default 10000 */
  maxMs?: number;
}

export const DEFAULT_BACKOFF = { initialMs: 250, maxMs: 10_000 } as const;

function resolve(opts: BackoffOptions = {}): { initialMs: number; maxMs: number } {
  const initialMs = opts.initialMs ?? DEFAULT_BACKOFF.initialMs;
  const maxMs = opts.maxMs ?? DEFAULT_BACKOFF.maxMs;
  if (!(initialMs > 0) || !Number.isFinite(initialMs)) throw new RangeError('backoff.initialMs must be a positive number');
  if (!(maxMs >= initialMs) || !Number.isFinite(maxMs)) throw new RangeError('backoff.maxMs must be >= backoff.initialMs');
  return { initialMs, maxMs };
}

/** The upper bound (exclusive) of the delay for attempt `attempt` (0-based): min(maxMs, initialMs * 2^attempt). */
export function backoffCeiling(attempt: number, opts?: BackoffOptions): number {
  const { initialMs, maxMs } = resolve(opts);
  const n = Math.max(0, Math.floor(attempt));
  // 2^n overflows to Infinity for huge n, which Math.min handles.
  return Math.min(maxMs, initialMs * 2 ** n);
}

/** A full-jitter delay for attempt `attempt`: uniform in [0, backoffCeiling(attempt)). `random` returns [0, 1). */
export function fullJitterDelay(attempt: number, opts?: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = backoffCeiling(attempt, opts);
  const r = Math.min(Math.max(random(), 0), 1 - Number.EPSILON);
  return Math.floor(r * ceiling);
}

/** Stateful helper: `next()` returns the delay for the current attempt and advances; `reset()` after a success. */
export class Backoff {
  private attemptNo = 0;
  private readonly opts: { initialMs: number; maxMs: number };
  constructor(opts?: BackoffOptions, private readonly random: () => number = Math.random) {
    this.opts = resolve(opts);
  }
  get attempt(): number {
    return this.attemptNo;
  }
  next(): number {
    const delay = fullJitterDelay(this.attemptNo, this.opts, this.random);
    this.attemptNo++;
    return delay;
  }
  reset(): void {
    this.attemptNo = 0;
  }
}
