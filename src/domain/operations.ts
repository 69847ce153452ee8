import type { RequestData, RequestType } from '../protocol/requests.js';
import type { ResultMap } from '@parley/protocol';
import type { Chat } from './chat.js';
import type { PresenceService } from './presence-service.js';
import type { TypingService } from './typing.js';

export interface Services {
  chat: Chat;
  typing: TypingService;
  presence: PresenceService;
}

/**
 * What a request may change on the WebSocket connection it came on: its presence subscriptions (`presence.subscribe`).
 * Absent for a REST request, which has no connection.
 */
export interface ConnectionScope {
  /** The user ids this connection is subscribed to. */
  readonly presenceWatches: ReadonlySet<string>;
  /** Add subscriptions; resolves once changes published afterwards reach the connection. */
  watchPresence(userIds: readonly string[]): Promise<void>;
  unwatchPresence(userIds: readonly string[]): void;
}

/**
 * `connectionId`: the WebSocket connection the request came on (null over REST), left out of the events it causes;
 * `scope`: what the request may change on that connection.
 */
type Operation<T extends RequestType> = (
  services: Services, userId: string, data: RequestData<T>, connectionId: string | null, scope?: ConnectionScope,
) => Promise<ResultMap[T]>;

/**
 * A write: refused with BANNED to a banned user before it runs. Enforced here, for both transports, rather than only
 * by closing the user's connections (see Chat.requireNotBanned). `message.send` is checked by the store, inside the
 * append transaction.
 */
const write = <T extends RequestType>(operation: Operation<T>): Operation<T> => async (s, u, d, c, scope) => {
  await s.chat.requireNotBanned(u);
  return operation(s, u, d, c, scope);
};

/**
 * Every request type, mapped once to the domain call that serves it. The WebSocket gateway and the REST API both
 * dispatch through this table, after validating `data` with the protocol's schema and authenticating `userId`.
 */
export const operations: { [T in RequestType]: Operation<T> } = {
  'ping': async () => ({}),
  'conversation.list': (s, u, d) => s.chat.listConversations(u, d),
  'conversation.get': (s, u, d) => s.chat.getConversation(u, d),
  'conversation.create': write((s, u, d) => s.chat.createGroup(u, d)),
  'direct.open': write((s, u, d) => s.chat.openDirect(u, d)),
  'conversation.search': (s, u, d) => s.chat.searchPublic(u, d),
  'conversation.join': write((s, u, d) => s.chat.join(u, d)),
  'conversation.leave': write((s, u, d) => s.chat.leave(u, d)),
  'conversation.rename': write((s, u, d) => s.chat.rename(u, d)),
  'conversation.delete': write((s, u, d) => s.chat.remove(u, d)),
  'member.list': (s, u, d) => s.chat.listMembers(u, d),
  'member.kick': write((s, u, d) => s.chat.kick(u, d)),
  'member.role': write((s, u, d) => s.chat.setRole(u, d)),
  'member.ban': write((s, u, d) => s.chat.ban(u, d)),
  'member.unban': write((s, u, d) => s.chat.unban(u, d)),
  'member.bans': (s, u, d) => s.chat.listBans(u, d),
  'user.find': (s, u, d) => s.chat.findUser(u, d),
  'invite.create': write((s, u, d) => s.chat.createInvite(u, d)),
  'invite.list': (s, u, d) => s.chat.listInvites(u, d),
  'invite.revoke': write((s, u, d) => s.chat.revokeInvite(u, d)),
  'invite.accept': write((s, u, d) => s.chat.acceptInvite(u, d)),
  'message.send': async (s, u, d, c) => {
    const result = await s.chat.send(u, d, c);
    s.typing.clearOnSend(u, result.conversationId);
    return result;
  },
  'message.edit': write((s, u, d, c) => s.chat.edit(u, d, c)),
  'message.delete': write((s, u, d, c) => s.chat.delete(u, d, c)),
  'history.after': (s, u, d) => s.chat.historyAfter(u, d),
  'history.before': (s, u, d) => s.chat.historyBefore(u, d),
  'sync': (s, u, d) => s.chat.sync(u, d),
  'read.mark': write((s, u, d, c) => s.chat.markRead(u, d, c)),
  'typing': write((s, u, d) => s.typing.typing(u, d.conversationId, d.typing)),
  'presence.get': async (s, u, d) => ({ users: await s.presence.get(u, d.userIds) }),
  'presence.subscribe': (s, u, d, _c, scope) => s.presence.subscribe(u, d.userIds, scope),
  'presence.unsubscribe': async (s, u, d, _c, scope) => s.presence.unsubscribe(d.userIds, scope),
};

/**
 * Per-user budgets that some requests spend, counted across all of a user's connections and the REST API (limiter
 * key `<budget>:<userId>`), so reconnecting or switching API does not refill them: `message` for writes of messages,
 * `search` for group searches (a search costs far more than a send), `lookup` for finding users by username (so that
 * names cannot be guessed from a dictionary at the rate of every connection a user may open).
 */
export type UserBudget = 'message' | 'search' | 'lookup';

export const userBudgets: Readonly<Partial<Record<RequestType, UserBudget>>> = {
  'message.send': 'message', 'message.edit': 'message', 'message.delete': 'message', 'conversation.search': 'search', 'user.find': 'lookup',
};

/** The message of the RATE_LIMITED error a request gets when its user's budget is spent. */
export const budgetSpent: Readonly<Record<UserBudget, string>> = {
  message: 'too many messages; slow down',
  search: 'too many searches; slow down',
  lookup: 'too many user lookups; slow down',
};
