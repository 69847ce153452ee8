import { conversationTopic, presenceTopic, userTopic, type Bus } from '../bus/bus.js';
import { encodeControl, encodeFrame } from '../bus/envelope.js';
import { encodeEvent, type EventMap, type EventName } from '../protocol/events.js';

/**
 * How the domain announces what happened. Each event is serialised once, here; the bus carries the bytes.
 * Publishing is best effort (the bus is at-most-once): the durable record is the store, and clients recover
 * anything missed with `sync`. A publish failure is therefore logged by the caller, never turned into a failed
 * request after the change was stored.
 */
export class Publisher {
  constructor(private readonly bus: Bus) {}

  /** To every member's connections, except those of `exceptUser`, or except the one connection `exceptConnection`. */
  toConversation<E extends EventName>(
    conversationId: string, event: E, data: EventMap[E], exceptUser: string | null = null, exceptConnection: string | null = null,
  ): Promise<void> {
    return this.bus.publish(conversationTopic(conversationId), encodeFrame(encodeEvent(event, data), exceptUser, exceptConnection));
  }

  /** To the user's connections, except the one connection `exceptConnection` (the one that caused it, if any). */
  toUser<E extends EventName>(userId: string, event: E, data: EventMap[E], exceptConnection: string | null = null): Promise<void> {
    return this.bus.publish(userTopic(userId), encodeFrame(encodeEvent(event, data), null, exceptConnection));
  }

  /** To the connections subscribed to the user's presence (presence.subscribe), wherever they are. */
  toPresenceWatchers<E extends EventName>(userId: string, event: E, data: EventMap[E]): Promise<void> {
    return this.bus.publish(presenceTopic(userId), encodeFrame(encodeEvent(event, data)));
  }

  /** `ban`: close the user's connections (4502); `revoke`: close them all (4500); `revoke:<sessionId>`: those of one session. */
  controlUser(userId: string, command: 'ban' | 'revoke' | `revoke:${string}`): Promise<void> {
    return this.bus.publish(userTopic(userId), encodeControl(command));
  }
}
