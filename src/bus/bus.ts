/**
 * The bus seam: carries events between the instances that have interested connections.
 *
 * Topics are opaque strings; Parley uses `c.<conversationId>` for a conversation's events, `u.<userId>` for a
 * user's own events (membership changes that reach all of that user's devices), `p.<userId>` for a user's presence
 * watchers, `a.` for controls to every instance and `x.` (subscribed by none) to probe whether publishes work.
 * Payloads are bytes (a Buffer: the serialised event frame, src/bus/envelope.ts): engines carry them as they are, never decoding or parsing them, so an
 * event from another instance is framed for the local sockets without a UTF-8 decode and re-encode.
 *
 * Guarantees every engine gives (test/engines/bus.contract.ts, which also runs two instances on one engine and, for
 * engines that can fail, an engine restart):
 * - At most once: a payload reaches each subscribed instance once or not at all (an outage may drop it). Nothing
 *   is lost from the durable record; clients recover from a gap with `sync`, driven by seq.
 * - Ordered per topic per publisher: two payloads one instance publishes on one topic arrive in publish order.
 * - Interest-based: an instance receives the payloads of the topics it subscribed to, not every topic.
 * - Subscribe and unsubscribe apply in call order: for each topic the engine ends in the state of the last call (an
 *   engine may batch the calls of one turn into one command). `unsubscribe` stops delivery to the handler at once.
 * - Topic names are opaque to the engine: any id of the id alphabet (src/protocol/ids.ts) after the prefix is carried
 *   as is.
 * - `publish` resolves once the engine accepted the payload; subscribers of the same instance are included. It never
 *   waits for an engine that cannot be reached: it rejects promptly (within the engine's command timeout, at once when
 *   known to be disconnected) with ParleyError UNAVAILABLE, which is temporary: retry later. No engine buffers
 *   payloads without bound while disconnected.
 * - `subscribe` rejects with UNAVAILABLE while the engine cannot be reached; the engine keeps the interest, restores
 *   it when it is back, and then runs `onReset`: a failed subscribe never leaves a topic silently missing.
 * - `onReset` listeners run whenever payloads may have been lost (an engine connection dropped): after the engine
 *   has restored every subscription, so the gateway then tells its clients to resynchronise and delivery works again.
 * - `ping` rejects while the instance is not receiving what it subscribed to (engine down, subscriptions lost or
 *   being restored): /readyz must not be green on an instance that delivers nothing.
 */
export interface Bus {
  /** Hand `payload` to the instances subscribed to `topic`. Rejects with ParleyError UNAVAILABLE (see above). */
  publish(topic: string, payload: Buffer): Promise<void>;
  /** Subscribe this instance to a topic. Idempotent; resolves once payloads published afterwards will arrive. */
  subscribe(topic: string): Promise<void>;
  unsubscribe(topic: string): Promise<void>;
  /** The one receiver of this instance's payloads; set once by the gateway. */
  onMessage(handler: (topic: string, payload: Buffer) => void): void;
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
/** Every instance subscribes to it: controls for the whole cluster (a `resync` of every connection). */
export const clusterTopic = 'a.';
/** Nobody subscribes to it: a publish there only asks whether the bus takes publishes now (src/domain/publisher.ts). */
export const probeTopic = 'x.';
