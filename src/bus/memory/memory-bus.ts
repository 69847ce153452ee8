import type { Bus } from '../bus.js';
import { ParleyError } from '../../protocol/errors.js';

/**
 * The in-process bus engine: one process, no network. Several `MemoryBus` instances that share one
 * `MemoryBusHub` stand for several server instances on one engine (the contract suite uses two).
 *
 * Delivery and ordering. `publish` does its fan-out synchronously: it appends `(topic, payload)` to the inbox of
 * every bus instance that is subscribed to `topic` at that moment, then returns. Each instance drains its own inbox
 * in a microtask (`queueMicrotask`), calling its handler once per entry, in inbox order. So:
 * - The order in which payloads enter every inbox is the order of the `publish` calls: per topic per publisher
 *   (in fact globally, in one process) every subscriber sees publish order.
 * - A handler is never called re-entrantly. If a handler publishes (or the publisher is itself a subscriber), the
 *   new payload is appended behind everything already queued, and the running drain loop reaches it after the
 *   entries before it. Calling handlers synchronously from `publish` would break this: a handler that publishes
 *   `m2` while handling `m1` would hand `m2` to the instances after it in the fan-out loop before `m1`. Queueing
 *   and draining (at most one drain loop per instance, guarded by `draining`) makes that impossible.
 * - Interest is checked twice: at publish (who gets the entry) and at delivery (an instance that unsubscribed in
 *   between does not get it), so `unsubscribe` stops delivery at once.
 * - No per-subscriber copies: every inbox holds the same payload Buffer, handed to the handler as is.
 * - A handler that throws does not stop delivery of the rest; the error goes to `onHandlerError` (default:
 *   `console.error`), never back into the publisher.
 * - Nothing is ever lost inside one process, so `onReset` listeners never run.
 */
export class MemoryBusHub {
  /**
   * topic → its one subscribed instance, or a Set when several are. One instance per topic is the common case (one
   * process, or a topic of one user), and a Set for each of 10,000 user topics would cost ~150 B apiece.
   */
  private readonly topics = new Map<string, MemoryBus | Set<MemoryBus>>();

  /** @internal */
  add(topic: string, bus: MemoryBus): void {
    const subscribers = this.topics.get(topic);
    if (subscribers === undefined) this.topics.set(topic, bus);
    else if (subscribers instanceof Set) subscribers.add(bus);
    else if (subscribers !== bus) this.topics.set(topic, new Set([subscribers, bus]));
  }

  /** @internal */
  remove(topic: string, bus: MemoryBus): void {
    const subscribers = this.topics.get(topic);
    if (subscribers === bus) this.topics.delete(topic);
    else if (subscribers instanceof Set && subscribers.delete(bus) && subscribers.size === 1) {
      this.topics.set(topic, subscribers.values().next().value!);
    }
  }

  /** @internal Synchronous fan-out into the subscribed instances' inboxes. */
  fanOut(topic: string, payload: Buffer): void {
    const subscribers = this.topics.get(topic);
    if (subscribers === undefined) return;
    if (subscribers instanceof Set) for (const bus of subscribers) bus.enqueue(topic, payload);
    else subscribers.enqueue(topic, payload);
  }

  /** Number of topics with at least one subscribed instance (for tests and metrics). */
  get topicCount(): number {
    return this.topics.size;
  }
}

export interface MemoryBusOptions {
  /** Shared hub: instances on one hub see each other's payloads. Default: a private hub. */
  hub?: MemoryBusHub;
  /** Where a throwing handler's error goes. Default: `console.error`. */
  onHandlerError?: (error: unknown, topic: string) => void;
}

export const createMemoryBusHub = (): MemoryBusHub => new MemoryBusHub();

export class MemoryBus implements Bus {
  private readonly hub: MemoryBusHub;
  private readonly onHandlerError: (error: unknown, topic: string) => void;
  private readonly subscribed = new Set<string>();
  /** Inbox as two parallel arrays with a read index (cheaper than an array of tuples and `shift()`). */
  private inboxTopics: string[] = [];
  private inboxPayloads: Buffer[] = [];
  private head = 0;
  private draining = false;
  private scheduled = false;
  private handler: ((topic: string, payload: Buffer) => void) | null = null;
  private readonly resetListeners: Array<() => void> = [];
  private closed = false;

  constructor(options: MemoryBusOptions = {}) {
    this.hub = options.hub ?? new MemoryBusHub();
    this.onHandlerError =
      options.onHandlerError ?? ((error, topic) => console.error(`memory bus: handler failed for topic ${topic}`, error));
  }

  async publish(topic: string, payload: Buffer): Promise<void> {
    if (this.closed) throw new ParleyError('UNAVAILABLE', 'memory bus: publish after close');
    this.hub.fanOut(topic, payload);
  }

  async subscribe(topic: string): Promise<void> {
    if (this.closed) throw new ParleyError('UNAVAILABLE', 'memory bus: subscribe after close');
    if (this.subscribed.has(topic)) return;
    this.subscribed.add(topic);
    this.hub.add(topic, this);
  }

  async unsubscribe(topic: string): Promise<void> {
    if (!this.subscribed.delete(topic)) return;
    this.hub.remove(topic, this);
  }

  onMessage(handler: (topic: string, payload: Buffer) => void): void {
    if (this.handler) throw new Error('memory bus: onMessage handler already set');
    this.handler = handler;
  }

  onReset(listener: () => void): void {
    // An in-process engine never loses payloads; kept so the interface is honoured.
    this.resetListeners.push(listener);
  }

  async ping(): Promise<void> {
    if (this.closed) throw new ParleyError('UNAVAILABLE', 'memory bus: closed');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const topic of this.subscribed) this.hub.remove(topic, this);
    this.subscribed.clear();
    this.inboxTopics = [];
    this.inboxPayloads = [];
    this.head = 0;
  }

  /** @internal Called by the hub during a publish. */
  enqueue(topic: string, payload: Buffer): void {
    this.inboxTopics.push(topic);
    this.inboxPayloads.push(payload);
    // While a drain loop runs it picks the new entry up itself; otherwise schedule one.
    if (!this.draining && !this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.drain);
    }
  }

  private readonly drain = (): void => {
    this.scheduled = false;
    if (this.draining) return;
    this.draining = true;
    try {
      // Bounded by the inbox length, which only grows through publishes made by handlers during this loop.
      while (this.head < this.inboxTopics.length) {
        const i = this.head++;
        const topic = this.inboxTopics[i]!;
        const payload = this.inboxPayloads[i]!;
        if (!this.handler || !this.subscribed.has(topic)) continue; // no receiver, or unsubscribed since publish
        try {
          this.handler(topic, payload);
        } catch (error) {
          this.onHandlerError(error, topic);
        }
      }
      this.inboxTopics = [];
      this.inboxPayloads = [];
      this.head = 0;
    } finally {
      this.draining = false;
    }
  };
}

export function createMemoryBus(options: MemoryBusOptions = {}): Bus {
  return new MemoryBus(options);
}
