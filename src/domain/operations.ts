import type { RequestData, RequestType } from '../protocol/requests.js';
import type { ResultMap } from '../protocol/results.js';
import type { Chat } from './chat.js';
import type { PresenceService } from './presence-service.js';
import type { TypingService } from './typing.js';

export interface Services {
  chat: Chat;
  typing: TypingService;
  presence: PresenceService;
}

type Operation<T extends RequestType> = (services: Services, userId: string, data: RequestData<T>) => Promise<ResultMap[T]>;

/**
 * Every request type, mapped once to the domain call that serves it. The WebSocket gateway and the REST API both
 * dispatch through this table, after validating `data` with the protocol's schema and authenticating `userId`.
 */
export const operations: { [T in RequestType]: Operation<T> } = {
  'ping': async () => ({}),
  'conversation.list': (s, u, d) => s.chat.listConversations(u, d),
  'conversation.get': (s, u, d) => s.chat.getConversation(u, d),
  'conversation.create': (s, u, d) => s.chat.createGroup(u, d),
  'direct.open': (s, u, d) => s.chat.openDirect(u, d),
  'conversation.search': (s, u, d) => s.chat.searchPublic(u, d),
  'conversation.join': (s, u, d) => s.chat.join(u, d),
  'conversation.leave': (s, u, d) => s.chat.leave(u, d),
  'conversation.rename': (s, u, d) => s.chat.rename(u, d),
  'conversation.delete': (s, u, d) => s.chat.remove(u, d),
  'member.list': (s, u, d) => s.chat.listMembers(u, d),
  'member.kick': (s, u, d) => s.chat.kick(u, d),
  'member.role': (s, u, d) => s.chat.setRole(u, d),
  'invite.create': (s, u, d) => s.chat.createInvite(u, d),
  'invite.list': (s, u, d) => s.chat.listInvites(u, d),
  'invite.revoke': (s, u, d) => s.chat.revokeInvite(u, d),
  'invite.accept': (s, u, d) => s.chat.acceptInvite(u, d),
  'message.send': async (s, u, d) => {
    const result = await s.chat.send(u, d);
    s.typing.clearOnSend(u, result.message.conversationId);
    return result;
  },
  'message.edit': (s, u, d) => s.chat.edit(u, d),
  'message.delete': (s, u, d) => s.chat.delete(u, d),
  'history.after': (s, u, d) => s.chat.historyAfter(u, d),
  'history.before': (s, u, d) => s.chat.historyBefore(u, d),
  'sync': (s, u, d) => s.chat.sync(u, d),
  'read.mark': (s, u, d) => s.chat.markRead(u, d),
  'typing': (s, u, d) => s.typing.typing(u, d.conversationId, d.typing),
  'presence.get': async (s, u, d) => ({ users: await s.presence.get(u, d.userIds) }),
};

/** Request types that spend the per-user message budget (they write messages). */
export const messageWrites: ReadonlySet<RequestType> = new Set<RequestType>(['message.send', 'message.edit', 'message.delete']);
