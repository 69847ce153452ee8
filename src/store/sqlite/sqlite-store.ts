/**
 * The embedded store engine: the Store seam over one SQLite file (better-sqlite3, WAL).
 *
 * better-sqlite3 is synchronous, so every write below is committed by the time its promise exists; each method still
 * returns a promise so callers are engine-neutral. Appends go through group commit (see append.ts): all appends of
 * one event-loop turn share one transaction and one fsync.
 */
import type Database from 'better-sqlite3';
import { ParleyError } from '../../protocol/errors.js';
import type { Ban, StoredChange as Change, Conversation, ConversationPosition, Invite, Member, StoredMessage as Message, MyConversation, Role, Visibility } from '../../protocol/types.js';
import { usernameFoldedSkeleton, usernameKey, usernameScriptProblem, usernameSkeleton } from '../../protocol/usernames.js';
import { SEARCH_CANDIDATES, SUBSTRING_QUERY_MIN, foldForSearch, searchFoldSignature } from '../search-text.js';
import { type AddMemberResult, type DeleteConversationResult, type InstanceClaimRequest, type NewMessage, type NewUser, type RedeemResult, type Removal, type Store, type UserRecord, differingSettings } from '../store.js';
import { type AppendResult, type QueuedAppend, createAppendBatch } from './append.js';
import { closedError, toParleyError } from './errors.js';
import { GroupCommit } from './group-commit.js';
import { LockWait, defaultBusyTimeoutMs } from './lock-wait.js';
import { migrate } from './migrate.js';
import { type OpenOptions, openDatabase } from './open.js';
import {
  type MessageRow, metaToText, toBan, toConversation, toInvite, toMember, toMembership, toMessage, toMyConversation, toUser,
} from './rows.js';
import { type Statements, prepareStatements } from './statements.js';
import { type InstanceRow, isAlive, thisProcess } from './instances.js';
import { randomUUID } from 'node:crypto';
import { groupByUser } from '../user-batches.js';

export type SqliteStoreOptions = OpenOptions;

export function createSqliteStore(options: SqliteStoreOptions): Store {
  return new SqliteStore(options);
}

// 'PRLY': marks the file as Parley's (`PRAGMA application_id`), and is what ping() writes.
const parleyApplicationId = 0x50524c59;

// Sorts below every real id, so "after" paging can always bind a string.
const beforeAllIds = '';

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private statements: Statements | null = null;
  private appends: GroupCommit<QueuedAppend, AppendResult> | null = null;
  private readonly lockWait: LockWait;
  private readonly maxQueuedWrites: number;

  constructor(options: SqliteStoreOptions) {
    this.db = openDatabase(options);
    this.maxQueuedWrites = options.maxQueuedWrites ?? Number.POSITIVE_INFINITY;
    this.lockWait = new LockWait(this.db, options.busyTimeoutMs ?? defaultBusyTimeoutMs);
  }

  // Prepared lazily: statements can only be prepared once migrate() has created the tables.
  /** This store's registration in `instances` (claimInstance), removed by close(). */
  private instanceId: string | null = null;

  private get s(): Statements {
    if (!this.db.open) throw closedError();
    return (this.statements ??= prepareStatements(this.db));
  }

  private get appendQueue(): GroupCommit<QueuedAppend, AppendResult> {
    return (this.appends ??= new GroupCommit(createAppendBatch(this.db, this.s), (err) => this.engineError(err), undefined, this.maxQueuedWrites));
  }

  /** Run synchronous work, turning a throw into a rejection with engine errors mapped. */
  private run<T>(work: () => T): Promise<T> {
    try {
      if (!this.db.open) throw closedError();
      return Promise.resolve(work());
    } catch (err) {
      return Promise.reject(this.engineError(err));
    }
  }

  private engineError(err: unknown): unknown {
    this.lockWait.noteError(err);
    return toParleyError(err);
  }

  /** Run work in an immediate write transaction (taking the write lock up front avoids lock-upgrade failures). */
  private write<T>(work: () => T): Promise<T> {
    return this.run(() => {
      const result = this.db.transaction(work).immediate();
      this.lockWait.noteCommit();
      return result;
    });
  }

  migrate(): Promise<void> {
    return this.run(() => {
      migrate(this.db);
      this.refoldGroupNames();
    });
  }

  /**
   * Bring every folded group name up to foldForSearch when the names were folded under another signature (the
   * migration's backfill folded ASCII only; a newer Node may fold differently). Reading every name costs ~1 s per
   * 200,000 groups, so a start whose signature matches skips it.
   */
  private refoldGroupNames(): void {
    const signature = searchFoldSignature();
    if (this.s.storeMeta.get('group_names_fold')?.value === signature) return;
    this.db.transaction(() => {
      // Checked again inside: another process may have refolded since.
      if (this.s.storeMeta.get('group_names_fold')?.value === signature) return;
      for (const row of this.s.groupNames.all()) {
        const folded = foldForSearch(row.name);
        if (folded !== row.folded) this.s.setGroupName.run(folded, row.conversation_id);
      }
      this.s.setStoreMeta.run('group_names_fold', signature);
    }).immediate();
  }

  storeId(): Promise<string> {
    return this.write(() => {
      this.db.prepare("INSERT INTO store_meta (key, value) VALUES ('store_id', ?) ON CONFLICT (key) DO NOTHING").run(randomUUID());
      return this.s.storeMeta.get('store_id')!.value;
    });
  }

  ping(): Promise<void> {
    return this.run(() => {
      this.s.ping.get();
      // A committed write, not a read: a full disk or read-only file still answers reads. Setting the header's
      // application id (to the same value each time) writes one page and changes no data.
      this.db.pragma(`application_id = ${parleyApplicationId}`);
      this.lockWait.noteCommit();
    });
  }

  claimInstance(claim: InstanceClaimRequest): Promise<void> {
    return this.write(() => {
      const rows = this.db.prepare('SELECT * FROM instances').all() as InstanceRow[];
      const others: InstanceRow[] = [];
      for (const row of rows) {
        if (isAlive(row)) others.push(row);
        else this.db.prepare('DELETE FROM instances WHERE id = ?').run(row.id);
      }
      const names = others.map((o) => {
        const shown = o.description.replace(/ \[settings \w+\]$/, '');
        return `${shown} (${shown.includes(`pid ${o.pid}`) ? '' : `pid ${o.pid} `}on ${o.host}${o.sole ? ', sole' : ''})`;
      });
      if (others.length > 0 && (claim.sole || others.some((o) => o.sole === 1))) {
        throw new ParleyError('CONFLICT', `other instances use this store: ${names.join('; ')}`, { others: names });
      }
      // The settings fingerprint rides at the end of the description column: `… [settings <fingerprint>]`.
      const otherSettings = differingSettings(claim.settings, others.map((o) => /\[settings (\w+)\]$/.exec(o.description)?.[1] ?? null));
      if (otherSettings.length > 0) {
        throw new ParleyError('CONFLICT', `instances with other settings use this store: ${names.join('; ')}`, { others: names, settingsDiffer: true, otherSettings });
      }
      const me = thisProcess();
      const id = randomUUID();
      this.db.prepare('INSERT INTO instances (id, host, pid, pid_started, sole, description, since) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(id, me.host, me.pid, me.pidStarted, claim.sole ? 1 : 0, claim.settings ? `${claim.description} [settings ${claim.settings}]` : claim.description, Date.now());
      this.instanceId = id;
    });
  }

  close(): Promise<void> {
    if (!this.db.open) return Promise.resolve();
    return this.run(() => {
      // Appends already queued were promised a commit; give it to them before closing.
      this.appends?.flushAll();
      if (this.instanceId !== null) {
        // Best effort: a registration left behind is found stale by the next claim anyway.
        try {
          this.db.prepare('DELETE FROM instances WHERE id = ?').run(this.instanceId);
        } catch {
          /* the file may be read-only or full now */
        }
        this.instanceId = null;
      }
      this.db.close();
    });
  }

  // ---- users

  createUser(user: NewUser): Promise<UserRecord> {
    return this.write(() => {
      if (this.s.userById.get(user.id)) throw new ParleyError('CONFLICT', 'A user with this id exists');
      if (user.passwordHash !== null) this.requireFreeAccountName(user.name);
      this.s.insertUser.run(user.id, user.name, user.passwordHash, user.isAdmin ? 1 : 0, user.now, user.passwordHash === null ? 'product' : 'builtin');
      if (user.passwordHash !== null) this.s.setNameKeys.run(usernameKey(user.name), usernameSkeleton(user.name), usernameFoldedSkeleton(user.name), user.id);
      return this.requireUser(user.id);
    });
  }

  /**
   * An account name is taken when its key, its confusables skeleton or (for accounts older than 004) its name matches;
   * a free name that mixes look-alike scripts is refused (INVALID_REQUEST, details like a schema error's).
   */
  private requireFreeAccountName(name: string): void {
    if (this.s.accountByNameKey.get(usernameKey(name)) || this.s.userByName.get(name)) {
      throw new ParleyError('ACCOUNT_EXISTS', 'An account with this username already exists (names are compared after NFKC and case folding)', { reason: 'taken' });
    }
    if (this.s.accountByNameSkeleton.get(usernameSkeleton(name), usernameFoldedSkeleton(name))) {
      throw new ParleyError('ACCOUNT_EXISTS', 'This username looks like an existing account\'s (confusable characters); choose another', { reason: 'confusable' });
    }
    // After the look-alike check, so that a mixed-script copy of an existing name is answered as the copy it is.
    const scripts = usernameScriptProblem(name);
    if (scripts) throw new ParleyError('INVALID_REQUEST', scripts, [{ path: 'username', message: scripts }]);
  }

  ensureUser(id: string, name: string | null, now: number): Promise<UserRecord> {
    return this.write(() => {
      const row = this.s.userById.get(id);
      // A built-in account is never renamed from a token: its name is its login name.
      if (row && (name === null || name === row.name || row.origin === 'builtin')) return toUser(row);
      // A nameless newcomer is shown by id until a name arrives.
      if (row) this.s.renameUser.run(name ?? row.name, id);
      else this.s.insertUser.run(id, name ?? id, null, 0, now, 'product');
      return this.requireUser(id);
    });
  }

  upsertProductUser(input: { id: string; name: string; metadata: unknown | null | undefined; now: number }): Promise<{ user: UserRecord; created: boolean }> {
    return this.write(() => {
      const row = this.s.userById.get(input.id);
      if (row?.origin === 'builtin') throw new ParleyError('CONFLICT', 'this id belongs to a built-in account; only product users can be upserted');
      if (row) this.s.renameUser.run(input.name, input.id);
      else this.s.insertUser.run(input.id, input.name, null, 0, input.now, 'product');
      if (input.metadata !== undefined) this.s.setUserMetadata.run(metaToText(input.metadata), input.id);
      return { user: this.requireUser(input.id), created: !row };
    });
  }

  bumpTokenGeneration(userId: string): Promise<number | null> {
    return this.write(() => this.s.bumpTokenGeneration.get(userId)?.token_generation ?? null);
  }

  revokeSession(sessionId: string, expiresAt: number, now: number): Promise<void> {
    return this.write(() => {
      this.s.forgetExpiredRevocations.run(now);
      this.s.revokeSession.run(sessionId, expiresAt);
    });
  }

  isSessionRevoked(sessionId: string): Promise<boolean> {
    return this.run(() => this.s.isSessionRevoked.get(sessionId) !== undefined);
  }

  private requireUser(id: string): UserRecord {
    const row = this.s.userById.get(id);
    if (!row) throw new Error(`user ${id} vanished inside its own transaction`);
    return toUser(row);
  }

  getUser(id: string): Promise<UserRecord | null> {
    return this.run(() => mapOrNull(this.s.userById.get(id), toUser));
  }

  getUserByName(name: string): Promise<UserRecord | null> {
    // A pre-004 account that lost its key to an older one is found by its exact name first; otherwise by key.
    return this.run(() => mapOrNull(this.s.legacyAccountByName.get(name) ?? this.s.accountByNameKey.get(usernameKey(name)), toUser));
  }

  listUsers(opts: { limit: number; afterId?: string }): Promise<UserRecord[]> {
    return this.run(() => this.s.listUsers.all(opts.afterId ?? beforeAllIds, opts.limit).map(toUser));
  }

  setBanned(id: string, banned: boolean): Promise<boolean> {
    return this.write(() => this.s.setBanned.run(banned ? 1 : 0, id).changes > 0);
  }

  setLastSeen(id: string, at: number): Promise<void> {
    return this.write(() => {
      this.s.setLastSeen.run(at, id);
    });
  }

  setLastSeenMany(entries: ReadonlyArray<{ userId: string; at: number }>): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    return this.write(() => {
      for (const { userId, at } of entries) this.s.setLastSeen.run(at, userId);
    });
  }

  // ---- conversations

  createGroup(input: { id: string; name: string; visibility: Visibility; createdBy: string; now: number; maxConversations?: number }): Promise<Conversation> {
    return this.write(() => {
      this.requireRoomForConversation(input.createdBy, input.maxConversations);
      this.insertConversation({ ...input, kind: 'group', memberCount: 1, directKey: null });
      this.s.insertMember.run(input.id, input.createdBy, 'owner', input.now, 0);
      if (input.visibility === 'public') this.s.insertGroupName.run(input.id, foldForSearch(input.name));
      return this.requireConversation(input.id);
    });
  }

  openDirect(input: { id: string; a: string; b: string; now: number; maxConversations?: number }): Promise<{ conversation: Conversation; created: boolean }> {
    return this.write(() => {
      const pair = [...new Set([input.a, input.b])].sort();
      const directKey = JSON.stringify(pair);
      const existing = this.s.conversationByDirectKey.get(directKey);
      if (existing) return { conversation: toConversation(existing), created: false };
      this.requireRoomForConversation(input.a, input.maxConversations);
      if (input.b !== input.a) this.requireRoomForConversation(input.b, input.maxConversations, 'the other user');
      this.insertConversation({
        id: input.id, kind: 'direct', name: null, visibility: 'private', createdBy: input.a, now: input.now,
        memberCount: pair.length, directKey,
      });
      for (const userId of pair) this.s.insertMember.run(input.id, userId, 'member', input.now, 0);
      return { conversation: this.requireConversation(input.id), created: true };
    });
  }

  /** Inside a write transaction: LIMIT_EXCEEDED if the user already has `max` conversations (no check when undefined). */
  private requireRoomForConversation(userId: string, max: number | undefined, who = 'a user'): void {
    if (max === undefined) return;
    if ((this.s.countMemberships.get(userId)?.n ?? 0) >= max) {
      throw new ParleyError('LIMIT_EXCEEDED', `${who} may belong to at most ${max} conversations`);
    }
  }

  private insertConversation(row: Parameters<Statements['insertConversation']['run']>[0]): void {
    if (this.s.conversationById.get(row.id)) throw new ParleyError('CONFLICT', 'A conversation with this id exists');
    this.s.insertConversation.run(row);
  }

  private requireConversation(id: string): Conversation {
    const row = this.s.conversationById.get(id);
    if (!row) throw new Error(`conversation ${id} vanished inside its own transaction`);
    return toConversation(row);
  }

  getConversation(id: string): Promise<Conversation | null> {
    return this.run(() => mapOrNull(this.s.conversationById.get(id), toConversation));
  }

  getMyConversation(id: string, userId: string): Promise<MyConversation | null> {
    return this.run(() => mapOrNull(this.s.myConversation.get(userId, id), toMyConversation));
  }

  listMyConversations(userId: string, page?: { after?: { activityAt: number; id: string }; limit: number }): Promise<MyConversation[]> {
    if (!page) return this.run(() => this.s.myConversations.all(userId).map(toMyConversation));
    const after = page.after ?? { activityAt: Number.MAX_SAFE_INTEGER, id: beforeAllIds };
    return this.run(() => this.s.myConversationsPage.all(userId, after.activityAt, after.activityAt, after.id, page.limit).map(toMyConversation));
  }

  listConversationIds(userId: string): Promise<string[]> {
    return this.run(() => this.s.conversationIdsOf.all(userId).map((r) => r.conversation_id));
  }

  listPresenceConversations(userIds: readonly string[], maxGroupSize: number): Promise<string[][]> {
    if (userIds.length === 0) return Promise.resolve([]);
    return this.run(() => groupByUser(userIds, this.s.presenceConversations.all(JSON.stringify(userIds), maxGroupSize)));
  }

  listPositions(userId: string): Promise<ConversationPosition[]> {
    return this.run(() => this.s.positionsOf.all(userId).map((r) => ({ id: r.id, lastSeq: r.last_seq, rev: r.rev, readSeq: r.read_seq })));
  }

  countMemberships(userId: string): Promise<number> {
    return this.run(() => this.s.countMemberships.get(userId)?.n ?? 0);
  }

  searchPublic(query: string, limit: number): Promise<Conversation[]> {
    return this.run(() => {
      const folded = foldForSearch(query);
      const length = [...folded].length;
      const candidates = Math.max(SEARCH_CANDIDATES, limit);
      const rows = length === 0
        ? this.s.publicGroupsByName.all(limit)
        : length < SUBSTRING_QUERY_MIN
          ? this.s.searchGroupsStarting.all(folded, `${folded}\u{10FFFF}`, candidates, limit)
          : this.s.searchGroupsContaining.all(ftsExpression(folded), folded, candidates, limit);
      return rows.map(toConversation);
    });
  }

  listConversations(opts: { limit: number; afterId?: string }): Promise<Conversation[]> {
    return this.run(() => this.s.listConversations.all(opts.afterId ?? beforeAllIds, opts.limit).map(toConversation));
  }

  renameConversation(id: string, name: string): Promise<Conversation | null> {
    return this.write(() => {
      if (this.s.renameConversation.run(name, id).changes === 0) return null;
      this.s.setGroupName.run(foldForSearch(name), id);
      this.bumpRev(id);
      return this.requireConversation(id);
    });
  }

  deleteConversation(id: string): Promise<boolean> {
    // Members, invites and messages go with it through ON DELETE CASCADE, in the same transaction.
    return this.write(() => this.s.deleteConversation.run(id).changes > 0);
  }

  deleteConversationWithMembers(input: { id: string; onlyMember?: string }): Promise<DeleteConversationResult> {
    return this.write((): DeleteConversationResult => {
      if (!this.s.conversationById.get(input.id)) return { status: 'not_found' };
      const memberIds = this.s.memberIds.all(input.id).map((r) => r.user_id);
      if (input.onlyMember !== undefined) {
        if (!memberIds.includes(input.onlyMember)) return { status: 'not_found' };
        if (memberIds.length > 1) return { status: 'others_remain' };
      }
      this.s.deleteConversation.run(input.id);
      return { status: 'deleted', memberIds };
    });
  }

  // ---- members

  getMember(conversationId: string, userId: string): Promise<Member | null> {
    return this.run(() => mapOrNull(this.s.member.get(conversationId, userId), toMember));
  }

  getMembership(conversationId: string, userId: string): Promise<{ conversation: Conversation; member: Member } | null> {
    return this.run(() => mapOrNull(this.s.membership.get(conversationId, userId), toMembership));
  }

  listMembers(conversationId: string, page?: { after?: { joinedAt: number; userId: string }; limit: number }): Promise<Member[]> {
    if (!page) return this.run(() => this.s.members.all(conversationId).map(toMember));
    const after = page.after ?? { joinedAt: Number.MIN_SAFE_INTEGER, userId: beforeAllIds };
    return this.run(() => this.s.membersPage.all(conversationId, after.joinedAt, after.userId, page.limit).map(toMember));
  }

  listMemberIds(conversationId: string): Promise<string[]> {
    return this.run(() => this.s.memberIds.all(conversationId).map((r) => r.user_id));
  }

  addMember(input: { conversationId: string; userId: string; role: Role; now: number; maxMembers: number; maxConversations?: number }): Promise<AddMemberResult> {
    return this.write(() => this.addMemberNow(input));
  }

  /** The body of addMember, to run inside a caller's transaction. */
  private addMemberNow(input: { conversationId: string; userId: string; role: Role; now: number; maxMembers: number; maxConversations?: number }): AddMemberResult {
    const conversation = this.s.conversationById.get(input.conversationId);
    if (!conversation) return { status: 'no_conversation' };
    const existing = this.s.member.get(input.conversationId, input.userId);
    if (existing) return { status: 'exists', member: toMember(existing) };
    if (this.s.isBanned.get(input.conversationId, input.userId)) return { status: 'banned' };
    if (conversation.member_count >= input.maxMembers) return { status: 'full' };
    this.requireRoomForConversation(input.userId, input.maxConversations);
    this.s.insertMember.run(input.conversationId, input.userId, input.role, input.now, conversation.last_seq);
    this.s.addMemberCount.run(1, input.conversationId);
    this.s.forgetDeparture.run(input.conversationId, input.userId);
    this.s.stampMember.run(this.bumpRev(input.conversationId), input.conversationId, input.userId);
    // Read before the insert in this write transaction: nothing else changes the count in between.
    return { status: 'added', member: this.requireMember(input.conversationId, input.userId), memberCount: conversation.member_count + 1 };
  }

  private requireMember(conversationId: string, userId: string): Member {
    const row = this.s.member.get(conversationId, userId);
    if (!row) throw new Error(`member ${userId} of ${conversationId} vanished inside its own transaction`);
    return toMember(row);
  }

  removeMember(conversationId: string, userId: string): Promise<Removal> {
    return this.write(() => this.removeMemberNow(conversationId, userId));
  }

  /** The body of removeMember and banMember's removal, inside the caller's transaction. */
  private removeMemberNow(conversationId: string, userId: string): Removal {
    if (this.s.deleteMember.run(conversationId, userId).changes === 0) return { removed: false };
    this.s.addMemberCount.run(-1, conversationId);
    // A departure like a kick's, so members who were away learn it from sync.
    this.s.recordDeparture.run(conversationId, userId, this.bumpRev(conversationId));
    return { removed: true, memberCount: this.s.conversationById.get(conversationId)?.member_count ?? 0 };
  }

  setRole(conversationId: string, userId: string, role: Role): Promise<Member | null> {
    return this.write(() => {
      if (this.s.setRole.run(role, conversationId, userId).changes === 0) return null;
      this.s.stampMember.run(this.bumpRev(conversationId), conversationId, userId);
      return this.requireMember(conversationId, userId);
    });
  }

  banMember(input: { conversationId: string; userId: string; by: string; now: number }): Promise<Removal> {
    return this.write(() => {
      this.s.insertBan.run(input.conversationId, input.userId, input.by, input.now);
      return this.removeMemberNow(input.conversationId, input.userId);
    });
  }

  unbanMember(conversationId: string, userId: string): Promise<boolean> {
    return this.write(() => this.s.deleteBan.run(conversationId, userId).changes > 0);
  }

  listBans(conversationId: string, page?: { after?: { bannedAt: number; userId: string }; limit: number }): Promise<Ban[]> {
    if (!page) return this.run(() => this.s.bans.all(conversationId).map(toBan));
    const after = page.after ?? { bannedAt: Number.MIN_SAFE_INTEGER, userId: beforeAllIds };
    return this.run(() => this.s.bansPage.all(conversationId, after.bannedAt, after.userId, page.limit).map(toBan));
  }

  listContacts(userId: string): Promise<string[]> {
    return this.run(() => this.s.contacts.all(userId, userId).map((r) => r.user_id));
  }

  // ---- invites

  createInvite(invite: Omit<Invite, 'uses' | 'revoked'>): Promise<Invite> {
    return this.write(() => {
      if (this.s.invite.get(invite.token)) throw new ParleyError('CONFLICT', 'An invite with this token exists');
      this.s.insertInvite.run(
        invite.token, invite.conversationId, invite.createdBy, invite.createdAt, invite.expiresAt, invite.maxUses);
      return this.requireInvite(invite.token);
    });
  }

  private requireInvite(token: string): Invite {
    const row = this.s.invite.get(token);
    if (!row) throw new Error('invite vanished inside its own transaction');
    return toInvite(row);
  }

  getInvite(token: string): Promise<Invite | null> {
    return this.run(() => mapOrNull(this.s.invite.get(token), toInvite));
  }

  listInvites(conversationId: string, page?: { after?: { createdAt: number; token: string }; limit: number }): Promise<Invite[]> {
    if (!page) return this.run(() => this.s.invites.all(conversationId).map(toInvite));
    const after = page.after ?? { createdAt: Number.MIN_SAFE_INTEGER, token: beforeAllIds };
    return this.run(() => this.s.invitesPage.all(conversationId, after.createdAt, after.token, page.limit).map(toInvite));
  }

  revokeInvite(token: string): Promise<Invite | null> {
    return this.write(() => {
      if (this.s.revokeInvite.run(token).changes === 0) return null;
      return this.requireInvite(token);
    });
  }

  redeemInvite(input: { token: string; userId: string; now: number; maxMembers: number; maxConversations?: number }): Promise<RedeemResult> {
    return this.write((): RedeemResult => {
      const invite = mapOrNull(this.s.invite.get(input.token), toInvite);
      const refusal = inviteRefusal(invite, input.now);
      if (refusal || !invite) return { status: refusal ?? 'invalid' };
      const conversationId = invite.conversationId;
      const added = this.addMemberNow({
        conversationId, userId: input.userId, role: 'member', now: input.now, maxMembers: input.maxMembers, maxConversations: input.maxConversations,
      });
      switch (added.status) {
        case 'no_conversation': return { status: 'invalid' };
        case 'full': return { status: 'full' };
        case 'banned': return { status: 'banned' };
        case 'exists': return { status: 'already_member', member: added.member, conversationId };
        case 'added':
          this.s.useInvite.run(input.token);
          return { status: 'joined', member: added.member, conversationId, memberCount: added.memberCount };
      }
    });
  }

  // ---- messages

  appendMessage(input: NewMessage): Promise<{ message: Message; duplicate: boolean }> {
    try {
      if (!this.db.open) throw closedError();
      return this.appendQueue.submit({ ...input, metaText: metaToText(input.meta) }).then((result) => {
        this.lockWait.noteCommit();
        return result;
      });
    } catch (err) {
      return Promise.reject(toParleyError(err));
    }
  }

  getMessage(conversationId: string, seq: number): Promise<Message | null> {
    return this.run(() => mapOrNull(this.s.message.get(conversationId, seq), toMessage));
  }

  editMessage(input: { conversationId: string; seq: number; text: string; meta: unknown | null; now: number }): Promise<Message | null> {
    return this.write(() => this.stampedMessage(
      this.s.editMessage.get(input.text, metaToText(input.meta), input.now, input.conversationId, input.seq)));
  }

  deleteMessage(input: { conversationId: string; seq: number; now: number }): Promise<Message | null> {
    return this.write(() => this.stampedMessage(this.s.deleteMessage.get(input.now, input.conversationId, input.seq)));
  }

  /** Stamps a just-changed message with a new rev of its conversation (inside the change's transaction). */
  private stampedMessage(row: MessageRow | undefined): Message | null {
    if (!row) return null;
    this.s.stampMessage.run(this.bumpRev(row.conversation_id), row.conversation_id, row.seq);
    return toMessage(row);
  }

  /** One change of the conversation: its next rev. Call inside the change's write transaction. */
  private bumpRev(conversationId: string): number {
    const row = this.s.bumpRev.get(conversationId);
    if (!row) throw new Error(`conversation ${conversationId} vanished inside its own transaction`);
    return row.rev;
  }

  messagesAfter(conversationId: string, afterSeq: number, limit: number): Promise<Message[]> {
    return this.run(() => this.s.messagesAfter.all(conversationId, afterSeq, limit).map(toMessage));
  }

  messagesAfterMany(requests: ReadonlyArray<{ conversationId: string; afterSeq: number }>, limit: number): Promise<Message[][]> {
    // One call (one trip to the store thread), the reads in it one after another.
    return this.run(() => requests.map((r) => this.s.messagesAfter.all(r.conversationId, r.afterSeq, limit).map(toMessage)));
  }

  messagesBefore(conversationId: string, beforeSeq: number | null, limit: number): Promise<Message[]> {
    const below = beforeSeq ?? Number.MAX_SAFE_INTEGER;
    return this.run(() => this.s.messagesBefore.all(conversationId, below, limit).map(toMessage).reverse());
  }

  messagesBeforeTime(conversationId: string, beforeTime: number, limit: number): Promise<Message[]> {
    return this.run(() => {
      const below = this.firstSeqAtOrAfter(conversationId, beforeTime);
      return this.s.messagesBefore.all(conversationId, below, limit).map(toMessage).reverse();
    });
  }

  /** The first seq created at or after `time` (lastSeq + 1 if none): a binary search, as created_at follows seq. */
  private firstSeqAtOrAfter(conversationId: string, time: number): number {
    let low = 1;
    let high = (this.s.conversationById.get(conversationId)?.last_seq ?? 0) + 1;
    while (low < high) {
      const middle = Math.floor((low + high) / 2);
      const createdAt = this.s.createdAtOf.get(conversationId, middle)?.created_at ?? Number.POSITIVE_INFINITY;
      if (createdAt < time) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  // ---- change catch-up

  changesSince(conversationId: string, sinceRev: number, limit: number): Promise<Change[]> {
    return this.run(() => {
      // The first `limit` of the union lie within the first `limit` of each part.
      const changes: Change[] = [
        ...this.s.changedMessages.all(conversationId, sinceRev, limit).map((r): Change => ({ rev: r.rev, kind: 'message', message: toMessage(r) })),
        ...this.s.changedMembers.all(conversationId, sinceRev, limit).map((r): Change => ({ rev: r.rev, kind: 'member', member: toMember(r) })),
        ...this.s.departuresSince.all(conversationId, sinceRev, limit).map((r): Change => ({ rev: r.rev, kind: 'left', userId: r.user_id })),
      ];
      return changes.sort((a, b) => a.rev - b.rev).slice(0, limit);
    });
  }

  // ---- read state

  markRead(conversationId: string, userId: string, seq: number): Promise<{ readSeq: number; unread: number; moved: boolean } | null> {
    return this.write(() => {
      const cursor = this.s.readCursor.get(conversationId, userId);
      if (!cursor) return null;
      const target = Math.min(seq, cursor.last_seq);
      const moved = target > cursor.read_seq;
      if (moved) {
        this.s.setReadSeq.run(target, conversationId, userId);
        this.s.stampMember.run(this.bumpRev(conversationId), conversationId, userId);
      }
      const readSeq = moved ? target : cursor.read_seq;
      return { readSeq, unread: cursor.last_seq - readSeq, moved };
    });
  }
}

function mapOrNull<R, T>(row: R | undefined, map: (row: R) => T): T | null {
  return row === undefined ? null : map(row);
}

/** Why an invite cannot be redeemed at `now`, or null if it can. */
function inviteRefusal(invite: Invite | null, now: number): 'invalid' | 'revoked' | 'expired' | 'exhausted' | null {
  if (!invite) return 'invalid';
  if (invite.revoked) return 'revoked';
  if (invite.expiresAt !== null && now >= invite.expiresAt) return 'expired';
  if (invite.maxUses !== null && invite.uses >= invite.maxUses) return 'exhausted';
  return null;
}

/** Longest query (in code points) matched as one FTS5 phrase: 6 characters, 4 trigrams. */
const WHOLE_PHRASE_MAX = 6;
/** Characters of the query's head and of its tail matched as phrases when it is longer (3 trigrams each). */
const END_PHRASE_LENGTH = 5;

const phrase = (text: string): string => `"${text.replaceAll('"', '""')}"`;

/**
 * The FTS5 expression that narrows a search for `folded` (3 or more code points). A phrase costs about one step per
 * trigram per name holding all its trigrams: a 200-character query whose trigrams every name holds, never in that
 * order, took 17 s over 100,000 names as one phrase. So a longer query is narrowed by its first and last 5 characters
 * only (6 trigrams, whatever its length), and instr() on the candidates checks the whole query: the work is bounded by
 * the number of names, not by names × query length.
 */
function ftsExpression(folded: string): string {
  const chars = [...folded];
  if (chars.length <= WHOLE_PHRASE_MAX) return phrase(folded);
  return `${phrase(chars.slice(0, END_PHRASE_LENGTH).join(''))} AND ${phrase(chars.slice(-END_PHRASE_LENGTH).join(''))}`;
}
