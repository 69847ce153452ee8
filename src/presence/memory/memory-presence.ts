import type { Presence } from '../presence.js';

/**
 * The in-process presence engine. Every time comes from the `now` argument (never from the clock), so tests are
 * deterministic and instances agree on what "expired" means.
 *
 * A connection is live at `now` when `now - touchedAt <= ttlMs` (touched within `ttlMs`). A user is online at `now`
 * when at least one of their connections is live.
 *
 * Transitions are reported against the state last reported to the caller (`reportedOnline`), so reports alternate:
 * every `becameOnline` is followed by exactly one offline report, either `becameOffline` from `disconnect` or the
 * user's id from `sweep`, and never both.
 * - `connect`: `becameOnline` when the user was not reported online. A user whose connections all expired but who
 *   was not swept yet is still reported online, so a new connection then is not a new transition (the stale entries
 *   are dropped; observers never saw the user leave).
 * - `disconnect`: `becameOffline` when the user was reported online and has no live connection left.
 * - `touch`: refreshes registered connections that are still live; an unknown or already expired connection is
 *   not refreshed, and returned (expiry is final: a late heartbeat does not resurrect an entry; the caller that still
 *   holds the connection registers it again with `connect`). `lastSeen` becomes `now` for a user when at least one of
 *   their connections was refreshed.
 * - `sweep`: users reported online whose connections are all expired; each is reported once, and their entries
 *   are dropped.
 * - `lastSeen`: time of the last connect, touch or disconnect; an expired user keeps the time of the last touch.
 *   It survives going offline for `ttlMs`: a `sweep` at least `ttlMs` after a user went offline (disconnect or
 *   expiry) drops the user's entry, so memory follows the users online now, not every user seen since the process
 *   started (the store keeps the last disconnect time; PresenceService falls back to it).
 */
/**
 * connectionId → time of the last connect or touch. Most users have one connection: it is kept inline, and a Map
 * (~300 B with its table) is made only for a second one, so 10,000 idle users do not cost 10,000 Maps.
 */
class ConnectionTimes {
  private soleId: string | null = null;
  private soleAt = 0;
  private many: Map<string, number> | null = null;

  get size(): number {
    return this.many !== null ? this.many.size : this.soleId === null ? 0 : 1;
  }

  get(connectionId: string): number | undefined {
    if (this.many !== null) return this.many.get(connectionId);
    return connectionId === this.soleId ? this.soleAt : undefined;
  }

  set(connectionId: string, at: number): void {
    if (this.many !== null) {
      this.many.set(connectionId, at);
    } else if (this.soleId === null || this.soleId === connectionId) {
      this.soleId = connectionId;
      this.soleAt = at;
    } else {
      this.many = new Map([[this.soleId, this.soleAt], [connectionId, at]]);
      this.soleId = null;
    }
  }

  delete(connectionId: string): boolean {
    if (this.many !== null) {
      const deleted = this.many.delete(connectionId);
      if (this.many.size === 0) this.many = null;
      return deleted;
    }
    if (connectionId !== this.soleId) return false;
    this.soleId = null;
    return true;
  }

  /** A snapshot of the entries (safe to delete from while iterating it). */
  entries(): Array<[string, number]> {
    if (this.many !== null) return [...this.many];
    return this.soleId === null ? [] : [[this.soleId, this.soleAt]];
  }
}

interface UserEntry {
  connections: ConnectionTimes;
  reportedOnline: boolean;
  lastSeen: number | null;
}

export interface MemoryPresenceOptions {
  ttlMs: number;
}

export class MemoryPresence implements Presence {
  private readonly ttlMs: number;
  private readonly users = new Map<string, UserEntry>();
  /** Users reported online: the only candidates for `sweep`, so a sweep does not scan users seen long ago. */
  private readonly online = new Set<string>();
  /**
   * Users reported offline → when they went offline, in that order (a Map keeps insertion order and each user is
   * re-inserted when going offline again), so `sweep` forgets the expired ones from the front without a scan.
   */
  private readonly offline = new Map<string, number>();
  private closed = false;

  constructor(options: MemoryPresenceOptions) {
    if (!Number.isFinite(options.ttlMs) || options.ttlMs <= 0) {
      throw new RangeError(`memory presence: ttlMs must be a positive number, got ${options.ttlMs}`);
    }
    this.ttlMs = options.ttlMs;
  }

  async connect(userId: string, connectionId: string, now: number): Promise<{ becameOnline: boolean }> {
    this.assertOpen();
    const user = this.entry(userId);
    this.dropExpired(user, now);
    user.connections.set(connectionId, now);
    if (user.lastSeen === null || now > user.lastSeen) user.lastSeen = now;
    if (user.reportedOnline) return { becameOnline: false };
    user.reportedOnline = true;
    this.online.add(userId);
    this.offline.delete(userId);
    return { becameOnline: true };
  }

  async disconnect(userId: string, connectionId: string, now: number): Promise<{ becameOffline: boolean }> {
    this.assertOpen();
    const user = this.users.get(userId);
    if (!user || !user.connections.delete(connectionId)) return { becameOffline: false };
    if (user.lastSeen === null || now > user.lastSeen) user.lastSeen = now;
    this.dropExpired(user, now);
    if (!user.reportedOnline || user.connections.size > 0) return { becameOffline: false };
    user.reportedOnline = false;
    this.online.delete(userId);
    this.wentOffline(userId, now);
    return { becameOffline: true };
  }

  async touch(entries: Array<{ userId: string; connectionId: string }>, now: number): Promise<Array<{ userId: string; connectionId: string }>> {
    this.assertOpen();
    const gone: Array<{ userId: string; connectionId: string }> = [];
    for (const entry of entries) {
      const { userId, connectionId } = entry;
      const user = this.users.get(userId);
      const touchedAt = user?.connections.get(connectionId);
      if (!user || touchedAt === undefined || !this.isLive(touchedAt, now)) {
        gone.push(entry);
        continue;
      }
      user.connections.set(connectionId, now);
      if (user.lastSeen === null || now > user.lastSeen) user.lastSeen = now;
    }
    return gone;
  }

  async get(userIds: string[], now: number): Promise<Array<{ userId: string; online: boolean; lastSeen: number | null }>> {
    this.assertOpen();
    return userIds.map((userId) => {
      const user = this.users.get(userId);
      if (!user) return { userId, online: false, lastSeen: null };
      let online = false;
      for (const [, touchedAt] of user.connections.entries()) {
        if (this.isLive(touchedAt, now)) {
          online = true;
          break;
        }
      }
      return { userId, online, lastSeen: user.lastSeen };
    });
  }

  async sweep(now: number): Promise<string[]> {
    this.assertOpen();
    const expired: string[] = [];
    for (const userId of this.online) {
      const user = this.users.get(userId)!;
      this.dropExpired(user, now);
      if (user.connections.size > 0) continue;
      user.reportedOnline = false;
      expired.push(userId);
    }
    for (const userId of expired) {
      this.online.delete(userId);
      this.wentOffline(userId, now);
    }
    this.forgetOffline(now);
    return expired;
  }

  /** Entries held (online users and users offline for less than `ttlMs`); bounded by load, not by history. */
  get size(): number {
    return this.users.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.users.clear();
    this.online.clear();
    this.offline.clear();
  }

  private wentOffline(userId: string, now: number): void {
    this.offline.delete(userId);
    this.offline.set(userId, now);
  }

  /** Drop the entries of users offline for more than `ttlMs` (oldest first; stops at the first one still kept). */
  private forgetOffline(now: number): void {
    for (const [userId, offlineAt] of this.offline) {
      if (now - offlineAt <= this.ttlMs) break;
      this.offline.delete(userId);
      const user = this.users.get(userId);
      // Checked again: a user who came back since is online (connect removed them from `offline`), never dropped.
      if (user && !user.reportedOnline && user.connections.size === 0) this.users.delete(userId);
    }
  }

  private isLive(touchedAt: number, now: number): boolean {
    return now - touchedAt <= this.ttlMs;
  }

  private dropExpired(user: UserEntry, now: number): void {
    for (const [connectionId, touchedAt] of user.connections.entries()) {
      if (!this.isLive(touchedAt, now)) user.connections.delete(connectionId);
    }
  }

  private entry(userId: string): UserEntry {
    let user = this.users.get(userId);
    if (!user) {
      user = { connections: new ConnectionTimes(), reportedOnline: false, lastSeen: null };
      this.users.set(userId, user);
    }
    return user;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('memory presence: closed');
  }
}

export function createMemoryPresence(options: MemoryPresenceOptions): Presence {
  return new MemoryPresence(options);
}
