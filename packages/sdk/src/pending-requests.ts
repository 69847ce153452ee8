import { ParleyClientError } from './errors.js';

interface Entry {
  type: string;
  resolve: (result: unknown) => void;
  reject: (err: ParleyClientError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * Requests sent and not yet answered, by frame id. Each settles exactly once: by its reply, by its timeout (TIMEOUT),
 * or by `rejectAll` when the connection goes (DISCONNECTED) or the client closes (CLOSED). A reply that arrives after
 * its request timed out is ignored.
 */
export class PendingRequests {
  private readonly entries = new Map<number, Entry>();
  private nextId = 1;

  get size(): number {
    return this.entries.size;
  }

  /** Registers a request; returns its frame id and the promise of its result. `timeoutMs <= 0` means no timeout. */
  add<R>(type: string, timeoutMs: number): { id: number; promise: Promise<R> } {
    const id = this.nextId++;
    const promise = new Promise<R>((resolve, reject) => {
      const entry: Entry = { type, resolve: resolve as (r: unknown) => void, reject, timer: undefined };
      if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
        entry.timer = setTimeout(() => {
          if (this.entries.get(id) !== entry) return;
          this.entries.delete(id);
          reject(new ParleyClientError('TIMEOUT', `No reply to ${type} within ${timeoutMs} ms`, { requestType: type }));
        }, timeoutMs);
      }
      this.entries.set(id, entry);
    });
    return { id, promise };
  }

  has(id: unknown): boolean {
    return typeof id === 'number' && this.entries.has(id);
  }

  typeOf(id: unknown): string | undefined {
    return typeof id === 'number' ? this.entries.get(id)?.type : undefined;
  }

  resolve(id: unknown, result: unknown): boolean {
    const entry = this.take(id);
    if (!entry) return false;
    entry.resolve(result);
    return true;
  }

  reject(id: unknown, err: ParleyClientError): boolean {
    const entry = this.take(id);
    if (!entry) return false;
    entry.reject(err);
    return true;
  }

  /** Rejects every pending request with an error made for it. */
  rejectAll(makeError: (type: string) => ParleyClientError): void {
    const all = [...this.entries.values()];
    this.entries.clear();
    for (const entry of all) {
      if (entry.timer !== undefined) clearTimeout(entry.timer);
      entry.reject(makeError(entry.type));
    }
  }

  private take(id: unknown): Entry | undefined {
    if (typeof id !== 'number') return undefined;
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    this.entries.delete(id);
    if (entry.timer !== undefined) clearTimeout(entry.timer);
    return entry;
  }
}
