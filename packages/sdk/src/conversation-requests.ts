import type { Ban, Conversation, Invite, Member, MyConversation, RequestType, ResultMap } from '@parley/protocol';
import type { RequestInput } from './types.js';

/** A paged result: one page of items, whether more follow, and the cursor of the next page. */
type PageOf<K extends string, T> = { [key in K]: T[] } & { more: boolean; next: string | null };

/** Bounds a read of every page: each page holds at least one item, and 10,000 pages of up to 1000 is more than any list. */
const MAX_PAGES = 10_000;

/**
 * Typed wrappers of the requests that find, create and manage conversations, members and invites, on top of
 * `request` (ParleyClient extends this). Each resolves with the part of the result a caller wants and rejects like
 * `request` (a ParleyClientError with the server's code: NOT_MEMBER, FORBIDDEN, NOT_FOUND, BANNED, LIMIT_EXCEEDED, …;
 * see docs/protocol.md of the Parley server for each request's errors).
 */
export abstract class ConversationRequests {
  abstract request<T extends RequestType>(type: T, data: RequestInput<T>, options?: { timeoutMs?: number }): Promise<ResultMap[T]>;

  /** One conversation of yours, as `conversations()` lists it (`conversation.get`). */
  conversation(conversationId: string): Promise<MyConversation> {
    return this.request('conversation.get', { conversationId }).then((r) => r.conversation);
  }

  /** A new group you own (`conversation.create`); `public` groups are found by search, `private` ones by invite. */
  createGroup(name: string, visibility: 'public' | 'private' = 'public'): Promise<MyConversation> {
    return this.request('conversation.create', { name, visibility }).then((r) => r.conversation);
  }

  /** The direct conversation with a user, created on first use (`direct.open`). */
  openDirect(userId: string): Promise<MyConversation> {
    return this.request('direct.open', { userId }).then((r) => r.conversation);
  }

  /**
   * Public groups by name (`conversation.search`: 3+ characters match within names, 1–2 match their start, '' every
   * group; Unicode case- and accent-insensitive): at most `limit`, and whether more match.
   */
  searchGroups(query: string, limit?: number): Promise<{ conversations: Conversation[]; more: boolean }> {
    return this.request('conversation.search', limit === undefined ? { query } : { query, limit });
  }

  /** Join a public group (`conversation.join`). */
  join(conversationId: string): Promise<MyConversation> {
    return this.request('conversation.join', { conversationId }).then((r) => r.conversation);
  }

  /** Leave a group (`conversation.leave`); an owner may leave only as its last member, which deletes it. */
  async leave(conversationId: string): Promise<void> {
    await this.request('conversation.leave', { conversationId });
  }

  /** Rename a group (owner or admin; `conversation.rename`). */
  rename(conversationId: string, name: string): Promise<Conversation> {
    return this.request('conversation.rename', { conversationId, name }).then((r) => r.conversation);
  }

  /** Delete a group with its history (owner; `conversation.delete`). */
  async deleteConversation(conversationId: string): Promise<void> {
    await this.request('conversation.delete', { conversationId });
  }

  /** Every member of a conversation, with roles and read positions: all pages of `member.list`. */
  members(conversationId: string): Promise<Member[]> {
    return this.allPages('members', (after) => this.request('member.list', after === undefined ? { conversationId } : { conversationId, after }));
  }

  /** Remove a member from a group (owner or admin; `member.kick`). They may join again, unlike after `ban`. */
  async kick(conversationId: string, userId: string): Promise<void> {
    await this.request('member.kick', { conversationId, userId });
  }

  /** Make a member an admin or a plain member again (owner; `member.role`). */
  setRole(conversationId: string, userId: string, role: 'admin' | 'member'): Promise<Member> {
    return this.request('member.role', { conversationId, userId, role }).then((r) => r.member);
  }

  /** Ban a user from a group (owner or admin): removed if a member, and refused by join and invites until unbanned. */
  async ban(conversationId: string, userId: string): Promise<void> {
    await this.request('member.ban', { conversationId, userId });
  }

  async unban(conversationId: string, userId: string): Promise<void> {
    await this.request('member.unban', { conversationId, userId });
  }

  /** Every ban of a group, oldest first (owner or admin): all pages of `member.bans`. */
  bans(conversationId: string): Promise<Ban[]> {
    return this.allPages('bans', (after) => this.request('member.bans', after === undefined ? { conversationId } : { conversationId, after }));
  }

  /**
   * The user with exactly this username, `{id, name}`, e.g. to `send({to: user.id}, ...)`. Rejects with NOT_FOUND when
   * there is none; there is no listing or prefix search.
   */
  findUser(username: string): Promise<ResultMap['user.find']['user']> {
    return this.request('user.find', { username }).then((r) => r.user);
  }

  /** An invite link's token for a group (owner or admin; `invite.create`), optionally expiring or limited in uses. */
  createInvite(conversationId: string, options: { expiresInSeconds?: number; maxUses?: number } = {}): Promise<Invite> {
    return this.request('invite.create', { conversationId, ...options }).then((r) => r.invite);
  }

  /** Every invite of a group (owner or admin): all pages of `invite.list`. */
  invites(conversationId: string): Promise<Invite[]> {
    return this.allPages('invites', (after) => this.request('invite.list', after === undefined ? { conversationId } : { conversationId, after }));
  }

  /** Revoke an invite (owner or admin; `invite.revoke`): accepting it fails from now on. */
  revokeInvite(token: string): Promise<Invite> {
    return this.request('invite.revoke', { token }).then((r) => r.invite);
  }

  /** Join the group of an invite (`invite.accept`). */
  acceptInvite(token: string): Promise<MyConversation> {
    return this.request('invite.accept', { token }).then((r) => r.conversation);
  }

  private async allPages<K extends string, T>(key: K, page: (after: string | undefined) => Promise<PageOf<K, T>>): Promise<T[]> {
    const all: T[] = [];
    let after: string | undefined;
    for (let n = 0; n < MAX_PAGES; n++) {
      const r = await page(after);
      all.push(...r[key]);
      if (!r.more || r.next === null) break;
      after = r.next;
    }
    return all;
  }
}
