import { ParleyError } from '../protocol/errors.js';
import type { Conversation, MyConversation, Visibility } from '../protocol/types.js';
import type { Store, UserRecord } from '../store/store.js';
import type { Chat } from './chat.js';
import { type ProductUserInput, upsertProductUser } from './product-users.js';
import type { Publisher } from './publisher.js';
import { ReplyBudget, takeLeading } from './reply-budget.js';

/** A page of an admin listing: `more` when another follows, fetched with `after: next` (the last id of this page). */
export type AdminPage<K extends string, T> = Record<K, T[]> & { more: boolean; next: string | null };

export type PublicUser = Omit<UserRecord, 'passwordHash' | 'tokenGeneration'>;
export const publicUser = ({ passwordHash: _hidden, tokenGeneration: _internal, ...user }: UserRecord): PublicUser => user;

/** What the operators of a Parley server may do through the admin API: list, ban, create and delete. */
export class Admin {
  constructor(
    private readonly store: Store,
    private readonly chat: Chat,
    private readonly publisher: Publisher,
    /** Called when the close event of a stored ban cannot be published (the ban holds anyway: every write checks it). */
    private readonly onPublishError: (err: unknown) => void = () => {},
    /** Byte budget of a listing page (users carry metadata of up to 4 KB each), 1 KiB of it kept for the envelope. */
    private readonly maxReplyBytes: number = 256 * 1024,
  ) {}

  /** Users by id, at most `limit` and at most maxReplyBytes of JSON; `more`/`next` page on. */
  async listUsers(limit: number, afterId?: string): Promise<AdminPage<'users', PublicUser>> {
    const rows = (await this.store.listUsers({ limit: limit + 1, afterId })).map(publicUser);
    return this.page('users', rows, limit);
  }

  /**
   * Ban a user: refused at every later login, connection and write (BANNED), and their open connections are closed
   * now (4502). Refused (UNAVAILABLE, nothing stored) while the bus refuses publishes (Publisher.probe). Once the ban
   * is stored the answer is success: a close command that fails then is owed as a resync (which closes them too), and
   * the ban is enforced on every write whether or not they close.
   */
  async setBanned(userId: string, banned: boolean): Promise<PublicUser> {
    // A ban is refused (UNAVAILABLE, nothing stored) while the bus refuses publishes, like every removal of access.
    if (banned) await this.publisher.probe();
    if (!(await this.store.setBanned(userId, banned))) throw new ParleyError('NOT_FOUND', 'no such user');
    if (banned) await this.publisher.controlUser(userId, 'ban').catch(this.onPublishError);
    const user = await this.store.getUser(userId);
    if (!user) throw new ParleyError('NOT_FOUND', 'no such user');
    return publicUser(user);
  }

  /** Create or update a product user (see product-users.ts); CONFLICT for a built-in account's id. */
  async upsertProductUser(userId: string, input: ProductUserInput): Promise<{ user: PublicUser; created: boolean }> {
    const { user, created } = await upsertProductUser(this.store, userId, input, Date.now());
    return { user: publicUser(user), created };
  }

  /** Conversations by id, at most `limit` and at most maxReplyBytes of JSON; `more`/`next` page on. */
  async listConversations(limit: number, afterId?: string): Promise<AdminPage<'conversations', Conversation>> {
    return this.page('conversations', await this.store.listConversations({ limit: limit + 1, afterId }), limit);
  }

  /** The leading rows that fit `limit` (one more was read to learn whether more follow) and the byte budget. */
  private page<K extends string, T extends { id: string }>(key: K, rows: T[], limit: number): AdminPage<K, T> {
    const { taken, cut } = takeLeading(rows.slice(0, limit), new ReplyBudget(this.maxReplyBytes - 1024));
    const more = cut || rows.length > limit;
    return { [key]: taken, more, next: more && taken.length > 0 ? taken[taken.length - 1].id : null } as AdminPage<K, T>;
  }

  async createGroup(input: { name: string; visibility: Visibility; ownerId: string }): Promise<MyConversation> {
    if (!(await this.store.getUser(input.ownerId))) throw new ParleyError('NOT_FOUND', 'no such owner');
    return (await this.chat.createGroup(input.ownerId, { name: input.name, visibility: input.visibility })).conversation;
  }

  async deleteConversation(conversationId: string): Promise<void> {
    if (!(await this.store.getConversation(conversationId))) throw new ParleyError('NOT_FOUND');
    await this.chat.deleteConversationAndTell(conversationId);
  }
}
