/**
 * The bus seam: carries events between the instances that have interested connections.
 *
 * Topics are opaque strings; Parley uses `c.<conversationId>` for a conversation's events and `u.<userId>` for a
 * user's own events (membership changes that reach all of that user's devices). Payloads are the serialised event
 * frame: engines carry bytes and never parse them.
 *
 * Guarantees every engine gives (test/engines/bus.contract.ts):
 * - At most once: a payload reaches each subscribed instance once or not at all (an outage may drop it). Nothing
 *   is lost from the durable record; clients recover from a gap with `sync`, driven by seq.
 * - Ordered per topic per publisher: two payloads one instance publishes on one topic arrive in publish order.
 * - Interest-based: an instance receives the payloads of the topics it subscribed to, not every topic.
 * - `publish` resolves once the engine accepted the payload; subscribers of the same instance are included.
 * - `onReset` listeners run when the engine lost messages (reconnected after an outage), so the gateway can tell its
 *   clients to resynchronise.
 */
export interface Bus {
  publish(topic: string, payload: string): Promise<void>;
  /** Subscribe this instance to a topic. Idempotent; resolves once payloads published afterwards will arrive. */
  subscribe(topic: string): Promise<void>;
  unsubscribe(topic: string): Promise<void>;
  /** The one receiver of this instance's payloads; set once by the gateway. */
  onMessage(handler: (topic: string, payload: string) => void): void;
  onReset(listener: () => void): void;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Topic names: a fixed two-character prefix and the id, unescaped. The id is everything after the prefix (the gateway
 * reads it with `slice(2)`), so a topic is unambiguous for any id, whatever characters it holds.
 */
export const conversationTopic = (conversationId: string): string => `c.${conversationId}`;
export const userTopic = (userId: string): string => `u.${userId}`;
/** A user's presence changes, for the connections that subscribed to them (`presence.subscribe`). */
export const presenceTopic = (userId: string): string => `p.${userId}`;
