/** Shapes of the data the server sends (results and events). Timestamps are milliseconds since the epoch. */

export type ConversationKind = 'direct' | 'group';
export type Visibility = 'public' | 'private';
export type Role = 'owner' | 'admin' | 'member';

export interface UserInfo {
  id: string;
  name: string;
}

/**
 * A message as the server sends it (events, replies, history, sync). Fields at their default are left out, so a
 * message costs only what it says: `meta` only when set, `editedAt` only once edited, `deleted` only on a tombstone.
 */
export interface Message {
  /** Server-assigned unique id. */
  id: string;
  conversationId: string;
  /** Strictly increasing, gap-free position in the conversation, starting at 1. */
  seq: number;
  senderId: string;
  /** '' once deleted. */
  text: string;
  /** The JSON metadata given at send; absent when none. */
  meta?: unknown;
  /**
   * The sender's idempotency key: only in what the sender's own requests return (history, sync), so that a client can
   * match its own unacknowledged sends after a reconnect. Never sent to other users, and never in live events.
   */
  key?: string;
  createdAt: number;
  /** When the message was last edited or deleted; absent while it never was. */
  editedAt?: number;
  /** Present (true) on a deleted message, which keeps its seq as a tombstone: text is '' and meta is absent. */
  deleted?: boolean;
}

export interface Conversation {
  id: string;
  kind: ConversationKind;
  /** Group name; for a direct conversation, null (clients show the other member's name). */
  name: string | null;
  visibility: Visibility;
  createdAt: number;
  createdBy: string;
  /** The seq of the newest message (0 when empty). */
  lastSeq: number;
  memberCount: number;
  /**
   * The conversation's change counter: bumped by every edit, delete, read.mark that moves a cursor, join, leave, kick,
   * role change and rename (not by new messages, which `lastSeq` counts). `sync` takes it to return what changed since.
   */
  rev: number;
}

/** A conversation as one member sees it. */
export interface MyConversation extends Conversation {
  role: Role;
  /** Highest seq this member has marked read. */
  readSeq: number;
  /** Messages from others with seq above readSeq. */
  unread: number;
  /** For a direct conversation, the other member. */
  peer: UserInfo | null;
  lastMessageAt: number | null;
}

/**
 * Where one of the user's conversations stands, as `welcome` lists it: enough to start `sync` (or to skip it) without
 * asking first.
 */
export interface ConversationPosition {
  id: string;
  /** The seq of the newest message (0 when empty). */
  lastSeq: number;
  /** The conversation's change counter (see Conversation.rev). */
  rev: number;
  /** Highest seq this user has marked read. */
  readSeq: number;
}

export interface Member {
  userId: string;
  name: string;
  role: Role;
  joinedAt: number;
  readSeq: number;
}

/**
 * One change of a conversation since a rev, as `sync` returns it (see docs/protocol.md, "Catching up"). `M` is the
 * message's form: the wire's Message here; the server's store reads the same changes in its own form.
 */
export type Change<M = Message> =
  /** A message edited or deleted (a tombstone) at `rev`: the whole current message. */
  | { rev: number; kind: 'message'; message: M }
  /** A member who joined, got a new role or moved their read cursor at `rev`: the whole current member. */
  | { rev: number; kind: 'member'; member: Member }
  /** A user who left or was removed at `rev`. */
  | { rev: number; kind: 'left'; userId: string };

export interface Invite {
  token: string;
  conversationId: string;
  createdBy: string;
  createdAt: number;
  expiresAt: number | null;
  maxUses: number | null;
  uses: number;
  revoked: boolean;
}

/** A ban from a group: the user cannot join, accept an invite or be added until unbanned. */
export interface Ban {
  userId: string;
  /** The banned user's name. */
  name: string;
  /** Who banned them. */
  bannedBy: string;
  bannedAt: number;
}

export interface PresenceInfo {
  userId: string;
  online: boolean;
  /** When the user was last connected (null if never). */
  lastSeen: number | null;
}
