/** A minimal typed event emitter (no Node `events` import, so it runs in browsers). */
export type Handler<T> = (data: T) => void;

export class Emitter<M extends { [K in keyof M]: unknown }> {
  private handlers = new Map<keyof M, Set<Handler<never>>>();

  /** Reports a handler that threw (the client routes these to its `error` event). */
  constructor(private readonly onHandlerError?: (err: unknown, event: keyof M) => void) {}

  /** Subscribe; returns a function that unsubscribes. */
  on<K extends keyof M>(event: K, handler: Handler<M[K]>): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler as Handler<never>);
    return () => this.off(event, handler);
  }

  once<K extends keyof M>(event: K, handler: Handler<M[K]>): () => void {
    const off = this.on(event, (data) => {
      off();
      handler(data);
    });
    return off;
  }

  off<K extends keyof M>(event: K, handler: Handler<M[K]>): void {
    const set = this.handlers.get(event);
    if (!set) return;
    set.delete(handler as Handler<never>);
    if (set.size === 0) this.handlers.delete(event);
  }

  listenerCount(event: keyof M): number {
    return this.handlers.get(event)?.size ?? 0;
  }

  /** Calls every handler; a handler that throws does not stop the others or the caller. */
  emit<K extends keyof M>(event: K, data: M[K]): void {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        (handler as Handler<M[K]>)(data);
      } catch (err) {
        if (this.onHandlerError) {
          try {
            this.onHandlerError(err, event);
          } catch {
            /* an error handler that throws has nowhere left to report to */
          }
        }
      }
    }
  }

  removeAll(): void {
    this.handlers.clear();
  }
}
