import type { Ban, StoredChange as Change, Conversation, ConversationPosition, Invite, Member, StoredMessage as Message, MyConversation, Role, Visibility } from '../protocol/types.js';

/** What Store.claimInstance registers. */
export interface InstanceClaimRequest {
  sole: boolean;
  description: string;
  settings?: string;
}

/**
 * The other instances' settings fingerprints that differ from `settings`, once each (none when this one gives none):
 * a non-empty list refuses the claim.
 */
export function differingSettings(settings: string | undefined, others: ReadonlyArray<string | null>): string[] {
  if (settings === undefined) return [];
  return [...new Set(others.filter((other): other is string => other !== null && other !== settings))];
}

/**
 * The store seam: durable users, conversations, members, invites, messages and read cursors.
 *
 * Guarantees every engine gives (test/engines/store.contract.ts checks each one against every engine):
 * - Every method resolves only after its change is durable (committed), and a rejected call changed nothing.
 * - Methods that change several rows do it in one transaction: a concurrent reader sees all or none of it.
 * - `appendMessage` assigns `seq` atomically: strictly increasing and gap-free per conversation, even under
 *   concurrent appends from many processes; and it is idempotent on (conversationId, senderId, key).
 * - Engine failures reject with a ParleyError('UNAVAILABLE') so callers can tell "retry later" from a bug.
 * - A string holding U+0000 (which requests never carry: src/protocol/well-formed.ts) is either kept exactly (SQLite)
 *   or refused with INVALID_REQUEST (PostgreSQL text cannot hold it); either way only that call is affected.
 * Permission checks are not the store's job: the domain decides who may do what, the store keeps data consistent.
 */
export interface Store {
  /** Create tables or apply pending migrations. Idempotent. */
  migrate(): Promise<void>;
  /** Cheap round trip used by /readyz and at start: commits a tiny write, so it fails while writes fail. */
  ping(): Promise<void>;
  /** This store's identity: a random id made by the first call on a new database (or file), the same ever after. */
  storeId(): Promise<string>;
  /**
   * Register this process as an instance of the deployment using this store, until `close()`. A `sole` instance (its
   * bus lives in its own memory, so no other instance would receive its events) is refused while any other instance
   * is registered, and every instance is refused while a sole one is: CONFLICT, details `{others: string[]}` (the
   * other instances' descriptions). A registration ends with its process, so a crashed instance never blocks a
   * restart (SQLite: the process is gone; PostgreSQL: its session ended). `settings`: a short fingerprint (letters and
   * digits) of the settings every instance on this store must share; refused with CONFLICT, details
   * `{others, settingsDiffer: true, otherSettings}` (the differing fingerprints), while a registered instance has
   * another one.
   */
  claimInstance(claim: InstanceClaimRequest): Promise<void>;
  close(): Promise<void>;

  // ---- users
  /**
   * Insert a user; rejects CONFLICT for a taken id. Built-in accounts (passwordHash set) have unique login names,
   * compared by `usernameKey` (NFKC + full case folding, src/protocol/usernames.ts): a taken one rejects
   * ACCOUNT_EXISTS with details `{reason: 'taken'}`; a name whose confusables skeleton (`usernameSkeleton` or
   * `usernameFoldedSkeleton`) equals an existing account's rejects ACCOUNT_EXISTS with `{reason: 'confusable'}`. Otherwise a name whose letters mix
   * Latin-look-alike scripts (`usernameScriptProblem`) rejects INVALID_REQUEST, details `[{path: 'username', message}]`. The store computes both from `name`; the caller
   * checks the name against the username rules first. Users from an integrating product's tokens (no password) may
   * share display names with anyone.
   */
  createUser(user: NewUser): Promise<UserRecord>;
  /**
   * Insert the user if absent (JWT users appear on first connection, as product users); updates the name when given.
   * A built-in account is returned unchanged, never renamed: callers check `origin`.
   */
  ensureUser(id: string, name: string | null, now: number): Promise<UserRecord>;
  /**
   * Create or update a product user (origin 'product') with this id: name, and metadata unless undefined (null clears
   * it). Rejects CONFLICT when the id is a built-in account's, changing nothing.
   */
  upsertProductUser(input: { id: string; name: string; metadata: unknown | null | undefined; now: number }): Promise<{ user: UserRecord; created: boolean }>;
  /** Revoke every token of our own issued to the user so far ("log out everywhere"); the new generation, or null if no such user. */
  bumpTokenGeneration(userId: string): Promise<number | null>;
  /** Revoke one token by its session id until `expiresAt` (ms); also forgets revocations that have expired by `now`. */
  revokeSession(sessionId: string, expiresAt: number, now: number): Promise<void>;
  isSessionRevoked(sessionId: string): Promise<boolean>;
  getUser(id: string): Promise<UserRecord | null>;
  /**
   * The built-in account (with a password) of this login name, compared by `usernameKey` (NFKC + full case folding):
   * "ИВАН" finds "Иван", "ｂｏｂ" finds "bob". An account older than migration 004 whose key another, older account
   * already had is found by its exact name (ASCII case-insensitively, as before), ahead of the key's account.
   */
  getUserByName(name: string): Promise<UserRecord | null>;
  listUsers(opts: { limit: number; afterId?: string }): Promise<UserRecord[]>;
  setBanned(id: string, banned: boolean): Promise<boolean>;
  setLastSeen(id: string, at: number): Promise<void>;
  /** setLastSeen for many users in one call (a sweep expiring a dead instance's users); one transaction. */
  setLastSeenMany(entries: ReadonlyArray<{ userId: string; at: number }>): Promise<void>;

  // ---- conversations and members
  // The conversation limit: every method that makes a user a member takes an optional `maxConversations` and, when
  // the user already belongs to that many conversations, rejects LIMIT_EXCEEDED and changes nothing. The count is read
  // in the transaction that inserts the membership, so concurrent calls never take a user past the limit.

  /** Create a group with its creator as owner, in one transaction. LIMIT_EXCEEDED: see the conversation limit above. */
  createGroup(input: { id: string; name: string; visibility: Visibility; createdBy: string; now: number; maxConversations?: number }): Promise<Conversation>;
  /**
   * Return the one direct conversation of the pair, creating it (both as members, role 'member') if absent.
   * Concurrent calls for the same pair return the same conversation. A new direct conversation counts for both users:
   * if either already has `maxConversations`, it rejects LIMIT_EXCEEDED (an existing one is returned regardless).
   */
  openDirect(input: { id: string; a: string; b: string; now: number; maxConversations?: number }): Promise<{ conversation: Conversation; created: boolean }>;
  getConversation(id: string): Promise<Conversation | null>;
  /** The conversation as `userId` sees it, or null if not a member. */
  getMyConversation(id: string, userId: string): Promise<MyConversation | null>;
  /**
   * The user's conversations, most recently active first (activity = lastMessageAt, else createdAt; then id). With
   * `page`: only those after `page.after` in that order, at most `page.limit`.
   */
  listMyConversations(userId: string, page?: { after?: { activityAt: number; id: string }; limit: number }): Promise<MyConversation[]>;
  /** Ids of the conversations the user belongs to. */
  listConversationIds(userId: string): Promise<string[]>;
  /**
   * For each of `userIds`, in order: the ids of its direct conversations and of its groups of 2 to `maxGroupSize`
   * members (those whose members are pushed that user's presence; a group of one has nobody to tell), in id order. One query for the whole batch: a
   * presence window's changes cost one store call, not one per user.
   */
  listPresenceConversations(userIds: readonly string[], maxGroupSize: number): Promise<string[][]>;
  /** The user's conversations as positions (id, lastSeq, rev, readSeq), most recently active first (as listMyConversations). */
  listPositions(userId: string): Promise<ConversationPosition[]>;
  countMemberships(userId: string): Promise<number>;
  /**
   * Public groups whose name contains `query`, compared after Unicode case folding and NFKC (see docs/protocol.md,
   * conversation.search), ordered by name then id, at most `limit`. Served from an index: it never scans every group,
   * so one search cannot hold the store for long; when very many groups match, the page is ordered from the first
   * max(200, limit) matches the index yields.
   */
  searchPublic(query: string, limit: number): Promise<Conversation[]>;
  listConversations(opts: { limit: number; afterId?: string }): Promise<Conversation[]>;
  renameConversation(id: string, name: string): Promise<Conversation | null>;
  /** Delete the conversation with its members, invites and messages. */
  deleteConversation(id: string): Promise<boolean>;
  /**
   * Delete the conversation like deleteConversation and return who its members were at that moment, in one
   * transaction: a member who joined a moment before is in the list (and can be told), one who joins after finds no
   * conversation. With `onlyMember`, delete only if that user is its one member (the last owner leaving): otherwise
   * nothing changes and the result says why.
   */
  deleteConversationWithMembers(input: { id: string; onlyMember?: string }): Promise<DeleteConversationResult>;

  getMember(conversationId: string, userId: string): Promise<Member | null>;
  /**
   * The conversation with `userId`'s member record, or null when either is missing (one query: the check every
   * request on a conversation makes).
   */
  getMembership(conversationId: string, userId: string): Promise<{ conversation: Conversation; member: Member } | null>;
  /**
   * Members in join order (joinedAt, then userId). With `page`: only those after `page.after` in that order, at most
   * `page.limit` of them (a keyset page: members joining meanwhile never shift a page).
   */
  listMembers(conversationId: string, page?: { after?: { joinedAt: number; userId: string }; limit: number }): Promise<Member[]>;
  /** Ids of every member. */
  listMemberIds(conversationId: string): Promise<string[]>;
  /**
   * Add a member unless already present or the conversation already has `maxMembers` members; atomic, so concurrent
   * joins never exceed the limit. A new member's read cursor starts at the conversation's current lastSeq, so joining
   * a busy group does not show its whole history as unread. A user banned from the group is refused ('banned'), checked
   * in the same transaction as the insert.
   */
  addMember(input: { conversationId: string; userId: string; role: Role; now: number; maxMembers: number; maxConversations?: number }): Promise<AddMemberResult>;
  /** Remove a member (a departure at a new rev, for sync); `memberCount` is the count right after, as for addMember. */
  removeMember(conversationId: string, userId: string): Promise<Removal>;
  setRole(conversationId: string, userId: string, role: Role): Promise<Member | null>;
  /**
   * Ban a user from a group and remove them if a member, in one transaction; banning again keeps the first ban.
   * `removed` says whether they were a member (see Removal). A banned user is refused by addMember and redeemInvite
   * ('banned').
   */
  banMember(input: { conversationId: string; userId: string; by: string; now: number }): Promise<Removal>;
  /** Lift a ban; false if there was none. */
  unbanMember(conversationId: string, userId: string): Promise<boolean>;
  /** Bans in ban order (bannedAt, then userId); with `page`, those after `page.after`, at most `page.limit`. */
  listBans(conversationId: string, page?: { after?: { bannedAt: number; userId: string }; limit: number }): Promise<Ban[]>;
  /** Users who share at least one conversation with `userId` (excluding the user). */
  listContacts(userId: string): Promise<string[]>;

  // ---- invites
  createInvite(invite: Omit<Invite, 'uses' | 'revoked'>): Promise<Invite>;
  getInvite(token: string): Promise<Invite | null>;
  /** Invites in creation order (createdAt, then token); with `page`, those after `page.after`, at most `page.limit`. */
  listInvites(conversationId: string, page?: { after?: { createdAt: number; token: string }; limit: number }): Promise<Invite[]>;
  revokeInvite(token: string): Promise<Invite | null>;
  /**
   * Atomically check the invite (exists, not revoked, not expired at `now`, uses < maxUses), add the user as a member
   * (if not one already) and count the use. Two concurrent redemptions of a one-use invite: exactly one succeeds.
   * A user banned from the group is refused ('banned') and the use is not counted.
   * A user at `maxConversations` who is not already a member rejects LIMIT_EXCEEDED (the invite use is not counted).
   */
  redeemInvite(input: { token: string; userId: string; now: number; maxMembers: number; maxConversations?: number }): Promise<RedeemResult>;

  // ---- messages
  /**
   * Append a message: allocate the next seq of the conversation and store the message, atomically. A sender who is
   * not a member (checked in the same transaction, so a concurrent kick cannot be overtaken) rejects NOT_MEMBER, even
   * for a retry of a key they used before. Otherwise, if a message with the same (conversationId, senderId, key)
   * exists, store nothing and return it with `duplicate: true`. Otherwise a banned sender (checked likewise, so a ban is
   * enforced on a connection opened just before it) rejects BANNED. Nothing is stored on a rejection. In the same
   * transaction:
   * - `createdAt` is max(now, the conversation's previous createdAt): it never decreases along seq, so history by time
   *   can follow seq order;
   * - the sender's read cursor moves up to the new seq (sending implies having read what came before), so a member
   *   never has an unread message of their own and unread = lastSeq - readSeq.
   */
  appendMessage(input: NewMessage): Promise<{ message: Message; duplicate: boolean }>;
  getMessage(conversationId: string, seq: number): Promise<Message | null>;
  /** Replace text and meta and set editedAt. Returns null if there is no such message or it is deleted (a tombstone stays one). */
  editMessage(input: { conversationId: string; seq: number; text: string; meta: unknown | null; now: number }): Promise<Message | null>;
  /** Turn the message into a tombstone (deleted, text '', meta null); its seq stays. Returns null if there is no such message or it is already deleted. */
  deleteMessage(input: { conversationId: string; seq: number; now: number }): Promise<Message | null>;
  /** Messages with seq > afterSeq, ascending, at most `limit`. */
  messagesAfter(conversationId: string, afterSeq: number, limit: number): Promise<Message[]>;
  /**
   * `messagesAfter` for many conversations in one call (one round trip on a network store): for each request, in
   * request order, its messages with seq > afterSeq, ascending, at most `limit` each.
   */
  messagesAfterMany(requests: ReadonlyArray<{ conversationId: string; afterSeq: number }>, limit: number): Promise<Message[][]>;
  /** Messages with seq < beforeSeq (or all when null), the newest `limit` of them, returned ascending. */
  messagesBefore(conversationId: string, beforeSeq: number | null, limit: number): Promise<Message[]>;
  /** Messages created strictly before `beforeTime`, the newest `limit` of them, returned ascending. */
  messagesBeforeTime(conversationId: string, beforeTime: number, limit: number): Promise<Message[]>;

  // ---- change catch-up
  /**
   * The conversation's changes with rev > sinceRev, ascending by rev, at most `limit` of them. Each edit, delete,
   * markRead that moved, addMember/redeemInvite that added, removeMember, setRole and renameConversation bumps the
   * conversation's `rev` by one in its own transaction and stamps the changed row with it, so every rev value names at
   * most one change and a reader that saw rev N misses nothing by asking for rev > N. A rename changes the conversation
   * row only (compare `Conversation.rev`). Appends bump nothing: new messages are caught up by seq.
   */
  changesSince(conversationId: string, sinceRev: number, limit: number): Promise<Change[]>;

  // ---- read state
  /**
   * Move the member's read cursor forward to min(seq, lastSeq); never backwards. Returns the resulting cursor and
   * the unread count (others' messages above it), or null if not a member.
   */
  markRead(conversationId: string, userId: string, seq: number): Promise<{ readSeq: number; unread: number; moved: boolean } | null>;
}

export interface NewUser {
  id: string;
  name: string;
  passwordHash: string | null;
  isAdmin?: boolean;
  now: number;
}

export interface UserRecord {
  id: string;
  name: string;
  passwordHash: string | null;
  isAdmin: boolean;
  banned: boolean;
  createdAt: number;
  lastSeen: number | null;
  /** 'builtin': an account of this server (password); 'product': a user of the integrating product's tokens. */
  origin: UserOrigin;
  /** A product user's metadata (set by the admin upsert), or null. */
  metadata: unknown | null;
  /** Tokens of our own carry the generation they were issued in; only the current one is valid. */
  tokenGeneration: number;
}

export type UserOrigin = 'builtin' | 'product';

export interface NewMessage {
  /** A fresh random id made by the caller (a UUID): unique by construction, so the store does not index it. */
  id: string;
  conversationId: string;
  senderId: string;
  key: string;
  text: string;
  meta: unknown | null;
  now: number;
}

/**
 * `memberCount`: the conversation's member count right after this change, read in the same transaction, so that
 * concurrent joins and leaves cannot change it: what decides whether members are told of the change one by one or in a
 * summary (a count read afterwards was the count after all of them: 80 concurrent leaves from 151 members were all told
 * one by one, 1,000 concurrent joins all summarised).
 */
export type AddMemberResult =
  | { status: 'added'; member: Member; memberCount: number }
  | { status: 'exists'; member: Member }
  | { status: 'full' }
  | { status: 'banned' }
  | { status: 'no_conversation' };

export type DeleteConversationResult =
  | { status: 'deleted'; memberIds: string[] }
  /** No such conversation, or `onlyMember` is not a member of it. */
  | { status: 'not_found' }
  /** `onlyMember` is a member, but not the only one. */
  | { status: 'others_remain' };

/** Whether the user was a member and was removed; if so, the member count right after (see AddMemberResult). */
export type Removal = { removed: false } | { removed: true; memberCount: number };

export type RedeemResult =
  | { status: 'joined'; member: Member; conversationId: string; memberCount: number }
  | { status: 'already_member'; member: Member; conversationId: string }
  | { status: 'invalid' | 'expired' | 'exhausted' | 'revoked' | 'full' | 'banned' };
