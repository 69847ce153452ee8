/**
 * Row shapes as both engines return them (snake_case columns; PostgreSQL's int8 parsed to number by its pool), and
 * their mapping to the store and protocol types. The engines differ only in how a flag column comes back: PostgreSQL
 * gives a boolean, SQLite 0 or 1.
 */
import type { Ban, Conversation, ConversationKind, Invite, Member, StoredMessage as Message, MyConversation, Role, Visibility } from '../protocol/types.js';
import type { UserOrigin, UserRecord } from './store.js';

/** A boolean column: `boolean` from PostgreSQL, 0 or 1 from SQLite. */
export type Flag = boolean | 0 | 1;

const isSet = (flag: Flag): boolean => flag === true || flag === 1;

export interface UserRow {
  id: string;
  name: string;
  password_hash: string | null;
  is_admin: Flag;
  banned: Flag;
  created_at: number;
  last_seen: number | null;
  origin: UserOrigin;
  metadata: string | null;
  token_generation: number;
}

export interface ConversationRow {
  id: string;
  kind: ConversationKind;
  name: string | null;
  visibility: Visibility;
  created_by: string;
  created_at: number;
  last_seq: number;
  last_message_at: number | null;
  member_count: number;
  rev: number;
}

export interface MyConversationRow extends ConversationRow {
  role: Role;
  read_seq: number;
  unread: number;
  peer_id: string | null;
  peer_name: string | null;
}

export interface MemberRow {
  user_id: string;
  name: string;
  role: Role;
  joined_at: number;
  read_seq: number;
}

export interface InviteRow {
  token: string;
  conversation_id: string;
  created_by: string;
  created_at: number;
  expires_at: number | null;
  max_uses: number | null;
  uses: number;
  revoked: Flag;
}

export interface MessageRow {
  conversation_id: string;
  seq: number;
  id: string;
  sender_id: string;
  client_key: string;
  text: string;
  meta: string | null;
  created_at: number;
  edited_at: number | null;
  deleted: Flag;
}

export interface BanRow {
  user_id: string;
  name: string | null;
  banned_by: string;
  banned_at: number;
}

export function toUser(row: UserRow): UserRecord {
  return {
    id: row.id,
    name: row.name,
    passwordHash: row.password_hash,
    isAdmin: isSet(row.is_admin),
    banned: isSet(row.banned),
    createdAt: row.created_at,
    lastSeen: row.last_seen,
    origin: row.origin,
    metadata: row.metadata === null ? null : JSON.parse(row.metadata),
    tokenGeneration: row.token_generation,
  };
}

export function toConversation(row: ConversationRow): Conversation {
  return {
    id: row.id,
    kind: row.kind,
    name: row.name,
    visibility: row.visibility,
    createdAt: row.created_at,
    createdBy: row.created_by,
    lastSeq: row.last_seq,
    memberCount: row.member_count,
    rev: row.rev,
  };
}

export function toMyConversation(row: MyConversationRow): MyConversation {
  return {
    ...toConversation(row),
    role: row.role,
    readSeq: row.read_seq,
    unread: row.unread,
    peer: row.peer_id === null || row.peer_name === null ? null : { id: row.peer_id, name: row.peer_name },
    lastMessageAt: row.last_message_at,
  };
}

export function toMember(row: MemberRow): Member {
  return { userId: row.user_id, name: row.name, role: row.role, joinedAt: row.joined_at, readSeq: row.read_seq };
}

/** A conversation row joined with one member's row (the member's name as `member_name`: `name` is the conversation's). */
export type MembershipRow = ConversationRow & Omit<MemberRow, 'name'> & { member_name: MemberRow['name'] };

export function toMembership(row: MembershipRow): { conversation: Conversation; member: Member } {
  return { conversation: toConversation(row), member: toMember({ ...row, name: row.member_name }) };
}

export function toInvite(row: InviteRow): Invite {
  return {
    token: row.token,
    conversationId: row.conversation_id,
    createdBy: row.created_by,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    maxUses: row.max_uses,
    uses: row.uses,
    revoked: isSet(row.revoked),
  };
}

export function toMessage(row: MessageRow): Message {
  return {
    id: row.id,
    conversationId: row.conversation_id,
    seq: row.seq,
    senderId: row.sender_id,
    text: row.text,
    meta: row.meta === null ? null : JSON.parse(row.meta),
    key: row.client_key,
    createdAt: row.created_at,
    editedAt: row.edited_at,
    deleted: isSet(row.deleted),
  };
}

export function toBan(row: BanRow): Ban {
  // A ban may outlive its user row in principle; the id then stands in for the name.
  return { userId: row.user_id, name: row.name ?? row.user_id, bannedBy: row.banned_by, bannedAt: row.banned_at };
}

/** Meta is stored as JSON text; null stays SQL NULL so "no meta" is distinguishable from the JSON value null. */
export function metaToText(meta: unknown | null): string | null {
  return meta === null || meta === undefined ? null : JSON.stringify(meta);
}
