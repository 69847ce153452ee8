/**
 * Coalesces writes: frames queued for a connection during one event-loop turn are written to its socket as one
 * `write` in `setImmediate`. Writing a 1,000-member fan-out this way costs one syscall per socket per turn however
 * many events the turn produced: measured on 2 cores, ~1.1M deliveries/s against ~110k–140k for a loop of
 * `ws.send` (bench/README.md, "Reference measurements").
 */
export interface Flushable {
  flush(): void;
  /** Called by the trailing-probe sweep (see `trail`); the connection decides whether it still needs a probe. */
  probeTrailing(): void;
}

export class WriteScheduler {
  private dirty: Flushable[] = [];
  private scheduled = false;
  private readonly run = (): void => this.flushAll();
  /** Date.now() at the start of the current flush (one clock read per turn, not per connection). */
  now = Date.now();
  /** Connections that were written to since their last position ping (see Connection.flush). */
  private trailing = new Set<Flushable>();
  private trailTimer: ReturnType<typeof setInterval> | null = null;

  /** @param probeMs least time between two position pings of one connection (limits.outgoingProbeMs). */
  constructor(private readonly probeMs = 100) {}

  /**
   * Ask for a position ping after the connection's last write, at most `probeMs` later: the end of a burst must not
   * stay unconfirmed until the next write. One sweep timer serves every connection (none per connection), and runs
   * only while some connection waits for one.
   */
  trail(connection: Flushable): void {
    this.trailing.add(connection);
    if (this.trailTimer === null) {
      this.trailTimer = setInterval(this.sweep, this.probeMs);
      this.trailTimer.unref();
    }
  }

  private readonly sweep = (): void => {
    const batch = this.trailing;
    this.trailing = new Set();
    if (batch.size === 0 && this.trailTimer !== null) {
      clearInterval(this.trailTimer);
      this.trailTimer = null;
      return;
    }
    for (const connection of batch) connection.probeTrailing();
  };

  stop(): void {
    if (this.trailTimer !== null) clearInterval(this.trailTimer);
    this.trailTimer = null;
    this.trailing.clear();
  }

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
