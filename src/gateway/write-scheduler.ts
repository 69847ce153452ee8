/**
 * Coalesces writes: frames queued for a connection during one event-loop turn are written to its socket as one
 * `write` in `setImmediate`. Writing a 1,000-member fan-out this way costs one syscall per socket per turn however
 * many events the turn produced: measured on 2 cores, ~1.1M deliveries/s against ~110k–140k for a loop of
 * `ws.send` (bench/README.md, "Reference measurements").
 */
export interface Flushable {
  flush(): void;
}

export class WriteScheduler {
  private dirty: Flushable[] = [];
  private scheduled = false;
  private readonly run = (): void => this.flushAll();
  /** Date.now() at the start of the current flush (one clock read per turn, not per connection). */
  now = Date.now();

  /** Call once per connection per turn (the connection tracks whether it is already marked). */
  mark(connection: Flushable): void {
    this.dirty.push(connection);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.run);
    }
  }

  flushAll(): void {
    this.scheduled = false;
    this.now = Date.now();
    const batch = this.dirty;
    this.dirty = [];
    for (let i = 0; i < batch.length; i++) batch[i].flush();
  }
}
