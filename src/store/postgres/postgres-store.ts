/**
 * The PostgreSQL store engine: the Store seam over one PostgreSQL database shared by any number of instances.
 *
 * Where each guarantee of src/store/store.ts comes from here (READ COMMITTED transactions; each statement sees what
 * committed before it started, so a check made after taking a lock sees every transaction that held it):
 * - seq: the conversation row is the counter; appends lock it first (append.ts), so seqs are gap-free and a repeated
 *   key finds its original.
 * - Limits (members, conversations, invite uses): the rows a count depends on are locked before counting: the
 *   conversation row (member_count), the user row (their memberships), the invite row (uses). Lock order is always
 *   invite, then conversations (by id), then users (by id); deadlocks that remain (a delete cascading the other way)
 *   run the transaction again (pool.ts).
 * - Account names: creating a built-in account holds a transaction advisory lock, so two look-alike names cannot both
 *   pass the skeleton check (the key is also UNIQUE).
 * - Engine failures reject UNAVAILABLE (errors.ts); appends are written by group commit (group-commit.ts).
 */
import { randomUUID } from 'node:crypto';
import { ParleyError } from '../../protocol/errors.js';
import type { Ban, StoredChange as Change, Conversation, ConversationPosition, Invite, Member, StoredMessage as Message, MyConversation, Role, Visibility } from '../../protocol/types.js';
import { usernameFoldedSkeleton, usernameKey, usernameScriptProblem, usernameSkeleton } from '../../protocol/usernames.js';
import { SEARCH_CANDIDATES, SUBSTRING_QUERY_MIN, foldForSearch, searchFoldSignature } from '../search-text.js';
import type { AddMemberResult, DeleteConversationResult, InstanceClaimRequest, NewMessage, NewUser, RedeemResult, Removal, Store, UserRecord } from '../store.js';
import { type AppendResult, type QueuedAppend, createAppendBatch } from './append.js';
import { closedError, toParleyError } from './errors.js';
import { InstanceClaim } from './instance-claim.js';
import { AsyncGroupCommit } from './group-commit.js';
import { MIGRATION_LOCK, migrate } from './migrate.js';
import { Pool, type PoolOptions, type Queryable } from './pool.js';
import {
  type BanRow, type ConversationRow, type InviteRow, type MemberRow, type MembershipRow, type MessageRow, type MyConversationRow, type UserRow,
  conversationColumns, inviteColumns, messageColumns, metaToText, toBan, toConversation, toInvite, toMember, toMembership, toMessage,
  toMyConversation, toUser, userColumns,
} from './rows.js';
import { groupByUser } from '../user-batches.js';

export interface PostgresStoreOptions extends PoolOptions {
  /** Appends waiting for their group commit, at most; one more is refused with RATE_LIMITED. @default unbounded */
  maxQueuedWrites?: number;
}

export function createPostgresStore(options: PostgresStoreOptions): Store {
  return new PostgresStore(options);
}

// Sorts below every real id, so "after" paging can always bind a string.
const beforeAllIds = '';

/** SQLite's NOCASE order of group names (ASCII letters folded only), which conversations_public_name indexes. */
const nameOrder = "translate(c.name, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), c.id";

/** The advisory lock that serialises built-in account creation (name checks): 'PRLYNAME' as a bigint. */
const ACCOUNT_NAMES_LOCK = '5787369638813368645';

// Unread is derived, not counted: every seq above read_seq is a message, and none of them is one's own.
const myConversationSelect = `
  SELECT ${conversationColumns}, m.role, m.read_seq,
    c.last_seq - m.read_seq AS unread,
    p.id AS peer_id, p.name AS peer_name
  FROM members m
  JOIN conversations c ON c.id = m.conversation_id
  LEFT JOIN users p ON c.kind = 'direct' AND p.id = (
    SELECT o.user_id FROM members o WHERE o.conversation_id = c.id AND o.user_id <> m.user_id LIMIT 1
  )`;
const activity = 'coalesce(c.last_message_at, c.created_at)';

const memberSelect = 'SELECT m.user_id, u.name, m.role, m.joined_at, m.read_seq FROM members m JOIN users u ON u.id = m.user_id';
const banSelect = 'SELECT b.user_id, u.name, b.banned_by, b.banned_at FROM conversation_bans b LEFT JOIN users u ON u.id = b.user_id';

/**
 * Group search (exported for the test that checks each is served by an index): candidates come from an index, at most
 * SEARCH_CANDIDATES of them, then are ordered by name.
 */
export const searchSql = {
  /** $1 limit: public groups by name, on conversations_public_name. */
  all: `SELECT ${conversationColumns} FROM conversations c WHERE c.kind = 'group' AND c.visibility = 'public' ORDER BY ${nameOrder} LIMIT $1`,
  /** $1 folded query, $2 its upper bound, $3 candidates, $4 limit: a range on group_names_folded (byte order, "C"). */
  starting: `SELECT ${conversationColumns} FROM conversations c WHERE c.id IN (
      SELECT conversation_id FROM group_names WHERE folded >= $1 AND folded < $2 ORDER BY folded LIMIT $3)
    ORDER BY ${nameOrder} LIMIT $4`,
  /** $1 LIKE pattern, $2 candidates, $3 limit: LIKE '%…%' through group_names_trigrams. */
  containing: `SELECT ${conversationColumns} FROM conversations c WHERE c.id IN (
      SELECT conversation_id FROM group_names WHERE folded LIKE $1 LIMIT $2)
    ORDER BY ${nameOrder} LIMIT $3`,
};

type Input<K extends keyof Store> = Parameters<Store[K]>[0];

export class PostgresStore implements Store {
  private readonly pool: Pool;
  private readonly appends: AsyncGroupCommit<QueuedAppend, AppendResult>;

  /** This instance's registration (claimInstance): a session of its own holding an advisory lock. */
  private claim: InstanceClaim | null = null;

  constructor(private readonly options: PostgresStoreOptions) {
    this.pool = new Pool(options);
    this.appends = new AsyncGroupCommit(createAppendBatch(this.pool), toParleyError, undefined, options.maxQueuedWrites);
  }

  private query<R extends object>(sql: string, params: unknown[] = []): Promise<R[]> {
    return this.pool.query<R & Record<string, unknown>>(sql, params);
  }

  private async one<R extends object>(sql: string, params: unknown[] = []): Promise<R | null> {
    return (await this.query<R>(sql, params))[0] ?? null;
  }

  private write<T>(work: (db: Queryable) => Promise<T>): Promise<T> {
    return this.pool.transaction(work);
  }

  async migrate(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await migrate(client);
      await this.refoldGroupNames(client);
    } catch (err) {
      throw toParleyError(err);
    } finally {
      // The connection ran without a statement bound: not for reuse.
      client.release(true);
    }
  }

  /**
   * Bring every folded group name up to foldForSearch when the names were folded under another signature (a newer
   * Node may fold differently), under the migration lock so only one instance does it.
   */
  private async refoldGroupNames(client: Queryable): Promise<void> {
    const signature = searchFoldSignature();
    const current = async () => (await client.query<{ value: string }>("SELECT value FROM store_meta WHERE key = 'group_names_fold'")).rows[0]?.value;
    if (await current() === signature) return;
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      if (await current() === signature) return;
      await client.query('BEGIN');
      const { rows } = await client.query<{ conversation_id: string; folded: string; name: string }>(
        'SELECT g.conversation_id, g.folded, c.name FROM group_names g JOIN conversations c ON c.id = g.conversation_id');
      for (const row of rows) {
        const folded = foldForSearch(row.name);
        if (folded !== row.folded) await client.query('UPDATE group_names SET folded = $1 WHERE conversation_id = $2', [folded, row.conversation_id]);
      }
      await client.query(
        `INSERT INTO store_meta (key, value) VALUES ('group_names_fold', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [signature]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    }
  }

  async storeId(): Promise<string> {
    await this.query("INSERT INTO store_meta (key, value) VALUES ('store_id', $1) ON CONFLICT (key) DO NOTHING", [randomUUID()]);
    return (await this.one<{ value: string }>("SELECT value FROM store_meta WHERE key = 'store_id'", []))!.value;
  }

  async ping(): Promise<void> {
    // A committed write, not a read: a full disk or a read-only standby still answers reads.
    await this.query(
      `INSERT INTO store_meta (key, value) VALUES ('ping', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      [String(Date.now())]);
  }

  async claimInstance(claim: InstanceClaimRequest): Promise<void> {
    if (this.claim) throw new ParleyError('CONFLICT', 'this store already holds a claim');
    this.claim = await InstanceClaim.take(claim, {
      url: this.options.url,
      connectTimeoutMs: this.options.connectTimeoutMs ?? 5000,
      onLost: (error) => this.options.onBackgroundError?.(error instanceof Error ? error : new Error(String(error))),
    });
  }

  async close(): Promise<void> {
    await this.claim?.release();
    this.claim = null;
    if (this.pool.isClosed) return;
    // Appends already queued were promised a commit; give it to them before closing.
    await this.appends.drain();
    await this.pool.close();
  }

  // ---- users

  createUser(user: NewUser): Promise<UserRecord> {
    const builtin = user.passwordHash !== null;
    return this.write(async (db) => {
      // The id first, as SQLite answers: a taken id is CONFLICT whatever the name (a concurrent insert of the same id
      // is caught by ON CONFLICT below).
      if (await first(db, 'SELECT 1 AS one FROM users WHERE id = $1', [user.id])) throw new ParleyError('CONFLICT', 'A user with this id exists');
      if (builtin) {
        await db.query('SELECT pg_advisory_xact_lock($1)', [ACCOUNT_NAMES_LOCK]);
        await requireFreeAccountName(db, user.name);
      }
      const row = await first<UserRow>(db,
        `INSERT INTO users (id, name, password_hash, is_admin, created_at, origin, name_key, name_skeleton, name_folded_skeleton)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING RETURNING ${userColumns}`,
        [user.id, user.name, user.passwordHash, user.isAdmin ?? false, user.now, builtin ? 'builtin' : 'product',
          builtin ? usernameKey(user.name) : null, builtin ? usernameSkeleton(user.name) : null, builtin ? usernameFoldedSkeleton(user.name) : null]);
      if (!row) throw new ParleyError('CONFLICT', 'A user with this id exists');
      return toUser(row);
    });
  }

  async ensureUser(id: string, name: string | null, now: number): Promise<UserRecord> {
    return this.write(async (db) => {
      // ON CONFLICT: a first connection on two instances at once inserts once, and neither fails.
      const inserted = await first<UserRow>(db,
        `INSERT INTO users (id, name, password_hash, is_admin, created_at, origin) VALUES ($1, $2, NULL, false, $3, 'product')
         ON CONFLICT (id) DO NOTHING RETURNING ${userColumns}`, [id, name ?? id, now]);
      if (inserted) return toUser(inserted);
      // A built-in account is never renamed from a token: its name is its login name.
      const renamed = name === null ? null : await first<UserRow>(db,
        `UPDATE users SET name = $2 WHERE id = $1 AND origin = 'product' AND name <> $2 RETURNING ${userColumns}`, [id, name]);
      return toUser(renamed ?? await requireRow<UserRow>(db, `SELECT ${userColumns} FROM users WHERE id = $1`, [id]));
    });
  }

  upsertProductUser(input: { id: string; name: string; metadata: unknown | null | undefined; now: number }): Promise<{ user: UserRecord; created: boolean }> {
    const metadata = input.metadata === undefined ? undefined : metaToText(input.metadata);
    return this.write(async (db) => {
      const inserted = await first<UserRow>(db,
        `INSERT INTO users (id, name, password_hash, is_admin, created_at, origin, metadata) VALUES ($1, $2, NULL, false, $3, 'product', $4)
         ON CONFLICT (id) DO NOTHING RETURNING ${userColumns}`, [input.id, input.name, input.now, metadata ?? null]);
      if (inserted) return { user: toUser(inserted), created: true };
      const existing = await requireRow<UserRow>(db, `SELECT ${userColumns} FROM users WHERE id = $1 FOR NO KEY UPDATE`, [input.id]);
      if (existing.origin === 'builtin') throw new ParleyError('CONFLICT', 'this id belongs to a built-in account; only product users can be upserted');
      const updated = await requireRow<UserRow>(db,
        `UPDATE users SET name = $2, metadata = CASE WHEN $3 THEN $4 ELSE metadata END WHERE id = $1 RETURNING ${userColumns}`,
        [input.id, input.name, metadata !== undefined, metadata ?? null]);
      return { user: toUser(updated), created: false };
    });
  }

  async bumpTokenGeneration(userId: string): Promise<number | null> {
    const row = await this.one<{ token_generation: number }>(
      'UPDATE users SET token_generation = token_generation + 1 WHERE id = $1 RETURNING token_generation', [userId]);
    return row?.token_generation ?? null;
  }

  revokeSession(sessionId: string, expiresAt: number, now: number): Promise<void> {
    return this.write(async (db) => {
      await db.query('DELETE FROM revoked_sessions WHERE expires_at < $1', [now]);
      await db.query('INSERT INTO revoked_sessions (session_id, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING', [sessionId, expiresAt]);
    });
  }

  async isSessionRevoked(sessionId: string): Promise<boolean> {
    return (await this.one('SELECT 1 AS one FROM revoked_sessions WHERE session_id = $1', [sessionId])) !== null;
  }

  async getUser(id: string): Promise<UserRecord | null> {
    return mapOrNull(await this.one<UserRow>(`SELECT ${userColumns} FROM users WHERE id = $1`, [id]), toUser);
  }

  async getUserByName(name: string): Promise<UserRecord | null> {
    // Every account here has its key (no PostgreSQL database predates migration 004's keys).
    return mapOrNull(await this.one<UserRow>(
      `SELECT ${userColumns} FROM users WHERE name_key = $1 AND password_hash IS NOT NULL`, [usernameKey(name)]), toUser);
  }

  async listUsers(opts: { limit: number; afterId?: string }): Promise<UserRecord[]> {
    return (await this.query<UserRow>(`SELECT ${userColumns} FROM users WHERE id > $1 ORDER BY id LIMIT $2`, [opts.afterId ?? beforeAllIds, opts.limit])).map(toUser);
  }

  async setBanned(id: string, banned: boolean): Promise<boolean> {
    return (await this.query('UPDATE users SET banned = $2 WHERE id = $1 RETURNING 1 AS one', [id, banned])).length > 0;
  }

  async setLastSeen(id: string, at: number): Promise<void> {
    await this.query('UPDATE users SET last_seen = $2 WHERE id = $1', [id, at]);
  }

  async setLastSeenMany(entries: ReadonlyArray<{ userId: string; at: number }>): Promise<void> {
    if (entries.length === 0) return;
    await this.query('UPDATE users u SET last_seen = v.at FROM unnest($1::text[], $2::bigint[]) AS v(id, at) WHERE u.id = v.id',
      [entries.map((e) => e.userId), entries.map((e) => e.at)]);
  }

  // ---- conversations

  createGroup(input: { id: string; name: string; visibility: Visibility; createdBy: string; now: number; maxConversations?: number }): Promise<Conversation> {
    return this.write(async (db) => {
      await requireRoomForConversations(db, [input.createdBy], input.maxConversations);
      await insertConversation(db, { id: input.id, kind: 'group', name: input.name, visibility: input.visibility, createdBy: input.createdBy, now: input.now, memberCount: 1, directKey: null });
      await db.query('INSERT INTO members (conversation_id, user_id, role, joined_at, read_seq) VALUES ($1, $2, $3, $4, 0)', [input.id, input.createdBy, 'owner', input.now]);
      if (input.visibility === 'public') await db.query('INSERT INTO group_names (conversation_id, folded) VALUES ($1, $2)', [input.id, foldForSearch(input.name)]);
      return requireConversation(db, input.id);
    });
  }

  openDirect(input: { id: string; a: string; b: string; now: number; maxConversations?: number }): Promise<{ conversation: Conversation; created: boolean }> {
    const pair = [...new Set([input.a, input.b])].sort();
    const directKey = JSON.stringify(pair);
    const byKey = `SELECT ${conversationColumns} FROM conversations c WHERE c.direct_key = $1`;
    return this.write(async (db) => {
      const existing = await first<ConversationRow>(db, byKey, [directKey]);
      if (existing) return { conversation: toConversation(existing), created: false };
      // Both users' rows locked (in id order): concurrent opens of the pair take turns, and so do other joins of theirs.
      await lockUsers(db, pair);
      const raced = await first<ConversationRow>(db, byKey, [directKey]);
      if (raced) return { conversation: toConversation(raced), created: false };
      await requireRoomForConversations(db, [input.a], input.maxConversations, false);
      if (input.b !== input.a) await requireRoomForConversations(db, [input.b], input.maxConversations, false, 'the other user');
      await insertConversation(db, { id: input.id, kind: 'direct', name: null, visibility: 'private', createdBy: input.a, now: input.now, memberCount: pair.length, directKey });
      for (const userId of pair) {
        await db.query('INSERT INTO members (conversation_id, user_id, role, joined_at, read_seq) VALUES ($1, $2, $3, $4, 0)', [input.id, userId, 'member', input.now]);
      }
      return { conversation: await requireConversation(db, input.id), created: true };
    });
  }

  async getConversation(id: string): Promise<Conversation | null> {
    return mapOrNull(await this.one<ConversationRow>(`SELECT ${conversationColumns} FROM conversations c WHERE c.id = $1`, [id]), toConversation);
  }

  async getMyConversation(id: string, userId: string): Promise<MyConversation | null> {
    return mapOrNull(await this.one<MyConversationRow>(`${myConversationSelect} WHERE m.user_id = $1 AND m.conversation_id = $2`, [userId, id]), toMyConversation);
  }

  async listMyConversations(userId: string, page?: { after?: { activityAt: number; id: string }; limit: number }): Promise<MyConversation[]> {
    if (!page) {
      return (await this.query<MyConversationRow>(`${myConversationSelect} WHERE m.user_id = $1 ORDER BY ${activity} DESC, c.id`, [userId])).map(toMyConversation);
    }
    const after = page.after ?? { activityAt: Number.MAX_SAFE_INTEGER, id: beforeAllIds };
    return (await this.query<MyConversationRow>(
      `${myConversationSelect} WHERE m.user_id = $1 AND (${activity} < $2 OR (${activity} = $2 AND c.id > $3))
       ORDER BY ${activity} DESC, c.id LIMIT $4`, [userId, after.activityAt, after.id, page.limit])).map(toMyConversation);
  }

  async listPresenceConversations(userIds: readonly string[], maxGroupSize: number): Promise<string[][]> {
    if (userIds.length === 0) return [];
    const rows = await this.query<{ user_id: string; conversation_id: string }>(
      `SELECT m.user_id, m.conversation_id FROM members m JOIN conversations c ON c.id = m.conversation_id
        WHERE m.user_id = ANY($1::text[]) AND (c.kind = 'direct' OR c.member_count BETWEEN 2 AND $2) ORDER BY m.user_id, m.conversation_id`,
      [userIds, maxGroupSize]);
    return groupByUser(userIds, rows);
  }

  async listConversationIds(userId: string): Promise<string[]> {
    return (await this.query<{ conversation_id: string }>('SELECT conversation_id FROM members WHERE user_id = $1 ORDER BY conversation_id', [userId]))
      .map((r) => r.conversation_id);
  }

  async listPositions(userId: string): Promise<ConversationPosition[]> {
    const rows = await this.query<{ id: string; last_seq: number; rev: number; read_seq: number }>(
      `SELECT c.id, c.last_seq, c.rev, m.read_seq FROM members m JOIN conversations c ON c.id = m.conversation_id
       WHERE m.user_id = $1 ORDER BY ${activity} DESC, c.id`, [userId]);
    return rows.map((r) => ({ id: r.id, lastSeq: r.last_seq, rev: r.rev, readSeq: r.read_seq }));
  }

  async countMemberships(userId: string): Promise<number> {
    return (await this.one<{ n: number }>('SELECT count(*) AS n FROM members WHERE user_id = $1', [userId]))?.n ?? 0;
  }

  async searchPublic(query: string, limit: number): Promise<Conversation[]> {
    const folded = foldForSearch(query);
    const length = [...folded].length;
    const candidates = Math.max(SEARCH_CANDIDATES, limit);
    const rows = length === 0
      ? await this.query<ConversationRow>(searchSql.all, [limit])
      : length < SUBSTRING_QUERY_MIN
        ? await this.query<ConversationRow>(searchSql.starting, [folded, `${folded}\u{10FFFF}`, candidates, limit])
        // The query's own % _ \ are escaped, so LIKE matches it literally.
        : await this.query<ConversationRow>(searchSql.containing, [`%${folded.replace(/[\\%_]/g, (c) => `\\${c}`)}%`, candidates, limit]);
    return rows.map(toConversation);
  }

  async listConversations(opts: { limit: number; afterId?: string }): Promise<Conversation[]> {
    return (await this.query<ConversationRow>(`SELECT ${conversationColumns} FROM conversations c WHERE c.id > $1 ORDER BY c.id LIMIT $2`,
      [opts.afterId ?? beforeAllIds, opts.limit])).map(toConversation);
  }

  renameConversation(id: string, name: string): Promise<Conversation | null> {
    return this.write(async (db) => {
      const renamed = await db.query('UPDATE conversations SET name = $2, rev = rev + 1 WHERE id = $1', [id, name]);
      if (!renamed.rowCount) return null;
      await db.query('UPDATE group_names SET folded = $2 WHERE conversation_id = $1', [id, foldForSearch(name)]);
      return requireConversation(db, id);
    });
  }

  deleteConversation(id: string): Promise<boolean> {
    // Members, invites and messages go with it through ON DELETE CASCADE, in the same statement. In a transaction so
    // that a deadlock with a redemption (which locks invite, then conversation) runs it again.
    return this.write(async (db) => ((await db.query('DELETE FROM conversations WHERE id = $1', [id])).rowCount ?? 0) > 0);
  }

  deleteConversationWithMembers(input: { id: string; onlyMember?: string }): Promise<DeleteConversationResult> {
    return this.write(async (db): Promise<DeleteConversationResult> => {
      // Locked first: a join waiting on this row finds no conversation once we commit, and one that committed
      // before is in the list.
      if (!await lockConversation(db, input.id)) return { status: 'not_found' };
      const memberIds = (await db.query<{ user_id: string }>('SELECT user_id FROM members WHERE conversation_id = $1 ORDER BY user_id', [input.id])).rows.map((r) => r.user_id);
      if (input.onlyMember !== undefined) {
        if (!memberIds.includes(input.onlyMember)) return { status: 'not_found' };
        if (memberIds.length > 1) return { status: 'others_remain' };
      }
      await db.query('DELETE FROM conversations WHERE id = $1', [input.id]);
      return { status: 'deleted', memberIds };
    });
  }

  // ---- members

  async getMembership(conversationId: string, userId: string): Promise<{ conversation: Conversation; member: Member } | null> {
    return mapOrNull(await this.one<MembershipRow>(
      `SELECT ${conversationColumns}, m.user_id, u.name AS member_name, m.role, m.joined_at, m.read_seq
         FROM conversations c JOIN members m ON m.conversation_id = c.id JOIN users u ON u.id = m.user_id
        WHERE c.id = $1 AND m.user_id = $2`, [conversationId, userId]), toMembership);
  }

  async getMember(conversationId: string, userId: string): Promise<Member | null> {
    return mapOrNull(await this.one<MemberRow>(`${memberSelect} WHERE m.conversation_id = $1 AND m.user_id = $2`, [conversationId, userId]), toMember);
  }

  async listMembers(conversationId: string, page?: { after?: { joinedAt: number; userId: string }; limit: number }): Promise<Member[]> {
    if (!page) return (await this.query<MemberRow>(`${memberSelect} WHERE m.conversation_id = $1 ORDER BY m.joined_at, m.user_id`, [conversationId])).map(toMember);
    const after = page.after ?? { joinedAt: Number.MIN_SAFE_INTEGER, userId: beforeAllIds };
    return (await this.query<MemberRow>(
      `${memberSelect} WHERE m.conversation_id = $1 AND (m.joined_at, m.user_id) > ($2, $3) ORDER BY m.joined_at, m.user_id LIMIT $4`,
      [conversationId, after.joinedAt, after.userId, page.limit])).map(toMember);
  }

  async listMemberIds(conversationId: string): Promise<string[]> {
    return (await this.query<{ user_id: string }>('SELECT user_id FROM members WHERE conversation_id = $1 ORDER BY user_id', [conversationId])).map((r) => r.user_id);
  }

  addMember(input: Input<'addMember'>): Promise<AddMemberResult> {
    return this.write((db) => addMemberNow(db, input));
  }

  removeMember(conversationId: string, userId: string): Promise<Removal> {
    return this.write(async (db) => {
      if (!await lockConversation(db, conversationId)) return { removed: false };
      return removeMembership(db, conversationId, userId);
    });
  }

  setRole(conversationId: string, userId: string, role: Role): Promise<Member | null> {
    return this.write(async (db) => {
      if (!await lockConversation(db, conversationId)) return null;
      const changed = await db.query('UPDATE members SET role = $3 WHERE conversation_id = $1 AND user_id = $2', [conversationId, userId, role]);
      if (!changed.rowCount) return null;
      await stampMember(db, conversationId, userId);
      return requireMember(db, conversationId, userId);
    });
  }

  banMember(input: { conversationId: string; userId: string; by: string; now: number }): Promise<Removal> {
    return this.write(async (db) => {
      await lockConversation(db, input.conversationId);
      // Banning again keeps the first ban.
      await db.query(
        'INSERT INTO conversation_bans (conversation_id, user_id, banned_by, banned_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING',
        [input.conversationId, input.userId, input.by, input.now]);
      return removeMembership(db, input.conversationId, input.userId);
    });
  }

  async unbanMember(conversationId: string, userId: string): Promise<boolean> {
    return (await this.query('DELETE FROM conversation_bans WHERE conversation_id = $1 AND user_id = $2 RETURNING 1 AS one', [conversationId, userId])).length > 0;
  }

  async listBans(conversationId: string, page?: { after?: { bannedAt: number; userId: string }; limit: number }): Promise<Ban[]> {
    if (!page) return (await this.query<BanRow>(`${banSelect} WHERE b.conversation_id = $1 ORDER BY b.banned_at, b.user_id`, [conversationId])).map(toBan);
    const after = page.after ?? { bannedAt: Number.MIN_SAFE_INTEGER, userId: beforeAllIds };
    return (await this.query<BanRow>(
      `${banSelect} WHERE b.conversation_id = $1 AND (b.banned_at, b.user_id) > ($2, $3) ORDER BY b.banned_at, b.user_id LIMIT $4`,
      [conversationId, after.bannedAt, after.userId, page.limit])).map(toBan);
  }

  async listContacts(userId: string): Promise<string[]> {
    return (await this.query<{ user_id: string }>(
      `SELECT DISTINCT o.user_id FROM members m JOIN members o ON o.conversation_id = m.conversation_id
       WHERE m.user_id = $1 AND o.user_id <> $1 ORDER BY o.user_id`, [userId])).map((r) => r.user_id);
  }

  // ---- invites

  async createInvite(invite: Omit<Invite, 'uses' | 'revoked'>): Promise<Invite> {
    const row = await this.one<InviteRow>(
      `INSERT INTO invites (token, conversation_id, created_by, created_at, expires_at, max_uses) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (token) DO NOTHING RETURNING ${inviteColumns}`,
      [invite.token, invite.conversationId, invite.createdBy, invite.createdAt, invite.expiresAt, invite.maxUses]);
    if (!row) throw new ParleyError('CONFLICT', 'An invite with this token exists');
    return toInvite(row);
  }

  async getInvite(token: string): Promise<Invite | null> {
    return mapOrNull(await this.one<InviteRow>(`SELECT ${inviteColumns} FROM invites WHERE token = $1`, [token]), toInvite);
  }

  async listInvites(conversationId: string, page?: { after?: { createdAt: number; token: string }; limit: number }): Promise<Invite[]> {
    if (!page) return (await this.query<InviteRow>(`SELECT ${inviteColumns} FROM invites WHERE conversation_id = $1 ORDER BY created_at, token`, [conversationId])).map(toInvite);
    const after = page.after ?? { createdAt: Number.MIN_SAFE_INTEGER, token: beforeAllIds };
    return (await this.query<InviteRow>(
      `SELECT ${inviteColumns} FROM invites WHERE conversation_id = $1 AND (created_at, token) > ($2, $3) ORDER BY created_at, token LIMIT $4`,
      [conversationId, after.createdAt, after.token, page.limit])).map(toInvite);
  }

  async revokeInvite(token: string): Promise<Invite | null> {
    return mapOrNull(await this.one<InviteRow>(`UPDATE invites SET revoked = true WHERE token = $1 RETURNING ${inviteColumns}`, [token]), toInvite);
  }

  redeemInvite(input: { token: string; userId: string; now: number; maxMembers: number; maxConversations?: number }): Promise<RedeemResult> {
    return this.write(async (db): Promise<RedeemResult> => {
      // The invite row locked first: concurrent redemptions take turns, so its uses never pass maxUses.
      const invite = mapOrNull(await first<InviteRow>(db, `SELECT ${inviteColumns} FROM invites WHERE token = $1 FOR NO KEY UPDATE`, [input.token]), toInvite);
      const refusal = inviteRefusal(invite, input.now);
      if (refusal || !invite) return { status: refusal ?? 'invalid' };
      const conversationId = invite.conversationId;
      const added = await addMemberNow(db, {
        conversationId, userId: input.userId, role: 'member', now: input.now, maxMembers: input.maxMembers, maxConversations: input.maxConversations,
      });
      switch (added.status) {
        case 'no_conversation': return { status: 'invalid' };
        case 'full': return { status: 'full' };
        case 'banned': return { status: 'banned' };
        case 'exists': return { status: 'already_member', member: added.member, conversationId };
        case 'added':
          await db.query('UPDATE invites SET uses = uses + 1 WHERE token = $1', [input.token]);
          return { status: 'joined', member: added.member, conversationId, memberCount: added.memberCount };
      }
    });
  }

  // ---- messages

  appendMessage(input: NewMessage): Promise<{ message: Message; duplicate: boolean }> {
    try {
      if (this.pool.isClosed) throw closedError();
      return this.appends.submit({ ...input, metaText: metaToText(input.meta) });
    } catch (err) {
      return Promise.reject(toParleyError(err));
    }
  }

  async getMessage(conversationId: string, seq: number): Promise<Message | null> {
    return mapOrNull(await this.one<MessageRow>(`SELECT ${messageColumns} FROM messages WHERE conversation_id = $1 AND seq = $2`, [conversationId, seq]), toMessage);
  }

  editMessage(input: { conversationId: string; seq: number; text: string; meta: unknown | null; now: number }): Promise<Message | null> {
    return this.stampedMessageChange(input.conversationId,
      `UPDATE messages SET text = $3, meta = $4, edited_at = $5, rev = $6 WHERE conversation_id = $1 AND seq = $2 AND NOT deleted RETURNING ${messageColumns}`,
      [input.conversationId, input.seq, input.text, metaToText(input.meta), input.now]);
  }

  deleteMessage(input: { conversationId: string; seq: number; now: number }): Promise<Message | null> {
    return this.stampedMessageChange(input.conversationId,
      `UPDATE messages SET deleted = true, text = '', meta = NULL, edited_at = $3, rev = $4 WHERE conversation_id = $1 AND seq = $2 AND NOT deleted RETURNING ${messageColumns}`,
      [input.conversationId, input.seq, input.now]);
  }

  /**
   * A change of one message stamped with the conversation's next rev: the rev is taken (locking the conversation row)
   * and given back by rolling back if no message changed, so a rev names exactly one change. `sql` takes the rev as its
   * last parameter.
   */
  private stampedMessageChange(conversationId: string, sql: string, params: unknown[]): Promise<Message | null> {
    return this.write(async (db) => {
      const rev = await nextRev(db, conversationId);
      if (rev === null) return null;
      const row = await first<MessageRow>(db, sql, [...params, rev]);
      if (!row) throw new NoChange();
      return toMessage(row);
    }).catch((err: unknown) => {
      if (err instanceof NoChange) return null;
      throw err;
    });
  }

  async messagesAfter(conversationId: string, afterSeq: number, limit: number): Promise<Message[]> {
    return (await this.query<MessageRow>(`SELECT ${messageColumns} FROM messages WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
      [conversationId, afterSeq, limit])).map(toMessage);
  }

  async messagesAfterMany(requests: ReadonlyArray<{ conversationId: string; afterSeq: number }>, limit: number): Promise<Message[][]> {
    if (requests.length === 0) return [];
    // One round trip: each request's page through the (conversation_id, seq) primary key, tagged with its position.
    const rows = await this.query<MessageRow & { request: number }>(
      `SELECT w.request, m.* FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS w(conversation_id, after_seq, request)
         CROSS JOIN LATERAL (SELECT ${messageColumns} FROM messages
           WHERE conversation_id = w.conversation_id AND seq > w.after_seq ORDER BY seq LIMIT $3) m
        ORDER BY w.request, m.seq`,
      [requests.map((r) => r.conversationId), requests.map((r) => r.afterSeq), limit]);
    const pages: Message[][] = requests.map(() => []);
    for (const row of rows) pages[row.request - 1]!.push(toMessage(row));
    return pages;
  }

  async messagesBefore(conversationId: string, beforeSeq: number | null, limit: number): Promise<Message[]> {
    return (await this.query<MessageRow>(`SELECT ${messageColumns} FROM messages WHERE conversation_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3`,
      [conversationId, beforeSeq ?? Number.MAX_SAFE_INTEGER, limit])).map(toMessage).reverse();
  }

  async messagesBeforeTime(conversationId: string, beforeTime: number, limit: number): Promise<Message[]> {
    // One query on messages_time; created_at never decreases along seq, so this order is seq order.
    return (await this.query<MessageRow>(
      `SELECT ${messageColumns} FROM messages WHERE conversation_id = $1 AND created_at < $2 ORDER BY created_at DESC, seq DESC LIMIT $3`,
      [conversationId, beforeTime, limit])).map(toMessage).reverse();
  }

  // ---- change catch-up

  async changesSince(conversationId: string, sinceRev: number, limit: number): Promise<Change[]> {
    // One snapshot for the three parts, so a change committed between them cannot be half seen.
    const [messages, members, departures] = await this.pool.transaction(async (db) => {
      await db.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      return [
        (await db.query<MessageRow & { rev: number }>(
          `SELECT ${messageColumns}, rev FROM messages WHERE conversation_id = $1 AND rev > 0 AND rev > $2 ORDER BY rev LIMIT $3`,
          [conversationId, sinceRev, limit])).rows,
        (await db.query<MemberRow & { rev: number }>(
          `SELECT m.user_id, u.name, m.role, m.joined_at, m.read_seq, m.rev FROM members m JOIN users u ON u.id = m.user_id
           WHERE m.conversation_id = $1 AND m.rev > 0 AND m.rev > $2 ORDER BY m.rev LIMIT $3`, [conversationId, sinceRev, limit])).rows,
        (await db.query<{ user_id: string; rev: number }>(
          'SELECT user_id, rev FROM departures WHERE conversation_id = $1 AND rev > $2 ORDER BY rev LIMIT $3', [conversationId, sinceRev, limit])).rows,
      ] as const;
    });
    // The first `limit` of the union lie within the first `limit` of each part.
    const changes: Change[] = [
      ...messages.map((r): Change => ({ rev: r.rev, kind: 'message', message: toMessage(r) })),
      ...members.map((r): Change => ({ rev: r.rev, kind: 'member', member: toMember(r) })),
      ...departures.map((r): Change => ({ rev: r.rev, kind: 'left', userId: r.user_id })),
    ];
    return changes.sort((a, b) => a.rev - b.rev).slice(0, limit);
  }

  // ---- read state

  markRead(conversationId: string, userId: string, seq: number): Promise<{ readSeq: number; unread: number; moved: boolean } | null> {
    return this.write(async (db) => {
      const conversation = await lockConversation(db, conversationId);
      if (!conversation) return null;
      const before = await first<{ read_seq: number }>(db, 'SELECT read_seq FROM members WHERE conversation_id = $1 AND user_id = $2', [conversationId, userId]);
      if (!before) return null;
      // GREATEST: the cursor never moves back, whatever was read above.
      const after = await requireRow<{ read_seq: number }>(db,
        `UPDATE members SET read_seq = greatest(read_seq, least($3::bigint, $4::bigint)) WHERE conversation_id = $1 AND user_id = $2 RETURNING read_seq`,
        [conversationId, userId, seq, conversation.last_seq]);
      const moved = after.read_seq > before.read_seq;
      if (moved) await stampMember(db, conversationId, userId);
      return { readSeq: after.read_seq, unread: conversation.last_seq - after.read_seq, moved };
    });
  }
}

/** Thrown inside a transaction to roll back a rev that named no change. */
class NoChange extends Error {}

// ---- helpers that run inside a caller's transaction

async function first<R extends object>(db: Queryable, sql: string, params: unknown[]): Promise<R | null> {
  return ((await db.query<R & Record<string, unknown>>(sql, params)).rows[0] as R | undefined) ?? null;
}

async function requireRow<R extends object>(db: Queryable, sql: string, params: unknown[]): Promise<R> {
  const row = await first<R>(db, sql, params);
  if (!row) throw new Error('a row vanished inside its own transaction');
  return row;
}

function mapOrNull<R, T>(row: R | null, map: (row: R) => T): T | null {
  return row === null ? null : map(row);
}

/** Lock the conversation row (its counter, member count and rev) for this transaction; null if there is none. */
function lockConversation(db: Queryable, id: string): Promise<{ last_seq: number; member_count: number } | null> {
  return first(db, 'SELECT last_seq, member_count FROM conversations WHERE id = $1 FOR NO KEY UPDATE', [id]);
}

/** Lock user rows in id order: the membership counts of those users hold still until commit. */
async function lockUsers(db: Queryable, ids: string[]): Promise<void> {
  await db.query('SELECT 1 FROM users WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE', [[...ids].sort()]);
}

/** LIMIT_EXCEEDED if a user already has `max` conversations (no check when undefined); locks the users first. */
async function requireRoomForConversations(db: Queryable, userIds: string[], max: number | undefined, lock = true, who = 'a user'): Promise<void> {
  if (max === undefined) return;
  if (lock) await lockUsers(db, userIds);
  for (const userId of userIds) {
    const n = (await first<{ n: number }>(db, 'SELECT count(*) AS n FROM members WHERE user_id = $1', [userId]))?.n ?? 0;
    if (n >= max) throw new ParleyError('LIMIT_EXCEEDED', `${who} may belong to at most ${max} conversations`);
  }
}

async function insertConversation(db: Queryable, row: {
  id: string; kind: string; name: string | null; visibility: string; createdBy: string; now: number; memberCount: number; directKey: string | null;
}): Promise<void> {
  const inserted = await db.query(
    `INSERT INTO conversations (id, kind, name, visibility, created_by, created_at, member_count, direct_key)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
    [row.id, row.kind, row.name, row.visibility, row.createdBy, row.now, row.memberCount, row.directKey]);
  if (!inserted.rowCount) throw new ParleyError('CONFLICT', 'A conversation with this id exists');
}

async function requireConversation(db: Queryable, id: string): Promise<Conversation> {
  return toConversation(await requireRow<ConversationRow>(db, `SELECT ${conversationColumns} FROM conversations c WHERE c.id = $1`, [id]));
}

async function requireMember(db: Queryable, conversationId: string, userId: string): Promise<Member> {
  return toMember(await requireRow<MemberRow>(db, `${memberSelect} WHERE m.conversation_id = $1 AND m.user_id = $2`, [conversationId, userId]));
}

/** The conversation's next rev (one change), or null if there is no such conversation. Locks the conversation row. */
async function nextRev(db: Queryable, conversationId: string): Promise<number | null> {
  return (await first<{ rev: number }>(db, 'UPDATE conversations SET rev = rev + 1 WHERE id = $1 RETURNING rev', [conversationId]))?.rev ?? null;
}

async function stampMember(db: Queryable, conversationId: string, userId: string): Promise<void> {
  const rev = await nextRev(db, conversationId);
  await db.query('UPDATE members SET rev = $3 WHERE conversation_id = $1 AND user_id = $2', [conversationId, userId, rev]);
}

/** Remove a membership under the conversation's lock: member count, departure at a new rev. */
async function removeMembership(db: Queryable, conversationId: string, userId: string): Promise<Removal> {
  const deleted = await db.query('DELETE FROM members WHERE conversation_id = $1 AND user_id = $2', [conversationId, userId]);
  if (!deleted.rowCount) return { removed: false };
  const counted = await first<{ member_count: number }>(db, 'UPDATE conversations SET member_count = member_count - 1 WHERE id = $1 RETURNING member_count', [conversationId]);
  // A departure like a kick's, so members who were away learn it from sync.
  const rev = await nextRev(db, conversationId);
  await db.query(
    `INSERT INTO departures (conversation_id, user_id, rev) VALUES ($1, $2, $3)
     ON CONFLICT (conversation_id, user_id) DO UPDATE SET rev = excluded.rev`, [conversationId, userId, rev]);
  return { removed: true, memberCount: Number(counted?.member_count ?? 0) };
}

/** The body of addMember: conversation row locked first (member_count), then the user's (their membership count). */
async function addMemberNow(db: Queryable, input: { conversationId: string; userId: string; role: Role; now: number; maxMembers: number; maxConversations?: number }): Promise<AddMemberResult> {
  const conversation = await lockConversation(db, input.conversationId);
  if (!conversation) return { status: 'no_conversation' };
  const existing = await first<MemberRow>(db, `${memberSelect} WHERE m.conversation_id = $1 AND m.user_id = $2`, [input.conversationId, input.userId]);
  if (existing) return { status: 'exists', member: toMember(existing) };
  if (await first(db, 'SELECT 1 AS one FROM conversation_bans WHERE conversation_id = $1 AND user_id = $2', [input.conversationId, input.userId])) return { status: 'banned' };
  if (conversation.member_count >= input.maxMembers) return { status: 'full' };
  await requireRoomForConversations(db, [input.userId], input.maxConversations);
  const rev = await nextRev(db, input.conversationId);
  await db.query('INSERT INTO members (conversation_id, user_id, role, joined_at, read_seq, rev) VALUES ($1, $2, $3, $4, $5, $6)',
    [input.conversationId, input.userId, input.role, input.now, conversation.last_seq, rev]);
  await db.query('UPDATE conversations SET member_count = member_count + 1 WHERE id = $1', [input.conversationId]);
  await db.query('DELETE FROM departures WHERE conversation_id = $1 AND user_id = $2', [input.conversationId, input.userId]);
  // The conversation row is locked since lockConversation: its count cannot change in between.
  return { status: 'added', member: await requireMember(db, input.conversationId, input.userId), memberCount: Number(conversation.member_count) + 1 };
}

/**
 * An account name is taken when its key or its confusables skeleton matches an account's; a free name that mixes
 * look-alike scripts is refused (INVALID_REQUEST, details like a schema error's). Run under ACCOUNT_NAMES_LOCK.
 */
async function requireFreeAccountName(db: Queryable, name: string): Promise<void> {
  if (await first(db, 'SELECT 1 AS one FROM users WHERE name_key = $1 AND password_hash IS NOT NULL', [usernameKey(name)])) {
    throw new ParleyError('ACCOUNT_EXISTS', 'An account with this username already exists (names are compared after NFKC and case folding)', { reason: 'taken' });
  }
  if (await first(db, 'SELECT 1 AS one FROM users WHERE (name_skeleton = $1 OR name_folded_skeleton = $2) AND password_hash IS NOT NULL LIMIT 1',
    [usernameSkeleton(name), usernameFoldedSkeleton(name)])) {
    throw new ParleyError('ACCOUNT_EXISTS', 'This username looks like an existing account\'s (confusable characters); choose another', { reason: 'confusable' });
  }
  // After the look-alike check, so that a mixed-script copy of an existing name is answered as the copy it is.
  const scripts = usernameScriptProblem(name);
  if (scripts) throw new ParleyError('INVALID_REQUEST', scripts, [{ path: 'username', message: scripts }]);
}

/** Why an invite cannot be redeemed at `now`, or null if it can. */
function inviteRefusal(invite: Invite | null, now: number): 'invalid' | 'revoked' | 'expired' | 'exhausted' | null {
  if (!invite) return 'invalid';
  if (invite.revoked) return 'revoked';
  if (invite.expiresAt !== null && now >= invite.expiresAt) return 'expired';
  if (invite.maxUses !== null && invite.uses >= invite.maxUses) return 'exhausted';
  return null;
}
