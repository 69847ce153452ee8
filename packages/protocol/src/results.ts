import type { Ban, Change, Conversation, Invite, Member, Message, MyConversation, PresenceInfo, UserInfo } from './types.js';

export interface Page {
  messages: Message[];
  /** Whether more messages lie beyond this page in the direction of paging. */
  more: boolean;
}

/**
 * The reply to `message.send`: the sending connection holds the text, so it gets only what the server assigned. The
 * message as others see it is `{id, conversationId, seq, senderId: you, text, meta, createdAt}`.
 */
export interface SendReceipt {
  conversationId: string;
  seq: number;
  id: string;
  createdAt: number;
  /** The key was seen before: nothing new was stored, and `message` holds the original. */
  duplicate: boolean;
  /**
   * Only with `duplicate`: the original message as it is now (it may carry another text than this retry, or have been
   * edited or deleted since).
   */
  message?: Message;
}

/** What each request returns in `result`. */
export interface ResultMap {
  'ping': Record<string, never>;
  /** Most recently active first; `more`: another page follows, pass `next` as `after` (null when none). */
  'conversation.list': { conversations: MyConversation[]; more: boolean; next: string | null };
  'conversation.get': { conversation: MyConversation };
  'conversation.create': { conversation: MyConversation };
  'direct.open': { conversation: MyConversation };
  /** `more`: other groups match than these (the page was full, or ended at the byte budget); narrow the query. */
  'conversation.search': { conversations: Conversation[]; more: boolean };
  'conversation.join': { conversation: MyConversation };
  'conversation.leave': Record<string, never>;
  'conversation.rename': { conversation: Conversation };
  'conversation.delete': Record<string, never>;
  /** `more`: another page follows; pass `next` as `after` to get it (null when none). */
  'member.list': { members: Member[]; more: boolean; next: string | null };
  'member.kick': Record<string, never>;
  'member.role': { member: Member };
  'member.ban': Record<string, never>;
  'member.unban': Record<string, never>;
  /** A page: `more` and `next` as in member.list. */
  'member.bans': { bans: Ban[]; more: boolean; next: string | null };
  'user.find': { user: UserInfo };
  'invite.create': { invite: Invite };
  'invite.list': { invites: Invite[]; more: boolean; next: string | null };
  'invite.revoke': { invite: Invite };
  'invite.accept': { conversation: MyConversation };
  'message.send': SendReceipt;
  'message.edit': { message: Message };
  'message.delete': { message: Message };
  'history.after': Page;
  'history.before': Page;
  'sync': {
    conversations: Array<{
      conversationId: string;
      lastSeq: number;
      /** The first page of messages after the request's `afterSeq` (bounded in count and bytes); absent when none. */
      messages?: Message[];
      /** Present (true) when more messages follow than `messages` holds (page them with `history.after`). */
      more?: boolean;
      /**
       * The rev the client should store: with `changesMore` false, the conversation's current rev; otherwise the rev of
       * the last change returned (sync again from it).
       */
      rev: number;
      /** Present when the request's `rev` was behind: the conversation as it is now. */
      conversation?: MyConversation;
      /** Present when the request gave `rev`: changes after it, ascending by rev (messages only those with seq <= afterSeq). */
      changes?: Change[];
      /** More changes follow: `sync` again with `rev` set to the returned one. */
      changesMore?: boolean;
    }>;
    /** Conversations you belong to that the request did not name (bounded in bytes; see `unknownMore`). */
    unknown: MyConversation[];
    /** More unnamed conversations exist than fit: `sync` again naming the ones received. */
    unknownMore: boolean;
    /** Conversations named in the request that you no longer belong to. */
    removed: string[];
  };
  'read.mark': { conversationId: string; readSeq: number; unread: number };
  'typing': Record<string, never>;
  'presence.get': { users: PresenceInfo[] };
  /** The current presence of the users now subscribed (those who share a conversation with you; others left out). */
  'presence.subscribe': { users: PresenceInfo[]; subscribed: number };
  'presence.unsubscribe': { subscribed: number };
}

export interface ReplyOk<R = unknown> {
  id: string | number;
  result: R;
}
export interface ReplyError {
  id: string | number | null;
  error: import('./errors.js').ErrorBody;
}
