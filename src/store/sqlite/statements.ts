/**
 * Every SQL statement the store runs, prepared once per connection (preparing is far costlier than running).
 * Prepare only after migrate(): preparing checks that the tables exist.
 */
import type Database from 'better-sqlite3';
import type { BanRow, ConversationRow, DepartureRow, InviteRow, MemberRow, MembershipRow, MessageRow, MyConversationRow, UserRow } from './rows.js';

const conversationColumns =
  'c.id, c.kind, c.name, c.visibility, c.created_by, c.created_at, c.last_seq, c.last_message_at, c.member_count, c.rev';

// Unread is derived, not counted: every seq above read_seq is a message (seqs are gap-free, messages are never removed
// one by one) and none of them is one's own (sending moves the sender's cursor to the message sent).
const myConversationSelect = `
  SELECT ${conversationColumns}, m.role, m.read_seq,
    c.last_seq - m.read_seq AS unread,
    p.id AS peer_id, p.name AS peer_name
  FROM members m
  JOIN conversations c ON c.id = m.conversation_id
  LEFT JOIN users p ON c.kind = 'direct' AND p.id = (
    SELECT o.user_id FROM members o WHERE o.conversation_id = c.id AND o.user_id <> m.user_id LIMIT 1
  )`;

const memberSelect = 'SELECT m.user_id, u.name, m.role, m.joined_at, m.read_seq FROM members m JOIN users u ON u.id = m.user_id';

const messageColumns = 'conversation_id, seq, id, sender_id, client_key, text, meta, created_at, edited_at, deleted';

type Count = { n: number };

/** The part of a prepared statement the store uses; our own type, so the Statements type can be named in declarations. */
export interface Statement<P extends unknown[], R = unknown> {
  run(...params: P): Database.RunResult;
  get(...params: P): R | undefined;
  all(...params: P): R[];
}

export function prepareStatements(db: Database.Database) {
  const prepare = <P extends unknown[] = [], R = unknown>(sql: string): Statement<P, R> => db.prepare<P, R>(sql);
  return {
    ping: prepare<[], { ok: number }>('SELECT 1 AS ok'),

    // ---- users
    userById: prepare<[string], UserRow>('SELECT * FROM users WHERE id = ?'),
    userByName: prepare<[string], UserRow>('SELECT * FROM users WHERE name = ? AND password_hash IS NOT NULL'),
    insertUser: prepare<[string, string, string | null, number, number, string]>(
      'INSERT INTO users (id, name, password_hash, is_admin, created_at, origin) VALUES (?, ?, ?, ?, ?, ?)'),
    setUserMetadata: prepare<[string | null, string]>('UPDATE users SET metadata = ? WHERE id = ?'),
    bumpTokenGeneration: prepare<[string], { token_generation: number }>(
      'UPDATE users SET token_generation = token_generation + 1 WHERE id = ? RETURNING token_generation'),
    revokeSession: prepare<[string, number]>('INSERT OR IGNORE INTO revoked_sessions (session_id, expires_at) VALUES (?, ?)'),
    forgetExpiredRevocations: prepare<[number]>('DELETE FROM revoked_sessions WHERE expires_at < ?'),
    isSessionRevoked: prepare<[string], { one: number }>('SELECT 1 AS one FROM revoked_sessions WHERE session_id = ?'),
    renameUser: prepare<[string, string]>('UPDATE users SET name = ? WHERE id = ?'),
    listUsers: prepare<[string, number], UserRow>('SELECT * FROM users WHERE id > ? ORDER BY id LIMIT ?'),
    setBanned: prepare<[number, string]>('UPDATE users SET banned = ? WHERE id = ?'),
    setLastSeen: prepare<[number, string]>('UPDATE users SET last_seen = ? WHERE id = ?'),
    // Built-in accounts by normalised name (migration 004); `password_hash IS NOT NULL` lets the partial indexes serve.
    accountByNameKey: prepare<[string], UserRow>('SELECT * FROM users WHERE name_key = ? AND password_hash IS NOT NULL'),
    accountByNameSkeleton: prepare<[string, string], UserRow>('SELECT * FROM users WHERE (name_skeleton = ? OR name_folded_skeleton = ?) AND password_hash IS NOT NULL LIMIT 1'),
    legacyAccountByName: prepare<[string], UserRow>('SELECT * FROM users WHERE name = ? AND name_key IS NULL AND password_hash IS NOT NULL'),
    setNameKeys: prepare<[string, string, string, string]>('UPDATE users SET name_key = ?, name_skeleton = ?, name_folded_skeleton = ? WHERE id = ?'),

    // ---- conversations
    conversationById: prepare<[string], ConversationRow>(`SELECT ${conversationColumns} FROM conversations c WHERE c.id = ?`),
    conversationByDirectKey: prepare<[string], ConversationRow>(
      `SELECT ${conversationColumns} FROM conversations c WHERE c.direct_key = ?`),
    insertConversation: prepare<[{
      id: string; kind: string; name: string | null; visibility: string; createdBy: string; now: number;
      memberCount: number; directKey: string | null;
    }]>(`INSERT INTO conversations (id, kind, name, visibility, created_by, created_at, member_count, direct_key)
         VALUES (@id, @kind, @name, @visibility, @createdBy, @now, @memberCount, @directKey)`),
    myConversation: prepare<[string, string], MyConversationRow>(`${myConversationSelect} WHERE m.user_id = ? AND m.conversation_id = ?`),
    myConversations: prepare<[string], MyConversationRow>(
      `${myConversationSelect} WHERE m.user_id = ? ORDER BY coalesce(c.last_message_at, c.created_at) DESC, c.id`),
    myConversationsPage: prepare<[string, number, number, string, number], MyConversationRow>(
      `${myConversationSelect} WHERE m.user_id = ?
         AND (coalesce(c.last_message_at, c.created_at) < ? OR (coalesce(c.last_message_at, c.created_at) = ? AND c.id > ?))
       ORDER BY coalesce(c.last_message_at, c.created_at) DESC, c.id LIMIT ?`),
    conversationIdsOf: prepare<[string], { conversation_id: string }>(
      'SELECT conversation_id FROM members WHERE user_id = ? ORDER BY conversation_id'),
    positionsOf: prepare<[string], { id: string; last_seq: number; rev: number; read_seq: number }>(
      `SELECT c.id, c.last_seq, c.rev, m.read_seq FROM members m JOIN conversations c ON c.id = m.conversation_id
       WHERE m.user_id = ? ORDER BY coalesce(c.last_message_at, c.created_at) DESC, c.id`),
    countMemberships: prepare<[string], Count>('SELECT count(*) AS n FROM members WHERE user_id = ?'),
    // Group search (migration 003): candidates come from an index, at most SEARCH_CANDIDATES of them, then are ordered.
    publicGroupsByName: prepare<[number], ConversationRow>(
      `SELECT ${conversationColumns} FROM conversations c
       WHERE c.kind = 'group' AND c.visibility = 'public' ORDER BY c.name COLLATE NOCASE, c.id LIMIT ?`),
    // The FTS5 expression (quoted phrases: literal text, no operators; % and _ are not wildcards) narrows the names,
    // instr() keeps those that contain the whole folded query (see SqliteStore.searchPublic).
    searchGroupsContaining: prepare<[string, string, number, number], ConversationRow>(
      `SELECT ${conversationColumns} FROM conversations c WHERE c.id IN (
         SELECT g.conversation_id FROM group_names_fts f JOIN group_names g ON g.rowid = f.rowid
         WHERE group_names_fts MATCH ? AND instr(g.folded, ?) > 0 LIMIT ?)
       ORDER BY c.name COLLATE NOCASE, c.id LIMIT ?`),
    searchGroupsStarting: prepare<[string, string, number, number], ConversationRow>(
      `SELECT ${conversationColumns} FROM conversations c WHERE c.id IN (
         SELECT conversation_id FROM group_names WHERE folded >= ? AND folded < ? ORDER BY folded LIMIT ?)
       ORDER BY c.name COLLATE NOCASE, c.id LIMIT ?`),
    insertGroupName: prepare<[string, string]>('INSERT INTO group_names (conversation_id, folded) VALUES (?, ?)'),
    setGroupName: prepare<[string, string]>('UPDATE group_names SET folded = ? WHERE conversation_id = ?'),
    storeMeta: prepare<[string], { value: string }>('SELECT value FROM store_meta WHERE key = ?'),
    setStoreMeta: prepare<[string, string]>('INSERT INTO store_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
    groupNames: prepare<[], { conversation_id: string; folded: string; name: string }>(
      'SELECT g.conversation_id, g.folded, c.name FROM group_names g JOIN conversations c ON c.id = g.conversation_id'),
    listConversations: prepare<[string, number], ConversationRow>(
      `SELECT ${conversationColumns} FROM conversations c WHERE c.id > ? ORDER BY c.id LIMIT ?`),
    renameConversation: prepare<[string, string]>('UPDATE conversations SET name = ? WHERE id = ?'),
    // The change counter (migrations/002_change_rev.sql): one bump per change, in the change's transaction.
    bumpRev: prepare<[string], { rev: number }>('UPDATE conversations SET rev = rev + 1 WHERE id = ? RETURNING rev'),
    deleteConversation: prepare<[string]>('DELETE FROM conversations WHERE id = ?'),
    addMemberCount: prepare<[number, string]>('UPDATE conversations SET member_count = member_count + ? WHERE id = ?'),

    // ---- members
    member: prepare<[string, string], MemberRow>(`${memberSelect} WHERE m.conversation_id = ? AND m.user_id = ?`),
    membership: prepare<[string, string], MembershipRow>(
      `SELECT ${conversationColumns}, m.user_id, u.name AS member_name, m.role, m.joined_at, m.read_seq
         FROM conversations c JOIN members m ON m.conversation_id = c.id JOIN users u ON u.id = m.user_id
        WHERE c.id = ? AND m.user_id = ?`),
    presenceConversations: prepare<[string, number], { user_id: string; conversation_id: string }>(
      `SELECT m.user_id, m.conversation_id FROM members m JOIN conversations c ON c.id = m.conversation_id
        WHERE m.user_id IN (SELECT value FROM json_each(?)) AND (c.kind = 'direct' OR c.member_count BETWEEN 2 AND ?)
        ORDER BY m.user_id, m.conversation_id`),
    isMember: prepare<[string, string], { one: number }>('SELECT 1 AS one FROM members WHERE conversation_id = ? AND user_id = ?'),
    members: prepare<[string], MemberRow>(`${memberSelect} WHERE m.conversation_id = ? ORDER BY m.joined_at, m.user_id`),
    membersPage: prepare<[string, number, string, number], MemberRow>(
      `${memberSelect} WHERE m.conversation_id = ? AND (m.joined_at, m.user_id) > (?, ?) ORDER BY m.joined_at, m.user_id LIMIT ?`),
    memberIds: prepare<[string], { user_id: string }>('SELECT user_id FROM members WHERE conversation_id = ? ORDER BY user_id'),
    insertMember: prepare<[string, string, string, number, number]>(
      'INSERT INTO members (conversation_id, user_id, role, joined_at, read_seq) VALUES (?, ?, ?, ?, ?)'),
    deleteMember: prepare<[string, string]>('DELETE FROM members WHERE conversation_id = ? AND user_id = ?'),
    setRole: prepare<[string, string, string]>('UPDATE members SET role = ? WHERE conversation_id = ? AND user_id = ?'),
    stampMember: prepare<[number, string, string]>('UPDATE members SET rev = ? WHERE conversation_id = ? AND user_id = ?'),
    recordDeparture: prepare<[string, string, number]>(
      `INSERT INTO departures (conversation_id, user_id, rev) VALUES (?, ?, ?)
       ON CONFLICT (conversation_id, user_id) DO UPDATE SET rev = excluded.rev`),
    forgetDeparture: prepare<[string, string]>('DELETE FROM departures WHERE conversation_id = ? AND user_id = ?'),
    // "rev > 0 AND": lets SQLite use the partial indexes, which a bound parameter alone cannot prove.
    changedMembers: prepare<[string, number, number], MemberRow & { rev: number }>(
      `SELECT m.user_id, u.name, m.role, m.joined_at, m.read_seq, m.rev FROM members m JOIN users u ON u.id = m.user_id
       WHERE m.conversation_id = ? AND m.rev > 0 AND m.rev > ? ORDER BY m.rev LIMIT ?`),
    departuresSince: prepare<[string, number, number], DepartureRow>(
      'SELECT user_id, rev FROM departures WHERE conversation_id = ? AND rev > ? ORDER BY rev LIMIT ?'),
    contacts: prepare<[string, string], { user_id: string }>(
      `SELECT DISTINCT o.user_id FROM members m JOIN members o ON o.conversation_id = m.conversation_id
       WHERE m.user_id = ? AND o.user_id <> ? ORDER BY o.user_id`),
    readCursor: prepare<[string, string], { read_seq: number; last_seq: number }>(
      `SELECT m.read_seq, c.last_seq FROM members m JOIN conversations c ON c.id = m.conversation_id
       WHERE m.conversation_id = ? AND m.user_id = ?`),
    setReadSeq: prepare<[number, string, string]>('UPDATE members SET read_seq = ? WHERE conversation_id = ? AND user_id = ?'),

    // ---- bans
    isBanned: prepare<[string, string], { one: number }>('SELECT 1 AS one FROM conversation_bans WHERE conversation_id = ? AND user_id = ?'),
    insertBan: prepare<[string, string, string, number]>(
      'INSERT OR IGNORE INTO conversation_bans (conversation_id, user_id, banned_by, banned_at) VALUES (?, ?, ?, ?)'),
    deleteBan: prepare<[string, string]>('DELETE FROM conversation_bans WHERE conversation_id = ? AND user_id = ?'),
    bans: prepare<[string], BanRow>(
      `SELECT b.user_id, u.name, b.banned_by, b.banned_at FROM conversation_bans b LEFT JOIN users u ON u.id = b.user_id
       WHERE b.conversation_id = ? ORDER BY b.banned_at, b.user_id`),
    bansPage: prepare<[string, number, string, number], BanRow>(
      `SELECT b.user_id, u.name, b.banned_by, b.banned_at FROM conversation_bans b LEFT JOIN users u ON u.id = b.user_id
       WHERE b.conversation_id = ? AND (b.banned_at, b.user_id) > (?, ?) ORDER BY b.banned_at, b.user_id LIMIT ?`),

    // ---- invites
    invite: prepare<[string], InviteRow>('SELECT * FROM invites WHERE token = ?'),
    invites: prepare<[string], InviteRow>('SELECT * FROM invites WHERE conversation_id = ? ORDER BY created_at, token'),
    invitesPage: prepare<[string, number, string, number], InviteRow>(
      'SELECT * FROM invites WHERE conversation_id = ? AND (created_at, token) > (?, ?) ORDER BY created_at, token LIMIT ?'),
    insertInvite: prepare<[string, string, string, number, number | null, number | null]>(
      `INSERT INTO invites (token, conversation_id, created_by, created_at, expires_at, max_uses)
       VALUES (?, ?, ?, ?, ?, ?)`),
    revokeInvite: prepare<[string]>('UPDATE invites SET revoked = 1 WHERE token = ?'),
    useInvite: prepare<[string]>('UPDATE invites SET uses = uses + 1 WHERE token = ?'),

    // ---- messages
    // An append's three checks (membership, a duplicate key, an account ban) in one statement: each statement costs a
    // round through the driver, and these run for every message (src/store/sqlite/append.ts).
    appendChecks: prepare<[{ conversationId: string; senderId: string; key: string }], { duplicate_seq: number | null; member: number; banned: number | null }>(
      `SELECT (SELECT seq FROM messages WHERE conversation_id = @conversationId AND sender_id = @senderId AND client_key = @key) AS duplicate_seq,
              EXISTS (SELECT 1 FROM members WHERE conversation_id = @conversationId AND user_id = @senderId) AS member,
              (SELECT banned FROM users WHERE id = @senderId) AS banned`),
    messageByKey: prepare<[string, string, string], MessageRow>(
      `SELECT ${messageColumns} FROM messages WHERE conversation_id = ? AND sender_id = ? AND client_key = ?`),
    // created_at never goes backwards within a conversation, even if the clock does: history by time relies on it.
    nextSeq: prepare<[number, string], { last_seq: number; last_message_at: number }>(
      `UPDATE conversations SET last_seq = last_seq + 1, last_message_at = max(coalesce(last_message_at, 0), ?)
       WHERE id = ? RETURNING last_seq, last_message_at`),
    advanceOwnCursor: prepare<[number, string, string, number]>(
      'UPDATE members SET read_seq = ? WHERE conversation_id = ? AND user_id = ? AND read_seq < ?'),
    createdAtOf: prepare<[string, number], { created_at: number }>('SELECT created_at FROM messages WHERE conversation_id = ? AND seq = ?'),
    insertMessage: prepare<[string, number, string, string, string, string, string | null, number]>(
      `INSERT INTO messages (conversation_id, seq, id, sender_id, client_key, text, meta, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
    message: prepare<[string, number], MessageRow>(`SELECT ${messageColumns} FROM messages WHERE conversation_id = ? AND seq = ?`),
    editMessage: prepare<[string, string | null, number, string, number], MessageRow>(
      `UPDATE messages SET text = ?, meta = ?, edited_at = ? WHERE conversation_id = ? AND seq = ? AND deleted = 0
       RETURNING ${messageColumns}`),
    deleteMessage: prepare<[number, string, number], MessageRow>(
      `UPDATE messages SET deleted = 1, text = '', meta = NULL, edited_at = ? WHERE conversation_id = ? AND seq = ? AND deleted = 0
       RETURNING ${messageColumns}`),
    stampMessage: prepare<[number, string, number]>('UPDATE messages SET rev = ? WHERE conversation_id = ? AND seq = ?'),
    changedMessages: prepare<[string, number, number], MessageRow & { rev: number }>(
      `SELECT ${messageColumns}, rev FROM messages WHERE conversation_id = ? AND rev > 0 AND rev > ? ORDER BY rev LIMIT ?`),
    messagesAfter: prepare<[string, number, number], MessageRow>(
      `SELECT ${messageColumns} FROM messages WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?`),
    messagesBefore: prepare<[string, number, number], MessageRow>(
      `SELECT ${messageColumns} FROM messages WHERE conversation_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?`),
  };
}

export type Statements = ReturnType<typeof prepareStatements>;
