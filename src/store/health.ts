/**
 * Store health as an operator sees it: whether writes currently succeed, the last failure, and how many in a row.
 * A full disk, a read-only data folder or a dying store thread make every write reject UNAVAILABLE; without this the
 * clients saw the errors while /readyz, the logs and the metrics said nothing.
 *
 * `observeStore` wraps any Store engine (it needs nothing of the engine but the seam) and reports each call here:
 * a call that rejects UNAVAILABLE, or with an unexpected (non-Parley) error, is a store failure; a request refused for
 * its content (CONFLICT, NOT_FOUND, ...) is not. Only `ping` proves the store writable again: it always commits a
 * write, while other writes may succeed without writing (an existing direct conversation, an idempotent retry) and
 * reads succeed on a full or read-only disk. While failing, `ping` is run every `probeIntervalMs` (and by each
 * /readyz), so the failure run ends by itself once writes succeed; a ping ends it only when no other call failed
 * within the last `probeIntervalMs` (on a nearly full disk the tiny probe write fits while messages do not).
 */
import { isParleyError } from '../protocol/errors.js';
import type { Store } from './store.js';

export interface StoreFailure {
  /** The Store method that failed, e.g. `appendMessage`. */
  op: string;
  message: string;
  /** Epoch ms. */
  at: number;
}

/** What StoreHealth tells the outside (logs, metrics); all optional. */
export interface StoreHealthHooks {
  /** Every failure, for a counter by method. */
  onFailure?(op: string): void;
  /** Writable became true or false. */
  onReadyChange?(ready: boolean): void;
  /** At most one call per `logIntervalMs` while failing: the first failure of a run, then a summary. */
  logFailure?(failure: StoreFailure, consecutiveFailures: number, suppressed: number): void;
  /** Once, when a run of failures ends. */
  logRecovered?(failures: number, since: number): void;
}

export class StoreHealth {
  consecutiveFailures = 0;
  lastFailure: StoreFailure | null = null;
  private lastLogAt = -Infinity;
  private suppressed = 0;
  private failingSince = 0;

  /** Commits a tiny write; set by observeStore. */
  probe: (() => Promise<unknown>) | null = null;
  private probeTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly hooks: StoreHealthHooks = {},
    /** Failure log lines are at least this far apart (a full disk fails every request; one line per request floods). */
    private readonly logIntervalMs = 10_000,
    /** While failing, the probe write runs this often. */
    private readonly probeIntervalMs = 5000,
    private readonly now: () => number = Date.now,
  ) {}

  /** True from a failed store call until a probe write (ping) succeeds. */
  get failing(): boolean {
    return this.consecutiveFailures > 0;
  }

  recordFailure(op: string, err: unknown): void {
    const at = this.now();
    this.lastFailure = { op, message: (err as Error)?.message ?? String(err), at };
    if (this.consecutiveFailures++ === 0) {
      this.failingSince = at;
      this.hooks.onReadyChange?.(false);
      this.startProbing();
    }
    this.hooks.onFailure?.(op);
    if (at - this.lastLogAt >= this.logIntervalMs) {
      this.hooks.logFailure?.(this.lastFailure, this.consecutiveFailures, this.suppressed);
      this.lastLogAt = at;
      this.suppressed = 0;
    } else {
      this.suppressed++;
    }
  }

  recordWriteSuccess(): void {
    if (this.consecutiveFailures === 0) return;
    // A probe write can still fit where others do not (a nearly full disk takes a tiny write but not a message): while
    // other calls failed within the last probe interval, one successful probe does not make the store ready again.
    const last = this.lastFailure;
    if (last && last.op !== 'ping' && this.now() - last.at < this.probeIntervalMs) return;
    this.stop();
    this.hooks.logRecovered?.(this.consecutiveFailures, this.failingSince);
    this.hooks.onReadyChange?.(true);
    this.consecutiveFailures = 0;
    this.suppressed = 0;
    this.lastLogAt = -Infinity;
  }

  /** Stop the probe timer (the store is closing, or writes succeed again). */
  stop(): void {
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.probeTimer = null;
  }

  private startProbing(): void {
    if (this.probeTimer || !this.probe) return;
    const probe = this.probe;
    this.probeTimer = setInterval(() => void probe().catch(() => undefined), this.probeIntervalMs);
    this.probeTimer.unref();
  }

  /** Why the store is not ready, for /readyz; null when it is. */
  reason(): string | null {
    if (!this.failing || !this.lastFailure) return null;
    const f = this.lastFailure;
    return `store writes failing (${this.consecutiveFailures} in a row since ${new Date(this.failingSince).toISOString()}; last: ${f.op}: ${f.message})`;
  }
}

/** A store failure, as opposed to a request the store refused for its content. */
export function isStoreFailure(err: unknown): boolean {
  return !isParleyError(err) || err.code === 'UNAVAILABLE';
}

/** The same store, every call reported to `health`, which also gets the store's `ping` as its probe. */
export function observeStore(store: Store, health: StoreHealth): Store {
  let closed = false;
  const wrapped = new Map<string, (...args: unknown[]) => Promise<unknown>>(); // one wrapper per method, not per call
  const observed = new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      let wrapper = wrapped.get(prop);
      if (!wrapper) wrapped.set(prop, (wrapper = observe(target, prop, value as (...a: unknown[]) => Promise<unknown>)));
      return wrapper;
    },
  });
  const observe = (target: Store, prop: string, method: (...a: unknown[]) => Promise<unknown>) => {
    const run = (...args: unknown[]) => call(() => method.apply(target, args));
    if (prop === 'close') {
      return () => {
        closed = true;
        health.stop();
        return run();
      };
    }
    return (...args: unknown[]) =>
      run(...args).then(
        (result) => {
          if (prop === 'ping') health.recordWriteSuccess();
          return result;
        },
        (err: unknown) => {
          if (isStoreFailure(err) && !closed) health.recordFailure(prop, err);
          throw err;
        },
      );
  };
  health.probe = () => observed.ping();
  return observed;
}

function call(run: () => Promise<unknown>): Promise<unknown> {
  try {
    return run();
  } catch (err) {
    return Promise.reject(err);
  }
}
