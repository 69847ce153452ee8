/**
 * One worker thread running a SqliteStore (store-thread.ts), driven by calls posted from the main thread. Calls of
 * one event-loop turn go in one message, so appends among them share a group commit; results come back batched too.
 * A result is posted only after the worker's store settled it (for a write: after its transaction committed).
 */
import { Worker } from 'node:worker_threads';
import { ParleyError } from '../../protocol/errors.js';
import { storeBusy } from './store-busy.js';
import type { Store } from '../store.js';
import type { StoreThreadOptions } from './store-thread.js';
import type { Call, Result, WireError } from './thread-protocol.js';

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  /** The message the call went out in. */
  post: Post;
}

/** One message of calls: when it was posted (ms since the epoch), shared by its calls (one clock read per message). */
interface Post {
  at: number;
}

/** Calls never refused for a full queue: opening and closing the store, and the health probe. */
const unbounded: ReadonlySet<keyof Store> = new Set<keyof Store>(['migrate', 'close', 'ping']);

export class StoreWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private outbox: Call[] = [];
  /** The message the outbox will go out in. */
  private post: Post = { at: 0 };
  private flushScheduled = false;
  /** Set once the thread failed or exited: every later call is UNAVAILABLE. */
  failure: Error | null = null;
  /** How long the last answered call took (ms): the wait suggested to a refused caller. */
  private recentMs = 0;
  private readonly maxPending: number;

  constructor(options: StoreThreadOptions, private readonly name: string) {
    this.maxPending = options.maxPendingCalls ?? Number.POSITIVE_INFINITY;
    this.worker = startWorker(options);
    this.worker.on('message', (results: Result[]) => this.settle(results));
    this.worker.on('error', (error) => this.failAll(error));
    this.worker.on('exit', (code) => this.failAll(new Error(`exited with code ${code}`)));
    this.worker.unref();
  }

  /** Number of calls posted and not yet answered. */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Post a call. At `maxPendingCalls` unanswered calls, one more is refused at once with RATE_LIMITED (nothing is
   * posted, so nothing acknowledged is lost): the thread's backlog, and the memory of the calls waiting on it, stay
   * bounded however fast requests arrive.
   */
  call(method: keyof Store, args: unknown[]): Promise<unknown> {
    if (this.failure) return Promise.reject(this.unavailable(this.failure));
    if (this.pending.size >= this.maxPending && !unbounded.has(method)) {
      // The last answered call waited recentMs behind a queue about as long as this one: about what it takes to drain.
      return Promise.reject(storeBusy(this.recentMs, 'calls'));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, post: this.post });
      this.worker.ref();
      this.outbox.push([id, method, args]);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  async terminate(): Promise<void> {
    await this.worker.terminate();
  }

  private flush(): void {
    this.flushScheduled = false;
    const calls = this.outbox;
    this.outbox = [];
    this.post.at = Date.now();
    this.post = { at: 0 };
    this.worker.postMessage(calls);
  }

  private settle(results: Result[]): void {
    const now = Date.now();
    for (const result of results) {
      const waiting = this.pending.get(result[0]);
      if (!waiting) continue;
      this.pending.delete(result[0]);
      this.recentMs = now - waiting.post.at;
      if (result[1]) waiting.resolve(result[2]);
      else waiting.reject(fromWire(result[2]));
    }
    // An idle worker must not keep the process alive; a busy one must.
    if (this.pending.size === 0) this.worker.unref();
  }

  private failAll(error: Error): void {
    this.failure ??= error;
    for (const { reject } of this.pending.values()) reject(this.unavailable(error));
    this.pending.clear();
  }

  private unavailable(error: Error): ParleyError {
    return new ParleyError('UNAVAILABLE', `${this.name} failed: ${error.message}`);
  }
}

function startWorker(options: StoreThreadOptions): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./store-thread.js', import.meta.url), { workerData: options });
  // Run from TypeScript sources (tests under tsx): a worker does not inherit the loader, so it registers tsx first.
  const entry = new URL('./store-thread.ts', import.meta.url).href;
  const bootstrap = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(bootstrap, { eval: true, workerData: options });
}

function fromWire(error: WireError): Error {
  if (error.parley && error.code) {
    const rebuilt = new ParleyError(error.code, error.message, error.details);
    if (error.retryAfterMs !== undefined) rebuilt.retryAfterMs = error.retryAfterMs;
    return rebuilt;
  }
  const rebuilt = new Error(error.message);
  if (typeof error.details === 'string') rebuilt.stack = error.details;
  return rebuilt;
}
