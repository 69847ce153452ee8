/**
 * The presence seam: which users have at least one live connection, and when each was last seen.
 *
 * Guarantees every engine gives (test/engines/presence.contract.ts, which also runs two instances on one engine):
 * - A user is online while at least one of their connections is registered and was touched within `ttlMs`;
 *   an entry that is not touched expires by itself, so a dead instance does not leave users online forever.
 * - `connect` and `disconnect` report transitions: `becameOnline` only for the first live connection of a user,
 *   `becameOffline` only when the last one goes.
 * - `lastSeen` is the time of the last disconnect or touch; it survives going offline for at least `ttlMs`.
 * - Memory is bounded by the users online now: a `sweep` more than `ttlMs` after a user went offline may forget the
 *   user (`get` then reports `lastSeen: null`; the store keeps the last disconnect time, see PresenceService).
 * - Many instances on one shared engine: every step is atomic in the engine, and transitions are judged per
 *   connection, so a disconnect on one instance never reports a user offline who has a live connection registered by
 *   another, whatever order the calls reach the engine in; `lastSeen` only moves forward (a late call with an older
 *   `now` leaves it). `sweep` is claimed by one instance at a time (the claim lapses when its holder stops sweeping),
 *   and each expired user is reported once across all instances.
 * - `touch` says which entries the engine no longer holds live (forgotten, as by a restarted Redis, or expired): the
 *   caller re-registers with `connect` those whose connection it still holds (PresenceService does).
 */
export interface Presence {
  connect(userId: string, connectionId: string, now: number): Promise<{ becameOnline: boolean }>;
  disconnect(userId: string, connectionId: string, now: number): Promise<{ becameOffline: boolean }>;
  /**
   * Refresh the liveness of these connections (called on each heartbeat round). Resolves with the entries that were
   * not refreshed because the engine holds no live entry for them (unknown, or expired): expiry is final for the
   * engine, and only a `connect` registers a connection again.
   */
  touch(entries: Array<{ userId: string; connectionId: string }>, now: number): Promise<Array<{ userId: string; connectionId: string }>>;
  get(userIds: string[], now: number): Promise<Array<{ userId: string; online: boolean; lastSeen: number | null }>>;
  /** Users whose connections all expired since the last call (reported once each). */
  sweep(now: number): Promise<string[]>;
  close(): Promise<void>;
}
