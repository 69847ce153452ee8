/**
 * Group commit over a network store: appends submitted while a batch is being written wait, and are written together
 * as the next batch (one transaction, one commit), started on the turn after the first of them arrived. One batch is
 * in flight at a time, so the batches of one instance commit in submission order; each submitter's promise settles
 * with its own outcome.
 *
 * The queue is bounded (`maxQueued`): a submission that finds it full is refused at once with RATE_LIMITED and a
 * `retryAfterMs` of about the time the queue takes to drain (spread up to twice that), before anything is written.
 */
import { rateLimited } from '../../protocol/errors.js';

export type Outcome<R> = { ok: true; value: R } | { ok: false; error: unknown };

/** Runs a whole batch; resolves one outcome per item, in order, or rejects if the batch as a whole failed. */
export type BatchRunner<T, R> = (items: T[]) => Promise<Outcome<R>[]>;

interface Pending<T, R> {
  item: T;
  resolve: (value: R) => void;
  reject: (error: unknown) => void;
}

/** The least retryAfterMs a full queue suggests. */
const MIN_RETRY_MS = 10;

export class AsyncGroupCommit<T, R> {
  private queue: Pending<T, R>[] = [];
  private scheduled = false;
  private inFlight: Promise<void> | null = null;
  /** How long the last batch took (ms): the wait suggested to a refused submitter. */
  private lastBatchMs = 0;

  constructor(
    private readonly runBatch: BatchRunner<T, R>,
    private readonly mapError: (error: unknown) => unknown,
    /** Items in one transaction at most: bounds how long one batch holds its row locks. */
    private readonly maxBatch = 500,
    private readonly maxQueued = Number.POSITIVE_INFINITY,
  ) {}

  submit(item: T): Promise<R> {
    if (this.queue.length >= this.maxQueued) {
      const wait = Math.max(MIN_RETRY_MS, Math.ceil(Math.ceil(this.queue.length / this.maxBatch) * this.lastBatchMs));
      return Promise.reject(rateLimited(wait + Math.floor(Math.random() * wait), 'The store is busy: too many writes are waiting; retry after retryAfterMs'));
    }
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /** Resolves once everything queued so far has been written (or refused). */
  async drain(): Promise<void> {
    // Bounded: each round writes at least one batch, and nothing new is accepted by a closing store.
    while (this.inFlight || this.queue.length > 0) {
      if (this.inFlight) await this.inFlight;
      else this.flush();
    }
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (!this.inFlight) this.flush();
    });
  }

  private flush(): void {
    const batch = this.queue.splice(0, this.maxBatch);
    if (batch.length === 0) return;
    const started = performance.now();
    this.inFlight = this.runBatch(batch.map((p) => p.item)).then(
      (outcomes) => {
        this.lastBatchMs = performance.now() - started;
        batch.forEach((p, i) => {
          const outcome = outcomes[i];
          if (outcome.ok) p.resolve(outcome.value);
          else p.reject(this.mapError(outcome.error));
        });
      },
      (error: unknown) => {
        const mapped = this.mapError(error);
        for (const p of batch) p.reject(mapped);
      },
    ).finally(() => {
      this.inFlight = null;
      if (this.queue.length > 0) this.schedule();
    });
  }
}
