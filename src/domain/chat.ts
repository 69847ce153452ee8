import { randomBytes, randomUUID } from 'node:crypto';
import { replyBudgetOf, type Config } from '../config/schema.js';
import { ParleyError } from '../protocol/errors.js';
import type { RequestData } from '../protocol/requests.js';
import type { ResultMap } from '@parley/protocol';
import type { Change, Conversation, Member, Message, MyConversation, StoredMessage } from '../protocol/types.js';
import type { Store } from '../store/store.js';
import { canDelete, canKick, canManageInvites, canRename, canSetRoles } from './permissions.js';
import type { MemberSummaries } from './member-summaries.js';
import type { Publisher } from './publisher.js';
import { decodeCursor, encodeCursor, ReplyBudget, takeLeading, takeTrailing } from './reply-budget.js';
import { ConcurrencyLimit } from './concurrency-limit.js';
import { checkMessageSize } from './text-limits.js';
import { changeToWire, toWire, toWireAll } from './message-view.js';

export interface ChatLimits {
  maxMessageBytes: number;
  maxMetaBytes: number;
  maxConversationsPerUser: number;
  maxMembersPerGroup: number;
  maxPageSize: number;
  /** Deepest nesting of `meta` (arrays and objects). */
  maxJsonDepth: number;
  /** Byte budget of a reply that can grow; see ReplyBudget. */
  maxReplyBytes: number;
  /** Group searches running at once in this process; one more is RATE_LIMITED. */
  maxConcurrentSearches: number;
}

export interface ChatDeps {
  store: Store;
  publisher: Publisher;
  limits: ChatLimits;
  clock?: () => number;
  /** Called with errors of best-effort event publishing (the change itself is already stored). */
  onPublishError?: (err: unknown) => void;
  /** Joins and departures of large groups are summed here (`member.summary`); without it each is announced. */
  memberSummaries?: MemberSummaries;
}

export const chatLimitsFrom = (config: Config): ChatLimits => ({
  maxMessageBytes: config.limits.maxMessageBytes,
  maxMetaBytes: config.limits.maxMetaBytes,
  maxConversationsPerUser: config.limits.maxConversationsPerUser,
  maxMembersPerGroup: config.limits.maxMembersPerGroup,
  maxPageSize: config.limits.maxPageSize,
  maxJsonDepth: config.limits.maxJsonDepth,
  // Well under the slow-consumer backlog level, so a reply alone never makes a backlog.
  maxReplyBytes: replyBudgetOf(config.limits),
  maxConcurrentSearches: config.limits.maxConcurrentSearches,
});

type SyncEntry = ResultMap['sync']['conversations'][number];

const DEFAULT_PAGE = 50;
/** Default page of conversation.list, member.list, member.bans and invite.list: most lists fit one page. */
const LIST_PAGE = 1000;
/** Conversations whose new messages `sync` reads in one store call. */
const SYNC_READ_BATCH = 32;
const SYNC_PAGE = 100;
/** Room kept in every reply budget for the frame around the items: `{"id":…,"result":{…}}` and fixed fields. */
const REPLY_ENVELOPE_BYTES = 1024;

/**
 * The chat domain: conversations, membership, messages and read state, with every permission check. Transport-free:
 * the gateway (WebSocket) and the REST API both call these methods with the authenticated user id; nothing here
 * trusts a user id from a request body.
 */
export class Chat {
  private readonly store: Store;
  private readonly publisher: Publisher;
  private readonly limits: ChatLimits;
  private readonly now: () => number;
  private readonly onPublishError: (err: unknown) => void;
  private readonly memberSummaries: MemberSummaries | null;
  // A search's cost is chosen by its query (some walk every name holding its trigrams): however many users search,
  // only this many run at once, one per user.
  private readonly searches: ConcurrencyLimit;

  constructor(deps: ChatDeps) {
    this.store = deps.store;
    this.publisher = deps.publisher;
    this.limits = deps.limits;
    this.now = deps.clock ?? Date.now;
    this.onPublishError = deps.onPublishError ?? (() => {});
    this.memberSummaries = deps.memberSummaries ?? null;
    this.searches = new ConcurrencyLimit(deps.limits.maxConcurrentSearches, 1, 'too many searches running; retry shortly');
  }

  // ---------------------------------------------------------------- conversations

  async listConversations(userId: string, d: RequestData<'conversation.list'> = {}): Promise<ResultMap['conversation.list']> {
    const limit = d.limit ?? LIST_PAGE;
    const after = d.after === undefined ? undefined : decodeCursor(d.after, (activityAt, id) => ({ activityAt, id }));
    const rows = await this.store.listMyConversations(userId, { after, limit: limit + 1 });
    const { items, more, next } = this.listPage(rows, limit, (c) => [c.lastMessageAt ?? c.createdAt, c.id]);
    return { conversations: items, more, next };
  }

  async getConversation(userId: string, d: RequestData<'conversation.get'>): Promise<ResultMap['conversation.get']> {
    return { conversation: await this.requireMyConversation(d.conversationId, userId) };
  }

  async createGroup(userId: string, d: RequestData<'conversation.create'>): Promise<ResultMap['conversation.create']> {
    // The conversation limit is checked by the store in the inserting transaction, so concurrent creates cannot pass it.
    const created = await this.store.createGroup({
      id: randomUUID(), name: d.name, visibility: d.visibility, createdBy: userId, now: this.now(), maxConversations: this.limits.maxConversationsPerUser,
    });
    const conversation = await this.requireMyConversation(created.id, userId);
    this.announce(this.publisher.toUser(userId, 'conversation.updated', created));
    return { conversation };
  }

  async openDirect(userId: string, d: RequestData<'direct.open'>): Promise<ResultMap['direct.open']> {
    const conversation = await this.openDirectWith(userId, d.userId);
    return { conversation: await this.requireMyConversation(conversation.id, userId) };
  }

  async searchPublic(userId: string, d: RequestData<'conversation.search'>): Promise<ResultMap['conversation.search']> {
    const limit = this.pageSize(d.limit);
    // One search per user at a time: a user's searches cannot take the slots of everyone else's.
    const rows = await this.searches.run(userId, () => this.store.searchPublic(d.query, limit + 1));
    // No cursor: search answers the best page; `more` says that a narrower query would show others.
    const { taken, cut } = takeLeading(rows.slice(0, limit), this.replyBudget());
    return { conversations: taken, more: cut || rows.length > limit };
  }

  async join(userId: string, d: RequestData<'conversation.join'>): Promise<ResultMap['conversation.join']> {
    const conversation = await this.store.getConversation(d.conversationId);
    // A private group is indistinguishable from a missing one to outsiders: its existence is not leaked.
    if (!conversation || conversation.kind !== 'group' || conversation.visibility !== 'public') {
      throw new ParleyError('NOT_FOUND', 'no such public group');
    }
    const added = await this.store.addMember({
      conversationId: conversation.id, userId, role: 'member', now: this.now(), maxMembers: this.limits.maxMembersPerGroup,
      maxConversations: this.limits.maxConversationsPerUser,
    });
    if (added.status === 'no_conversation') throw new ParleyError('NOT_FOUND', 'no such public group');
    if (added.status === 'full') throw new ParleyError('LIMIT_EXCEEDED', 'the group is full');
    if (added.status === 'banned') throw new ParleyError('BANNED_FROM_GROUP');
    if (added.status === 'exists') throw new ParleyError('ALREADY_MEMBER');
    await this.announceJoin(conversation.id, added.member, added.memberCount);
    return { conversation: await this.joinedConversation(conversation.id, userId) };
  }

  async leave(userId: string, d: RequestData<'conversation.leave'>): Promise<ResultMap['conversation.leave']> {
    const { conversation, member } = await this.requireMembership(d.conversationId, userId);
    if (conversation.kind === 'direct') throw new ParleyError('FORBIDDEN', 'a direct conversation cannot be left');
    // Like a kick: its event is what stops delivery to the user's other devices on other instances.
    await this.publisher.probe();
    if (member.role === 'owner') {
      // One transaction checks that the owner is alone and deletes: nobody can join in between and lose the group untold.
      const deleted = await this.store.deleteConversationWithMembers({ id: conversation.id, onlyMember: userId });
      if (deleted.status === 'others_remain') throw new ParleyError('FORBIDDEN', 'the owner must delete the group or hand over ownership first');
      if (deleted.status === 'not_found') throw new ParleyError('NOT_MEMBER');
      this.announce(this.publisher.toUser(userId, 'conversation.removed', { conversationId: conversation.id, reason: 'left' }));
      return {};
    }
    const removal = await this.store.removeMember(conversation.id, userId);
    // Not removed here: a concurrent kick, ban or leave removed them, and told everyone.
    if (removal.removed) await this.announceLeave(conversation.id, userId, null, 'left', removal.memberCount + 1);
    return {};
  }

  async rename(userId: string, d: RequestData<'conversation.rename'>): Promise<ResultMap['conversation.rename']> {
    const { conversation, member } = await this.requireMembership(d.conversationId, userId);
    if (conversation.kind === 'direct' || !canRename(member.role)) throw new ParleyError('FORBIDDEN');
    const renamed = await this.store.renameConversation(conversation.id, d.name);
    if (!renamed) throw new ParleyError('NOT_FOUND');
    this.announce(this.publisher.toConversation(conversation.id, 'conversation.updated', renamed));
    return { conversation: renamed };
  }

  async remove(userId: string, d: RequestData<'conversation.delete'>): Promise<ResultMap['conversation.delete']> {
    const { conversation, member } = await this.requireMembership(d.conversationId, userId);
    if (conversation.kind === 'direct' || !canDelete(member.role)) throw new ParleyError('FORBIDDEN');
    await this.deleteConversationAndTell(conversation.id);
    return {};
  }

  /**
   * Delete a conversation and tell every former member (used by owners and by admins of the server). The members are
   * read in the delete's own transaction, so one who joined just before is told too. NOT_FOUND if it is already gone.
   */
  async deleteConversationAndTell(conversationId: string): Promise<void> {
    const deleted = await this.store.deleteConversationWithMembers({ id: conversationId });
    if (deleted.status !== 'deleted') throw new ParleyError('NOT_FOUND');
    for (const id of deleted.memberIds) {
      this.announce(this.publisher.toUser(id, 'conversation.removed', { conversationId, reason: 'deleted' }));
    }
  }

  // ---------------------------------------------------------------- members

  async listMembers(userId: string, d: RequestData<'member.list'>): Promise<ResultMap['member.list']> {
    await this.requireMembership(d.conversationId, userId);
    const limit = d.limit ?? LIST_PAGE;
    const after = d.after === undefined ? undefined : decodeCursor(d.after, (joinedAt, userId) => ({ joinedAt, userId }));
    const rows = await this.store.listMembers(d.conversationId, { after, limit: limit + 1 });
    const { items, more, next } = this.listPage(rows, limit, (m) => [m.joinedAt, m.userId]);
    return { members: items, more, next };
  }

  async kick(userId: string, d: RequestData<'member.kick'>): Promise<ResultMap['member.kick']> {
    const { conversation, member } = await this.requireMembership(d.conversationId, userId);
    if (conversation.kind === 'direct') throw new ParleyError('FORBIDDEN');
    const target = await this.store.getMember(conversation.id, d.userId);
    if (!target) throw new ParleyError('NOT_FOUND', 'that user is not a member');
    if (!canKick(member.role, target.role)) throw new ParleyError('FORBIDDEN');
    // Refused (UNAVAILABLE, nothing stored) while the bus refuses publishes: see Publisher.probe.
    await this.publisher.probe();
    const removal = await this.store.removeMember(conversation.id, d.userId);
    if (removal.removed) await this.announceLeave(conversation.id, d.userId, userId, 'kicked', removal.memberCount + 1);
    return {};
  }

  async setRole(userId: string, d: RequestData<'member.role'>): Promise<ResultMap['member.role']> {
    const { conversation, member } = await this.requireMembership(d.conversationId, userId);
    if (conversation.kind === 'direct' || !canSetRoles(member.role)) throw new ParleyError('FORBIDDEN');
    const target = await this.store.getMember(conversation.id, d.userId);
    if (!target) throw new ParleyError('NOT_FOUND', 'that user is not a member');
    if (target.role === 'owner') throw new ParleyError('FORBIDDEN', "the owner's role cannot be changed");
    const updated = await this.store.setRole(conversation.id, d.userId, d.role);
    if (!updated) throw new ParleyError('NOT_FOUND', 'that user is not a member');
    this.announce(this.publisher.toConversation(conversation.id, 'member.role', { conversationId: conversation.id, userId: d.userId, role: d.role }));
    return { member: updated };
  }

  /**
   * Ban a user from a group: removed at once if a member (told like a kick, reason `banned`), and refused by join,
   * invite accept and re-adding until unbanned. The same rules as a kick: the owner bans admins and members, an admin
   * members only; a user who is not a member may be banned by the owner or an admin. NOT_FOUND for an unknown user.
   */
  async ban(userId: string, d: RequestData<'member.ban'>): Promise<ResultMap['member.ban']> {
    const { conversation, member } = await this.requireMembership(d.conversationId, userId);
    if (conversation.kind === 'direct' || d.userId === userId) throw new ParleyError('FORBIDDEN');
    const [target, user] = await Promise.all([this.store.getMember(conversation.id, d.userId), this.store.getUser(d.userId)]);
    if (!user) throw new ParleyError('NOT_FOUND', 'no such user');
    if (!canKick(member.role, target?.role ?? 'member')) throw new ParleyError('FORBIDDEN');
    if (target) await this.publisher.probe();
    const removal = await this.store.banMember({ conversationId: conversation.id, userId: d.userId, by: userId, now: this.now() });
    if (removal.removed) await this.announceLeave(conversation.id, d.userId, userId, 'banned', removal.memberCount + 1);
    return {};
  }

  async unban(userId: string, d: RequestData<'member.unban'>): Promise<ResultMap['member.unban']> {
    await this.requireBanManager(d.conversationId, userId);
    if (!(await this.store.unbanMember(d.conversationId, d.userId))) throw new ParleyError('NOT_FOUND', 'that user is not banned');
    return {};
  }

  async listBans(userId: string, d: RequestData<'member.bans'>): Promise<ResultMap['member.bans']> {
    await this.requireBanManager(d.conversationId, userId);
    const limit = d.limit ?? LIST_PAGE;
    const after = d.after === undefined ? undefined : decodeCursor(d.after, (bannedAt, banned) => ({ bannedAt, userId: banned }));
    const rows = await this.store.listBans(d.conversationId, { after, limit: limit + 1 });
    const { items, more, next } = this.listPage(rows, limit, (b) => [b.bannedAt, b.userId]);
    return { bans: items, more, next };
  }

  private async requireBanManager(conversationId: string, userId: string): Promise<void> {
    const { conversation, member } = await this.requireMembership(conversationId, userId);
    if (conversation.kind === 'direct' || !canKick(member.role, 'member')) throw new ParleyError('FORBIDDEN');
  }

  // ---------------------------------------------------------------- users

  /**
   * The built-in account with exactly this username (the store's comparison), as `{id, name}`. NOT_FOUND otherwise,
   * also for a banned account. One name in, at most one user out: there is no listing or prefix search.
   */
  async findUser(_userId: string, d: RequestData<'user.find'>): Promise<ResultMap['user.find']> {
    const user = await this.store.getUserByName(d.username);
    if (!user || user.banned) throw new ParleyError('NOT_FOUND', 'no user with this username');
    return { user: { id: user.id, name: user.name } };
  }

  // ---------------------------------------------------------------- invites

  async createInvite(userId: string, d: RequestData<'invite.create'>): Promise<ResultMap['invite.create']> {
    const { conversation, member } = await this.requireMembership(d.conversationId, userId);
    if (conversation.kind !== 'group' || !canManageInvites(member.role)) throw new ParleyError('FORBIDDEN');
    const now = this.now();
    const invite = await this.store.createInvite({
      // 24 random bytes: unguessable, and URL-safe for links.
      token: randomBytes(24).toString('base64url'),
      conversationId: conversation.id,
      createdBy: userId,
      createdAt: now,
      expiresAt: d.expiresInSeconds === undefined ? null : now + d.expiresInSeconds * 1000,
      maxUses: d.maxUses ?? null,
    });
    return { invite };
  }

  async listInvites(userId: string, d: RequestData<'invite.list'>): Promise<ResultMap['invite.list']> {
    const { member } = await this.requireMembership(d.conversationId, userId);
    if (!canManageInvites(member.role)) throw new ParleyError('FORBIDDEN');
    const limit = d.limit ?? LIST_PAGE;
    const after = d.after === undefined ? undefined : decodeCursor(d.after, (createdAt, token) => ({ createdAt, token }));
    const rows = await this.store.listInvites(d.conversationId, { after, limit: limit + 1 });
    const { items, more, next } = this.listPage(rows, limit, (i) => [i.createdAt, i.token]);
    return { invites: items, more, next };
  }

  async revokeInvite(userId: string, d: RequestData<'invite.revoke'>): Promise<ResultMap['invite.revoke']> {
    const invite = await this.store.getInvite(d.token);
    if (!invite) throw new ParleyError('INVITE_INVALID');
    const member = await this.store.getMember(invite.conversationId, userId);
    if (!member) throw new ParleyError('INVITE_INVALID');
    if (!canManageInvites(member.role)) throw new ParleyError('FORBIDDEN');
    const revoked = await this.store.revokeInvite(d.token);
    if (!revoked) throw new ParleyError('INVITE_INVALID');
    return { invite: revoked };
  }

  async acceptInvite(userId: string, d: RequestData<'invite.accept'>): Promise<ResultMap['invite.accept']> {
    // Someone already in the group is told so (by the store), even when at their conversation limit.
    const result = await this.store.redeemInvite({
      token: d.token, userId, now: this.now(), maxMembers: this.limits.maxMembersPerGroup, maxConversations: this.limits.maxConversationsPerUser,
    });
    switch (result.status) {
      case 'joined':
        await this.announceJoin(result.conversationId, result.member, result.memberCount);
        return { conversation: await this.joinedConversation(result.conversationId, userId) };
      case 'already_member':
        throw new ParleyError('ALREADY_MEMBER');
      case 'invalid': throw new ParleyError('INVITE_INVALID');
      case 'expired': throw new ParleyError('INVITE_EXPIRED');
      case 'exhausted': throw new ParleyError('INVITE_EXHAUSTED');
      case 'revoked': throw new ParleyError('INVITE_REVOKED');
      case 'full': throw new ParleyError('LIMIT_EXCEEDED', 'the group is full');
      case 'banned': throw new ParleyError('BANNED_FROM_GROUP');
    }
  }

  // ---------------------------------------------------------------- messages

  /**
   * Store a message and fan it out. `connectionId`, the sending connection, gets no `message.new` of it: the reply is
   * its receipt (the user's other connections get the event). A duplicate's reply holds the original message.
   */
  async send(userId: string, d: RequestData<'message.send'>, connectionId: string | null = null): Promise<ResultMap['message.send']> {
    const meta = checkMessageSize(d.text, d.meta, this.limits);
    // A send to a user may create a conversation: refused to a banned sender before that (the store refuses the append).
    if (d.conversationId === undefined) await this.requireNotBanned(userId);
    const conversationId = d.conversationId ?? (await this.openDirectWith(userId, d.to as string)).id;
    // Membership is checked by the store inside the append transaction (NOT_MEMBER), atomically with the write.
    const { message, duplicate } = await this.store.appendMessage({
      id: randomUUID(), conversationId, senderId: userId, key: d.key, text: d.text, meta, now: this.now(),
    });
    // A duplicate is published again: the first attempt may have committed and then failed (or crashed) before
    // publishing, and then this retry is the only way the others receive it live. Receivers dedupe by seq.
    this.announce(this.publisher.toConversation(conversationId, 'message.new', toWire(message, null), null, connectionId));
    const receipt = { conversationId, seq: message.seq, id: message.id, createdAt: message.createdAt, duplicate };
    return duplicate ? { ...receipt, message: toWire(message, userId) } : receipt;
  }

  /** `connectionId`, the editing connection, gets the reply instead of `message.updated`. */
  async edit(userId: string, d: RequestData<'message.edit'>, connectionId: string | null = null): Promise<ResultMap['message.edit']> {
    const checkedMeta = checkMessageSize(d.text, d.meta, this.limits);
    const original = await this.requireOwnMessage(userId, d.conversationId, d.seq);
    // An edit without `meta` changes the text only; `meta: null` clears it.
    const meta = d.meta === undefined ? original.meta : checkedMeta;
    const message = await this.store.editMessage({ conversationId: d.conversationId, seq: d.seq, text: d.text, meta, now: this.now() });
    // The store refuses a message deleted since requireOwnMessage looked (a delete racing this edit).
    if (!message) throw await this.changeRefusal(d.conversationId, d.seq);
    this.announce(this.publisher.toConversation(d.conversationId, 'message.updated', toWire(message, null), null, connectionId));
    return { message: toWire(message, null) };
  }

  /** `connectionId`, the deleting connection, gets the reply instead of `message.updated`. */
  async delete(userId: string, d: RequestData<'message.delete'>, connectionId: string | null = null): Promise<ResultMap['message.delete']> {
    await this.requireOwnMessage(userId, d.conversationId, d.seq);
    const message = await this.store.deleteMessage({ conversationId: d.conversationId, seq: d.seq, now: this.now() });
    if (!message) throw await this.changeRefusal(d.conversationId, d.seq);
    this.announce(this.publisher.toConversation(d.conversationId, 'message.updated', toWire(message, null), null, connectionId));
    return { message: toWire(message, null) };
  }

  /**
   * The conversation's messages stored after `afterSeq`, at most `limit`, deleted ones left out, as every member's
   * `message.new` shows them (no idempotency key). For a gateway recovering what a join's subscription missed
   * (src/gateway/join-recovery.ts): the connections it sends them to are members by the join it saw.
   */
  async messagesForMembers(conversationId: string, afterSeq: number, limit: number): Promise<Message[]> {
    const rows = await this.store.messagesAfter(conversationId, afterSeq, limit);
    return rows.filter((m) => !m.deleted).map((m) => toWire(m, null));
  }

  async historyAfter(userId: string, d: RequestData<'history.after'>): Promise<ResultMap['history.after']> {
    await this.requireMembership(d.conversationId, userId);
    const limit = this.pageSize(d.limit);
    const rows = toWireAll(await this.store.messagesAfter(d.conversationId, d.afterSeq, limit + 1), userId);
    const { taken, cut } = takeLeading(rows.slice(0, limit), this.replyBudget());
    return { messages: taken, more: cut || rows.length > limit };
  }

  async historyBefore(userId: string, d: RequestData<'history.before'>): Promise<ResultMap['history.before']> {
    await this.requireMembership(d.conversationId, userId);
    const limit = this.pageSize(d.limit);
    const stored =
      d.beforeTime !== undefined && d.beforeSeq === undefined
        ? await this.store.messagesBeforeTime(d.conversationId, d.beforeTime, limit + 1)
        : await this.store.messagesBefore(d.conversationId, d.beforeSeq ?? null, limit + 1);
    const rows = toWireAll(stored, userId);
    // Rows are ascending; the extra one, if present, is the oldest and only tells that more remain. The byte budget
    // keeps the newest that fit.
    const { taken, cut } = takeTrailing(rows.length > limit ? rows.slice(1) : rows, this.replyBudget());
    return { messages: taken, more: cut || rows.length > limit };
  }

  /**
   * Catch-up: per named conversation, the new messages after `afterSeq` and (when `rev` is given) the changes after
   * `rev`, all within one byte budget shared by the whole reply, so a reply is never larger than a reading client may
   * receive. Conversations past the budget get empty pages with `more`/`changesMore` set; the client asks again.
   */
  async sync(userId: string, d: RequestData<'sync'>): Promise<ResultMap['sync']> {
    const mine = await this.store.listMyConversations(userId);
    const byId = new Map(mine.map((c) => [c.id, c]));
    const limit = Math.min(d.limit ?? SYNC_PAGE, this.limits.maxPageSize);
    const budget = this.replyBudget();
    const named = new Set<string>();
    const conversations: ResultMap['sync']['conversations'] = [];
    const removed: string[] = [];
    const wanted: Array<{ conversation: MyConversation; afterSeq: number; rev: number | undefined }> = [];
    for (const { conversationId, afterSeq, rev } of d.conversations) {
      if (named.has(conversationId)) continue;
      named.add(conversationId);
      const conversation = byId.get(conversationId);
      if (conversation) wanted.push({ conversation, afterSeq, rev });
      else removed.push(conversationId);
    }
    // The fixed part of the reply (one small entry per named conversation, at most 1000) is charged first, so that
    // messages, changes and `unknown` share what is left and the whole reply stays near the budget. `unknown` comes
    // last: a client pages it with `unknownMore`, and a follow-up sync of a few conversations' changes must not be
    // starved by the list of every conversation it did not name.
    budget.charge(removed);
    const entries = wanted.map(({ conversation, afterSeq }) => this.syncEntry(conversation, afterSeq, budget));
    // The new messages of the conversations that have some are read SYNC_READ_BATCH conversations per store call (one
    // round trip on a network store, not one per conversation); a batch is read only while the budget has room.
    for (let start = 0; start < wanted.length; start += SYNC_READ_BATCH) {
      const batch = wanted.slice(start, start + SYNC_READ_BATCH);
      const behind = budget.exhausted ? [] : batch.filter((w) => w.afterSeq < w.conversation.lastSeq);
      const pages = await this.store.messagesAfterMany(behind.map((w) => ({ conversationId: w.conversation.id, afterSeq: w.afterSeq })), limit + 1);
      const pageOf = new Map(behind.map((w, i) => [w, pages[i]!]));
      for (const [i, w] of batch.entries()) {
        conversations.push(await this.syncOne(userId, entries[start + i]!, w.conversation, w.afterSeq, w.rev, limit, budget, pageOf.get(w)));
      }
    }
    const unknown = takeLeading(mine.filter((c) => !named.has(c.id)), budget);
    return { conversations, unknown: unknown.taken, unknownMore: unknown.cut, removed };
  }

  private syncEntry(conversation: MyConversation, afterSeq: number, budget: ReplyBudget): SyncEntry {
    // `messages` and `more` are left out when empty and false: most entries of a sync say only "nothing new".
    const entry: SyncEntry = { conversationId: conversation.id, lastSeq: conversation.lastSeq, rev: conversation.rev };
    if (afterSeq < conversation.lastSeq) entry.more = true;
    budget.charge({ ...entry, more: true, changes: [], changesMore: false });
    return entry;
  }

  /** `page`: the conversation's messages after `afterSeq` (at most limit + 1), read with its batch; absent if not read. */
  private async syncOne(
    userId: string, entry: SyncEntry, conversation: MyConversation, afterSeq: number, rev: number | undefined, limit: number, budget: ReplyBudget,
    page: StoredMessage[] | undefined,
  ): Promise<SyncEntry> {
    const { id: conversationId, lastSeq } = conversation;
    if (afterSeq < lastSeq && !budget.exhausted && page) {
      const rows = toWireAll(page, userId);
      const { taken, cut } = takeLeading(rows.slice(0, limit), budget);
      if (taken.length > 0) entry.messages = taken;
      if (cut || rows.length > limit) entry.more = true;
      else delete entry.more;
    }
    if (rev === undefined) return entry;
    if (rev >= conversation.rev) {
      entry.changes = [];
      entry.changesMore = false;
      return entry;
    }
    // The client is behind on changes: it gets the conversation as it is now (rename, member count) and the changes,
    // when they fit; otherwise nothing of them, and `changesMore` sends it back for them with the same rev.
    if (!budget.fits(conversation)) {
      entry.changes = [];
      entry.changesMore = true;
      entry.rev = rev;
      return entry;
    }
    entry.conversation = conversation;
    budget.charge(conversation);
    const changes: Change[] = budget.exhausted ? [] : (await this.store.changesSince(conversationId, rev, limit + 1)).map((c) => changeToWire(c, userId));
    // Messages the client has not received yet arrive in their current form through `messages`/history: only changes
    // to what it holds (seq <= afterSeq) are sent.
    const relevant = changes.slice(0, limit);
    const { taken, cut } = takeLeading(relevant, budget);
    entry.changes = taken.filter((c) => c.kind !== 'message' || c.message.seq <= afterSeq);
    entry.changesMore = cut || changes.length > limit || (changes.length === 0 && budget.exhausted);
    // The rev the client may store: everything up to it was returned (or concerned messages it will fetch anyway).
    entry.rev = entry.changesMore ? (taken.at(-1)?.rev ?? rev) : conversation.rev;
    // Cut with nothing the client holds in it: the conversation comes with the changes, on the next round.
    if (entry.changesMore && entry.changes.length === 0) delete entry.conversation;
    return entry;
  }

  /** `connectionId`, the marking connection, gets the reply instead of the `read` event. */
  async markRead(userId: string, d: RequestData<'read.mark'>, connectionId: string | null = null): Promise<ResultMap['read.mark']> {
    const { conversation } = await this.requireMembership(d.conversationId, userId);
    const result = await this.store.markRead(d.conversationId, userId, d.seq);
    if (!result) throw new ParleyError('NOT_MEMBER');
    if (result.moved) {
      const read = { conversationId: d.conversationId, userId, seq: result.readSeq };
      // In a large group every member's reads to every member would be N² frames: there only the reader's own
      // devices are told (the others' positions are in member.list and sync changes); the reading connection has
      // its reply.
      const large = this.memberSummaries?.summarises(conversation.kind, conversation.memberCount) ?? false;
      this.announce(large
        ? this.publisher.toUser(userId, 'read', read, connectionId)
        : this.publisher.toConversation(d.conversationId, 'read', read, null, connectionId));
    }
    return { conversationId: d.conversationId, readSeq: result.readSeq, unread: result.unread };
  }

  // ---------------------------------------------------------------- membership checks, shared by the services

  /**
   * BANNED if the user is banned. Every write checks it (src/domain/operations.ts), so a ban holds on a connection
   * that was opened just before it or whose close event (4502) was lost: that event is a courtesy, this is the rule.
   * Message appends are checked again by the store inside their transaction.
   */
  async requireNotBanned(userId: string): Promise<void> {
    if ((await this.store.getUser(userId))?.banned) throw new ParleyError('BANNED');
  }

  /** The member record, or NOT_MEMBER (also for a missing conversation, so non-members learn nothing). */
  async requireMembership(conversationId: string, userId: string): Promise<{ conversation: Conversation; member: Member }> {
    const membership = await this.store.getMembership(conversationId, userId);
    if (!membership) throw new ParleyError('NOT_MEMBER');
    return membership;
  }

  private async requireMyConversation(conversationId: string, userId: string): Promise<MyConversation> {
    const conversation = await this.store.getMyConversation(conversationId, userId);
    if (!conversation) throw new ParleyError('NOT_MEMBER');
    return conversation;
  }

  /**
   * The group just joined, as the joiner sees it. Gone already: deleted at the moment of the join (NOT_FOUND), or the
   * joiner was removed right after joining, by a kick or ban (NOT_MEMBER); either way the joiner was told by its event.
   */
  private async joinedConversation(conversationId: string, userId: string): Promise<MyConversation> {
    const conversation = await this.store.getMyConversation(conversationId, userId);
    if (conversation) return conversation;
    if (await this.store.getConversation(conversationId)) throw new ParleyError('NOT_MEMBER', 'removed from the group right after joining');
    throw new ParleyError('NOT_FOUND', 'the group was deleted');
  }

  private async requireOwnMessage(userId: string, conversationId: string, seq: number): Promise<StoredMessage> {
    await this.requireMembership(conversationId, userId);
    const message = await this.store.getMessage(conversationId, seq);
    if (!message) throw new ParleyError('NOT_FOUND', 'no such message');
    if (message.senderId !== userId) throw new ParleyError('FORBIDDEN', 'only the author may change a message');
    if (message.deleted) throw new ParleyError('CONFLICT', 'the message was deleted');
    return message;
  }

  /** Why a checked edit or delete changed nothing: the message was deleted meanwhile, or is gone with its conversation. */
  private async changeRefusal(conversationId: string, seq: number): Promise<ParleyError> {
    const current = await this.store.getMessage(conversationId, seq);
    return current?.deleted ? new ParleyError('CONFLICT', 'the message was deleted') : new ParleyError('NOT_FOUND', 'no such message');
  }

  private async openDirectWith(userId: string, peerId: string): Promise<Conversation> {
    if (peerId === userId) throw new ParleyError('INVALID_REQUEST', 'a direct conversation needs another user');
    const peer = await this.store.getUser(peerId);
    if (!peer) throw new ParleyError('NOT_FOUND', 'no such user');
    // A new direct conversation counts for both users; the store refuses it (LIMIT_EXCEEDED) if either is at the limit.
    const { conversation, created } = await this.store.openDirect({
      id: randomUUID(), a: userId, b: peerId, now: this.now(), maxConversations: this.limits.maxConversationsPerUser,
    });
    if (created) {
      // Each side's gateways subscribe on this event before any message of the conversation is published.
      await Promise.all([
        this.publisher.toUser(userId, 'conversation.updated', conversation),
        this.publisher.toUser(peerId, 'conversation.updated', conversation),
      ]).catch(this.onPublishError);
    }
    return conversation;
  }

  /**
   * Tells the joiner's instances (the user topic) and the members. The event's `lastSeq` is the conversation's head as
   * the join committed (the new member's `readSeq`), not as read afterwards: an instance that subscribes to the
   * conversation on this event recovers the messages after it, so a message committed between the join and this read,
   * and published before that subscription, is recovered too instead of being skipped.
   */
  private async announceJoin(conversationId: string, member: Member, sizeAfter: number): Promise<void> {
    const current = await this.store.getConversation(conversationId);
    if (!current) return;
    const conversation = current.lastSeq > member.readSeq ? { ...current, lastSeq: member.readSeq } : current;
    // The size right after this join, from its own transaction (see AddMemberResult): a count read now would include
    // every concurrent join and leave.
    const summaries = this.memberSummaries?.summarises(conversation.kind, sizeAfter) ? this.memberSummaries : null;
    summaries?.note(conversationId, 'joined');
    await Promise.all([
      this.publisher.toUser(member.userId, 'conversation.updated', conversation),
      summaries ? undefined : this.publisher.toConversation(conversationId, 'member.joined', { conversationId, member }),
    ]).catch(this.onPublishError);
  }

  /** `sizeBefore`: the member count right before this departure, from its own transaction (see Removal). */
  private async announceLeave(conversationId: string, userId: string, by: string | null, reason: 'left' | 'kicked' | 'banned', sizeBefore: number): Promise<void> {
    const conversation = this.memberSummaries ? await this.store.getConversation(conversationId).catch(() => null) : null;
    const summaries = conversation && this.memberSummaries?.summarises(conversation.kind, sizeBefore) ? this.memberSummaries : null;
    summaries?.note(conversationId, 'left');
    await Promise.all([
      summaries ? undefined : this.publisher.toConversation(conversationId, 'member.left', { conversationId, userId, by }),
      this.publisher.toUser(userId, 'conversation.removed', { conversationId, reason }),
    ]).catch(this.onPublishError);
  }

  private announce(publishing: Promise<void>): void {
    publishing.catch(this.onPublishError);
  }

  /**
   * A keyset page of a list: `rows` holds up to limit + 1 items after the cursor (the extra one only tells that more
   * follow); the page ends at `limit` or the byte budget, and `next` is the cursor of its last item.
   */
  private listPage<T>(rows: T[], limit: number, keyOf: (item: T) => [number, string]): { items: T[]; more: boolean; next: string | null } {
    const { taken, cut } = takeLeading(rows.slice(0, limit), this.replyBudget());
    const more = cut || rows.length > limit;
    const last = taken.at(-1);
    return { items: taken, more, next: more && last !== undefined ? encodeCursor(...keyOf(last)) : null };
  }

  /** The budget of one reply's items: maxReplyBytes less room for what wraps them (the reply envelope, fixed fields). */
  private replyBudget(): ReplyBudget {
    return new ReplyBudget(this.limits.maxReplyBytes - REPLY_ENVELOPE_BYTES);
  }

  private pageSize(requested: number | undefined): number {
    return Math.min(requested ?? DEFAULT_PAGE, this.limits.maxPageSize);
  }
}
