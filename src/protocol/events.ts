import type { EventMap, EventName } from '@parley/protocol';

/** The event types are shared with clients (the @parley/protocol package); the server adds their serialisation. */
export { eventNames, type EventFrame, type EventMap, type EventName } from '@parley/protocol';

/** Serialise an event once; the bytes go unchanged to every recipient. */
export function encodeEvent<E extends EventName>(event: E, data: EventMap[E]): string {
  return JSON.stringify({ event, data });
}
