/** Shapes of the data the server sends (results and events). Timestamps are milliseconds since the epoch. */

export type ConversationKind = 'direct' | 'group';
export type Visibility = 'public' | 'private';
export type Role = 'owner' | 'admin' | 'member';

export interface UserInfo {
  id: string;
  name: string;
}

export interface Message {
  /** Server-assigned unique id. */
  id: string;
  conversationId: string;
  /** Strictly increasing, gap-free position in the conversation, starting at 1. */
  seq: number;
  senderId: string;
  text: string;
  meta: unknown | null;
  /** The sender's idempotency key. */
  key: string;
  createdAt: number;
  editedAt: number | null;
  /** A deleted message keeps its seq as a tombstone: text is '' and meta is null. */
  deleted: boolean;
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

export interface Member {
  userId: string;
  name: string;
  role: Role;
  joinedAt: number;
  readSeq: number;
}

/** One change of a conversation since a rev, as `sync` returns it (see docs/protocol.md, "Catching up"). */
export type Change =
  /** A message edited or deleted (a tombstone) at `rev`: the whole current message. */
  | { rev: number; kind: 'message'; message: Message }
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
