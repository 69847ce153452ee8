import type { Conversation, ConversationPosition, Member, Message, PresenceInfo, Role } from './types.js';

/**
 * Events the server pushes: `{"event": <name>, "data": ...}`. Events have no `id`; replies always do.
 */
export interface EventMap {
  /** First frame on every connection. */
  'welcome': {
    version: number;
    connectionId: string;
    user: { id: string; name: string };
    heartbeatIntervalMs: number;
    limits: { maxMessageBytes: number; maxFrameBytes: number };
    /**
     * The user's conversations with their positions, most recently active first, read after this connection's event
     * subscriptions were in place: every message or change past a listed position reaches the connection as an event
     * after `welcome`. Bounded by the reply byte budget (`limits.maxReplyBytes`): see `conversationsMore`.
     */
    conversations: ConversationPosition[];
    /** More conversations exist than are listed: `sync` naming the listed ones returns the others in `unknown`. */
    conversationsMore: boolean;
  };
  /** Sent to every connection of the conversation's members except the one that sent it (its reply says enough). */
  'message.new': Message;
  /** An edit or delete (a delete sets `deleted: true` and clears text and meta); not to the connection that made it. */
  'message.updated': Message;
  /** A read cursor moved; not to the connection that moved it (its `read.mark` reply says so). */
  'read': { conversationId: string; userId: string; seq: number };
  'typing': { conversationId: string; userId: string; typing: boolean; expiresInMs: number };
  /**
   * Presence changes, batched: of members of `conversationId` (a direct conversation or a group of at most
   * `presence.maxGroupSize` members; one event per such conversation you share with them), or, without
   * `conversationId`, of users this connection subscribed to with `presence.subscribe`.
   */
  'presence': { conversationId?: string; users: PresenceInfo[] };
  /** Someone joined (or was added to) a conversation you are in. */
  'member.joined': { conversationId: string; member: Member };
  /** Someone left or was removed; `by` is the kicker for a kick. */
  'member.left': { conversationId: string; userId: string; by: string | null };
  /**
   * Joins and departures of a group above `membership.summaryAbove` members, summed over one window instead of one
   * `member.joined` / `member.left` each: how many joined and left, and the member count after them.
   */
  'member.summary': { conversationId: string; joined: number; left: number; memberCount: number };
  'member.role': { conversationId: string; userId: string; role: Role };
  /** A conversation you are in was created for you, joined, renamed, or otherwise changed. */
  'conversation.updated': Conversation;
  /** You no longer belong to this conversation (left, kicked, banned, or it was deleted). */
  'conversation.removed': { conversationId: string; reason: 'left' | 'kicked' | 'banned' | 'deleted' };
  /**
   * Events meant for this connection may have been lost; the connection stays open and delivery is in place again.
   * Run `sync` with your positions, as after a reconnect. `bus_reset`: the server's link to its event bus broke and
   * is back. `events_lost`: an instance could not publish an event for you (its bus connection was down) and the bus
   * takes publishes again. `join_recovery`: messages of a conversation just joined could not all be sent (see
   * docs/protocol.md).
   */
  'resync': { reason: 'bus_reset' | 'events_lost' | 'join_recovery' };
}

export type EventName = keyof EventMap;
export const eventNames: EventName[] = [
  'welcome', 'message.new', 'message.updated', 'read', 'typing', 'presence', 'member.joined', 'member.left', 'member.summary',
  'member.role', 'conversation.updated', 'conversation.removed', 'resync',
];

export interface EventFrame<E extends EventName = EventName> {
  event: E;
  data: EventMap[E];
}
