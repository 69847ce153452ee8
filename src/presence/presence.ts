/**
 * The presence seam: which users have at least one live connection, and when each was last seen.
 *
 * Guarantees every engine gives (test/engines/presence.contract.ts):
 * - A user is online while at least one of their connections is registered and was touched within `ttlMs`;
 *   an entry that is not touched expires by itself, so a dead instance does not leave users online forever.
 * - `connect` and `disconnect` report transitions: `becameOnline` only for the first live connection of a user,
 *   `becameOffline` only when the last one goes.
 * - `lastSeen` is the time of the last disconnect or touch; it survives going offline for at least `ttlMs`.
 * - Memory is bounded by the users online now: a `sweep` more than `ttlMs` after a user went offline may forget the
 *   user (`get` then reports `lastSeen: null`; the store keeps the last disconnect time, see PresenceService).
 */
export interface Presence {
  connect(userId: string, connectionId: string, now: number): Promise<{ becameOnline: boolean }>;
  disconnect(userId: string, connectionId: string, now: number): Promise<{ becameOffline: boolean }>;
  /** Refresh the liveness of these connections (called on each heartbeat round). */
  touch(entries: Array<{ userId: string; connectionId: string }>, now: number): Promise<void>;
  get(userIds: string[], now: number): Promise<Array<{ userId: string; online: boolean; lastSeen: number | null }>>;
  /** Users whose connections all expired since the last call (reported once each). */
  sweep(now: number): Promise<string[]>;
  close(): Promise<void>;
}
