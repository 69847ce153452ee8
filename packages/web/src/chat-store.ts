/**
 * The client's view of the server: conversations, the messages loaded of each, members, presence, typing and the
 * sends still in flight, kept up to date from the SDK's events. Components read it and re-render on `subscribe`.
 *
 * Messages are kept per conversation by `seq`, so whatever path a message comes by (a live event, catch-up after a
 * reconnect, a history page, the reply to an edit) it is shown once, in order; of two copies the more recent edit wins.
 */
import { newIdempotencyKey, type Conversation, type ClientState, type Member, type Message, type MyConversation, type ParleyClient } from '@parley/sdk';

/** A message of ours that the server has not acknowledged yet (the SDK's outbox holds it while offline). */
export interface PendingMessage {
  key: string;
  conversationId: string;
  text: string;
  createdAt: number;
  /** Set when the server refused it for good (e.g. too large): the message was not stored. */
  error?: string;
}

export interface ConversationView {
  /** Loaded messages by seq. */
  messages: Map<number, Message>;
  /** Whether older messages exist than the oldest loaded one. */
  olderMore: boolean;
  loadingOlder: boolean;
  /** The newest page has been fetched (history is loaded on first open). */
  loaded: boolean;
}

const TYPING_SEND_EVERY_MS = 3000;
const HISTORY_PAGE = 50;

export class ChatStore {
  readonly conversations = new Map<string, MyConversation>();
  readonly views = new Map<string, ConversationView>();
  readonly members = new Map<string, Map<string, Member>>();
  readonly presence = new Map<string, boolean>();
  /** The `lastSeen` of the presence change shown for each user (older changes are ignored). */
  private readonly presenceAt = new Map<string, number>();
  /** conversationId → userId → when the indicator expires (ms). */
  readonly typing = new Map<string, Map<string, number>>();
  readonly pending = new Map<string, PendingMessage[]>();
  connection: ClientState = 'closed';
  activeId: string | null = null;
  /** A short message for the user (an error or what just happened), shown until the next one. */
  notice: string | null = null;

  private readonly listeners = new Set<() => void>();
  private readonly unsubscribes: Array<() => void> = [];
  private typingTimer: ReturnType<typeof setInterval> | undefined;
  private lastTypingSent = new Map<string, number>();

  constructor(readonly client: ParleyClient, readonly me: { id: string; name: string }) {
    const on = client.on.bind(client);
    this.unsubscribes.push(
      on('state', (s) => this.change(() => (this.connection = s))),
      on('synced', (info) => this.onSynced(info.unknown, info.removed)),
      on('message', (m) => this.onMessage(m)),
      on('message.updated', (m) => this.change(() => this.upsert(m))),
      on('read', (r) => this.onRead(r.conversationId, r.userId, r.seq)),
      on('typing', (t) => this.onTyping(t.conversationId, t.userId, t.typing, t.expiresInMs)),
      on('presence', (p) => this.change(() => p.users.forEach((u) => this.notePresence(u)))),
      on('member.joined', (e) => this.onMembership(e.conversationId, e.member.userId, e.member)),
      on('member.changed', (e) => this.change(() => this.putMember(e.conversationId, e.member))),
      on('member.left', (e) => this.onMembership(e.conversationId, e.userId, null)),
      on('member.summary', (e) => this.change(() => {
        const c = this.conversations.get(e.conversationId);
        if (c) c.memberCount = e.memberCount;
      })),
      on('member.role', (e) => this.onRole(e.conversationId, e.userId, e.role)),
      on('conversation.updated', (c) => this.onConversation(c)),
      on('conversation.removed', (e) => this.onRemoved(e.conversationId, e.reason)),
    );
    this.typingTimer = setInterval(() => this.expireTyping(), 1000);
    const onVisible = () => {
      if (document.visibilityState === 'visible' && this.activeId) this.markRead(this.activeId);
    };
    document.addEventListener('visibilitychange', onVisible);
    this.unsubscribes.push(() => document.removeEventListener('visibilitychange', onVisible));
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  dispose(): void {
    for (const u of this.unsubscribes) u();
    clearInterval(this.typingTimer);
    this.listeners.clear();
  }

  // ------------------------------------------------------------------ reading

  /** Conversations, most recently active first. */
  sortedConversations(): MyConversation[] {
    return [...this.conversations.values()].sort((a, b) => activity(b) - activity(a) || a.id.localeCompare(b.id));
  }

  /** A conversation's loaded messages, oldest first. */
  messagesOf(conversationId: string): Message[] {
    const view = this.views.get(conversationId);
    return view ? [...view.messages.values()].sort((a, b) => a.seq - b.seq) : [];
  }

  title(c: MyConversation): string {
    return c.kind === 'direct' ? (c.peer?.name ?? 'Direct message') : (c.name ?? 'Group');
  }

  nameOf(conversationId: string, userId: string): string {
    if (userId === this.me.id) return this.me.name;
    const member = this.members.get(conversationId)?.get(userId);
    if (member) return member.name;
    const c = this.conversations.get(conversationId);
    if (c?.peer?.id === userId) return c.peer.name;
    return 'Someone';
  }

  /** Whether someone other than the sender has read up to `seq` (their read cursor is at or past it). */
  seenBy(conversationId: string, seq: number): string[] {
    const members = this.members.get(conversationId);
    if (!members) return [];
    return [...members.values()].filter((m) => m.userId !== this.me.id && m.readSeq >= seq).map((m) => m.name);
  }

  typingNames(conversationId: string): string[] {
    const now = Date.now();
    const users = this.typing.get(conversationId);
    if (!users) return [];
    return [...users].filter(([, until]) => until > now).map(([id]) => this.nameOf(conversationId, id));
  }

  // ------------------------------------------------------------------ actions

  async open(conversationId: string | null): Promise<void> {
    this.change(() => (this.activeId = conversationId));
    if (!conversationId || !this.conversations.has(conversationId)) return;
    const view = this.viewOf(conversationId);
    const tasks: Promise<unknown>[] = [];
    if (!view.loaded) tasks.push(this.loadNewest(conversationId));
    if (!this.members.has(conversationId)) tasks.push(this.loadMembers(conversationId));
    await Promise.all(tasks).catch((err) => this.fail(err));
    this.markRead(conversationId);
  }

  async loadOlder(conversationId: string): Promise<void> {
    const view = this.viewOf(conversationId);
    if (view.loadingOlder || !view.olderMore) return;
    const oldest = Math.min(...view.messages.keys());
    this.change(() => (view.loadingOlder = true));
    try {
      const page = await this.client.history(conversationId, { beforeSeq: oldest, limit: HISTORY_PAGE });
      this.change(() => {
        page.messages.forEach((m) => this.upsert(m));
        view.olderMore = page.more;
      });
    } catch (err) {
      this.fail(err);
    } finally {
      this.change(() => (view.loadingOlder = false));
    }
  }

  /** Sends through the SDK's outbox: shown at once as pending, then as the stored message once acknowledged. */
  send(conversationId: string, text: string): void {
    const entry: PendingMessage = { key: newIdempotencyKey(), conversationId, text, createdAt: Date.now() };
    this.change(() => this.pending.set(conversationId, [...(this.pending.get(conversationId) ?? []), entry]));
    this.lastTypingSent.delete(conversationId); // the send ends our typing indicator on the server
    this.client.send(conversationId, text, undefined, { key: entry.key }).then(
      (m) => this.change(() => {
        this.dropPending(conversationId, entry.key);
        this.upsert(m);
      }),
      (err: unknown) => this.change(() => (entry.error = messageOf(err))),
    );
  }

  discardPending(conversationId: string, key: string): void {
    this.change(() => this.dropPending(conversationId, key));
  }

  /** Resolves with whether the edit was stored; when not (e.g. while reconnecting) the user is told and may retry. */
  async edit(conversationId: string, seq: number, text: string): Promise<boolean> {
    try {
      const m = await this.client.edit(conversationId, seq, text);
      this.change(() => this.upsert(m));
      return true;
    } catch (err) {
      this.fail(offline(err) ? 'Not connected: the edit was not saved. Save it again once reconnected.' : err);
      return false;
    }
  }

  async remove(conversationId: string, seq: number): Promise<void> {
    try {
      const m = await this.client.deleteMessage(conversationId, seq);
      this.change(() => this.upsert(m));
    } catch (err) {
      this.fail(offline(err) ? 'Not connected: the message was not deleted. Delete it again once reconnected.' : err);
    }
  }

  /** Tells the others we are typing, at most every few seconds (the server expires the indicator by itself). */
  typingNow(conversationId: string): void {
    const last = this.lastTypingSent.get(conversationId) ?? 0;
    if (Date.now() - last < TYPING_SEND_EVERY_MS || this.connection !== 'open') return;
    this.lastTypingSent.set(conversationId, Date.now());
    this.client.typing(conversationId, true).catch(() => {});
  }

  markRead(conversationId: string): void {
    const c = this.conversations.get(conversationId);
    if (!c || document.visibilityState !== 'visible' || this.activeId !== conversationId) return;
    if (c.readSeq >= c.lastSeq && c.unread === 0) return;
    const seq = c.lastSeq;
    this.change(() => {
      c.readSeq = Math.max(c.readSeq, seq);
      c.unread = 0;
    });
    if (this.connection === 'open') this.client.markRead(conversationId, seq).catch(() => {});
  }

  /** Opens (or finds) the direct conversation with the user of this exact username. */
  async startDirect(username: string): Promise<string> {
    const user = await this.client.findUser(username.trim());
    const { conversation } = await this.client.request('direct.open', { userId: user.id });
    this.change(() => this.addConversation(conversation));
    void this.loadPresence([user.id]);
    return conversation.id;
  }

  async createGroup(name: string, visibility: 'public' | 'private'): Promise<string> {
    const { conversation } = await this.client.request('conversation.create', { name, visibility });
    this.change(() => this.addConversation(conversation));
    return conversation.id;
  }

  async join(conversationId: string): Promise<void> {
    const { conversation } = await this.client.request('conversation.join', { conversationId });
    this.change(() => this.addConversation(conversation));
  }

  async acceptInvite(token: string): Promise<string> {
    const { conversation } = await this.client.request('invite.accept', { token });
    this.change(() => this.addConversation(conversation));
    return conversation.id;
  }

  async leave(conversationId: string): Promise<void> {
    await this.client.request('conversation.leave', { conversationId });
    this.change(() => this.forget(conversationId));
  }

  async loadMembers(conversationId: string): Promise<void> {
    const listed: Member[] = [];
    let after: string | undefined;
    for (let page = 0; page < 1000; page++) {
      const r = await this.client.request('member.list', after === undefined ? { conversationId } : { conversationId, after });
      listed.push(...r.members);
      if (!r.more || r.next === null) break;
      after = r.next;
    }
    this.change(() => {
      const before = this.members.get(conversationId);
      this.members.set(conversationId, new Map());
      for (const m of listed) this.putMember(conversationId, m, before?.get(m.userId));
    });
  }

  clearNotice(): void {
    this.change(() => (this.notice = null));
  }

  fail(err: unknown): void {
    this.change(() => (this.notice = messageOf(err)));
  }

  // ------------------------------------------------------------------ events

  private onSynced(unknown: MyConversation[], removed: string[]): void {
    this.change(() => {
      unknown.forEach((c) => this.addConversation(c));
      removed.forEach((id) => this.forget(id));
    });
    void this.loadPresence([...this.conversations.values()].flatMap((c) => (c.peer ? [c.peer.id] : [])));
    if (this.activeId) void this.open(this.activeId);
  }

  private onMessage(m: Message): void {
    const c = this.conversations.get(m.conversationId);
    if (!c) void this.refreshConversation(m.conversationId);
    this.change(() => {
      this.upsert(m);
      if (m.key) this.dropPending(m.conversationId, m.key);
      this.typing.get(m.conversationId)?.delete(m.senderId);
      // A message from a member tells that they have read the conversation up to it.
      const sender = this.members.get(m.conversationId)?.get(m.senderId);
      if (sender) sender.readSeq = Math.max(sender.readSeq, m.seq);
      if (!c) return;
      c.lastSeq = Math.max(c.lastSeq, m.seq);
      c.lastMessageAt = Math.max(c.lastMessageAt ?? 0, m.createdAt);
      if (m.senderId === this.me.id) c.readSeq = Math.max(c.readSeq, m.seq);
      else if (m.seq > c.readSeq) c.unread++;
    });
    this.markRead(m.conversationId);
  }

  private onRead(conversationId: string, userId: string, seq: number): void {
    this.change(() => {
      const member = this.members.get(conversationId)?.get(userId);
      if (member) member.readSeq = Math.max(member.readSeq, seq);
      const c = this.conversations.get(conversationId);
      if (userId === this.me.id && c) {
        // Read on another device.
        c.readSeq = Math.max(c.readSeq, seq);
        if (c.readSeq >= c.lastSeq) c.unread = 0;
      }
    });
  }

  private onTyping(conversationId: string, userId: string, typing: boolean, expiresInMs: number): void {
    this.change(() => {
      let users = this.typing.get(conversationId);
      if (!users) this.typing.set(conversationId, (users = new Map()));
      if (typing) users.set(userId, Date.now() + expiresInMs);
      else users.delete(userId);
    });
  }

  /**
   * Stores a member as a list or a catch-up reported them, keeping the furthest read cursor seen: a `read` event may
   * have arrived after that report was read on the server and before it reached us.
   */
  private putMember(conversationId: string, member: Member, known = this.members.get(conversationId)?.get(member.userId)): void {
    const members = this.members.get(conversationId);
    if (!members) return;
    members.set(member.userId, known ? { ...member, readSeq: Math.max(member.readSeq, known.readSeq) } : member);
  }

  /** A member joined (`member`) or left (null): the member list, if loaded, and the count follow. */
  private onMembership(conversationId: string, userId: string, member: Member | null): void {
    this.change(() => {
      const members = this.members.get(conversationId);
      const known = members?.has(userId);
      const c = this.conversations.get(conversationId);
      if (member) {
        this.putMember(conversationId, member);
        if (c && !known) c.memberCount++;
      } else {
        members?.delete(userId);
        if (c && known !== false) c.memberCount = Math.max(1, c.memberCount - 1);
      }
    });
  }

  private onRole(conversationId: string, userId: string, role: Member['role']): void {
    this.change(() => {
      const member = this.members.get(conversationId)?.get(userId);
      if (member) member.role = role;
      const c = this.conversations.get(conversationId);
      if (c && userId === this.me.id) c.role = role;
    });
  }

  private onConversation(conversation: Conversation): void {
    const known = this.conversations.get(conversation.id);
    if (!known) {
      void this.refreshConversation(conversation.id);
      return;
    }
    this.change(() => {
      known.name = conversation.name;
      known.memberCount = conversation.memberCount;
      known.lastSeq = Math.max(known.lastSeq, conversation.lastSeq);
    });
  }

  private onRemoved(conversationId: string, reason: string): void {
    const c = this.conversations.get(conversationId);
    this.change(() => {
      this.forget(conversationId);
      if (c && reason !== 'left') this.notice = `You are no longer in ${this.title(c)} (${reason}).`;
    });
  }

  private async refreshConversation(conversationId: string): Promise<void> {
    try {
      const { conversation } = await this.client.request('conversation.get', { conversationId });
      this.change(() => this.addConversation(conversation));
      if (conversation.peer) await this.loadPresence([conversation.peer.id]);
    } catch {
      /* gone again, or offline: the next sync brings it */
    }
  }

  // ------------------------------------------------------------------ internals

  private addConversation(c: MyConversation): void {
    const known = this.conversations.get(c.id);
    if (known) {
      // Keep what events moved on since this copy was read.
      c.lastSeq = Math.max(c.lastSeq, known.lastSeq);
      c.lastMessageAt = Math.max(c.lastMessageAt ?? 0, known.lastMessageAt ?? 0) || null;
    }
    this.conversations.set(c.id, c);
  }

  /**
   * A presence change, unless an older one than what is shown: two server instances can deliver one user's changes out
   * of order, and each carries the time it happened in `lastSeen` (docs/protocol.md, `presence`).
   */
  private notePresence(u: { userId: string; online: boolean; lastSeen: number | null }): void {
    if (isStalePresence(this.presenceAt.get(u.userId), u.lastSeen)) return;
    this.presenceAt.set(u.userId, u.lastSeen ?? 0);
    this.presence.set(u.userId, u.online);
  }

  /** Where these users' presence stands now (of direct peers: the server pushes their changes from then on). */
  private async loadPresence(userIds: string[]): Promise<void> {
    if (userIds.length === 0) return;
    try {
      const users = await this.client.presence(userIds);
      this.change(() => users.forEach((u) => this.notePresence(u)));
    } catch {
      /* offline: the next sync asks again */
    }
  }

  private forget(conversationId: string): void {
    this.conversations.delete(conversationId);
    this.views.delete(conversationId);
    this.members.delete(conversationId);
    this.pending.delete(conversationId);
    this.typing.delete(conversationId);
  }

  private async loadNewest(conversationId: string): Promise<void> {
    const page = await this.client.history(conversationId, { limit: HISTORY_PAGE });
    const view = this.viewOf(conversationId);
    this.change(() => {
      page.messages.forEach((m) => this.upsert(m));
      view.olderMore = page.more;
      view.loaded = true;
    });
  }

  private viewOf(conversationId: string): ConversationView {
    let view = this.views.get(conversationId);
    if (!view) this.views.set(conversationId, (view = { messages: new Map(), olderMore: false, loadingOlder: false, loaded: false }));
    return view;
  }

  /** Keeps one copy per seq: the more recently edited one (a deletion is an edit too). */
  private upsert(m: Message): void {
    const view = this.viewOf(m.conversationId);
    const had = view.messages.get(m.seq);
    if (had && (had.editedAt ?? 0) > (m.editedAt ?? 0)) return;
    view.messages.set(m.seq, m);
  }

  private dropPending(conversationId: string, key: string): void {
    const list = this.pending.get(conversationId);
    if (list) this.pending.set(conversationId, list.filter((p) => p.key !== key));
  }

  private expireTyping(): void {
    const now = Date.now();
    let changed = false;
    for (const users of this.typing.values()) {
      for (const [id, until] of users) if (until <= now) changed = users.delete(id) || changed;
    }
    if (changed) this.emit();
  }

  private change(mutate: () => void): void {
    mutate();
    this.emit();
  }

  private emit(): void {
    for (const l of this.listeners) l();
  }
}

function activity(c: MyConversation): number {
  return c.lastMessageAt ?? c.createdAt;
}

/** A request that failed only because there was no connection (edits and deletes are not queued like sends). */
function offline(err: unknown): boolean {
  return (err as { code?: unknown })?.code === 'DISCONNECTED' || (err as { code?: unknown })?.code === 'TIMEOUT';
}

/** What to tell the user of a failure: the server's message, and for invalid input what each field must be. */
export function messageOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const details = (err as { details?: unknown }).details;
  if (!Array.isArray(details)) return err.message;
  const fields = details
    .filter((d): d is { path: string; message: string } => typeof d?.message === 'string')
    .map((d) => (d.path ? `${d.path}: ${d.message}` : d.message));
  return fields.length > 0 ? fields.join('; ') : err.message;
}

/** Whether a presence change (its `lastSeen`) is older than the one shown (at `shownAt`), so it must be ignored. */
export function isStalePresence(shownAt: number | undefined, lastSeen: number | null): boolean {
  return shownAt !== undefined && (lastSeen ?? 0) < shownAt;
}
