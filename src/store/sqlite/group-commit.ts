/**
 * Group commit: work submitted during one event-loop turn is run together as one batch (one transaction, so one
 * fsync), flushed on setImmediate; each submitter's promise then settles with its own outcome.
 *
 * The queue is bounded (`maxQueued`): a submission that finds it full is refused at once with RATE_LIMITED and a
 * `retryAfterMs` of about the time the queue takes to drain (batches left × the last batch's duration, spread: see
 * storeBusy), before anything is queued or written, so nothing acknowledged is lost
 * and memory does not grow with a backlog the disk cannot absorb.
 */
import { storeBusy } from './store-busy.js';

export type Outcome<R> = { ok: true; value: R } | { ok: false; error: unknown };

/** Runs a whole batch; returns one outcome per item, in order, or throws if the batch as a whole failed. */
export type BatchRunner<T, R> = (items: T[]) => Outcome<R>[];

interface Pending<T, R> {
  item: T;
  resolve: (value: R) => void;
  reject: (error: unknown) => void;
}

export class GroupCommit<T, R> {
  private queue: Pending<T, R>[] = [];
  private scheduled = false;
  /** How long the last batch took (ms): the wait suggested to a refused submitter. */
  private lastBatchMs = 0;

  constructor(
    private readonly runBatch: BatchRunner<T, R>,
    private readonly mapError: (error: unknown) => unknown,
    // Bounds how long one flush blocks the event loop; the rest waits for the next turn.
    private readonly maxBatch = 2000,
    /** Submissions waiting at most; one more is refused (RATE_LIMITED). */
    private readonly maxQueued = Number.POSITIVE_INFINITY,
  ) {}

  submit(item: T): Promise<R> {
    if (this.queue.length >= this.maxQueued) {
      return Promise.reject(storeBusy(Math.ceil(this.queue.length / this.maxBatch) * this.lastBatchMs, 'writes'));
    }
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Run everything queued now, synchronously (used before closing). */
  flushAll(): void {
    while (this.queue.length > 0) this.flushOne();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flushOne();
      if (this.queue.length > 0) this.schedule();
    });
  }

  private flushOne(): void {
    const batch = this.queue.splice(0, this.maxBatch);
    if (batch.length === 0) return;
    let outcomes: Outcome<R>[];
    const started = performance.now();
    try {
      outcomes = this.runBatch(batch.map((p) => p.item));
      this.lastBatchMs = performance.now() - started;
    } catch (error) {
      const mapped = this.mapError(error);
      for (const p of batch) p.reject(mapped);
      return;
    }
    batch.forEach((p, i) => {
      const outcome = outcomes[i];
      if (outcome.ok) p.resolve(outcome.value);
      else p.reject(this.mapError(outcome.error));
    });
  }
}
