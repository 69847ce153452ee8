import type { Position } from './sequencer.js';

/**
 * Where a client keeps its delivery positions (per conversation: the highest seq delivered through `message`, and the
 * change counter `rev` applied) so that a new client — after a page reload or a process restart — resumes delivery
 * where the last one stopped: nothing it delivered is delivered again, and whatever arrived meanwhile is caught up.
 *
 * Both methods are synchronous on purpose: the client loads at `welcome` before it reads any later frame, and saves
 * before the browser can run another task (such as unloading the page), so what it saved is exactly what it
 * delivered. Positions are per user; a store may hold several users' positions side by side.
 */
export interface PositionStore {
  /**
   * The positions saved for this user, or `[]`. Called at the first `welcome` of each user the client connects as.
   * Entries that are not `{conversationId: string, afterSeq: integer ≥ 0, rev?: integer ≥ 0}` are ignored.
   */
  load(userId: string): readonly Position[];
  /**
   * Replaces the saved positions of this user with `positions` (every conversation the client tracks). Called after
   * positions change, at most once per microtask checkpoint (a whole catch-up page is one save), and on `close()`. A
   * throw is reported through the client's `error` event; the client goes on.
   */
  save(userId: string, positions: readonly Position[]): void;
}

/**
 * Positions kept in memory, for successive clients in one process: pass the same store to the next client to resume
 * where the previous one stopped. (Without a store, a client keeps its positions to itself, as if it had its own.)
 */
export function memoryPositions(): PositionStore {
  const saved = new Map<string, Position[]>();
  return {
    load: (userId) => (saved.get(userId) ?? []).map((p) => ({ ...p })),
    save: (userId, positions) => {
      saved.set(userId, positions.map((p) => ({ ...p })));
    },
  };
}

/** The part of the Web Storage API (`localStorage`, `sessionStorage`) that localStoragePositions uses. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

export interface LocalStoragePositionsOptions {
  /** @default globalThis.localStorage. `sessionStorage` keeps one tab's positions, still across its reloads. */
  storage?: StorageLike;
  /** The key of a user's positions is `prefix + userId`. @default 'parley.positions.' */
  prefix?: string;
}

/**
 * Positions kept in Web Storage (a browser's `localStorage` by default), as JSON under `prefix + userId`. A value that
 * is missing or not readable loads as `[]` (the client then starts from the server's heads, as a new client does).
 * Two tabs open at once that share a key overwrite each other's positions: give each its own `prefix`, or use
 * `sessionStorage`. Throws a TypeError when there is no storage (e.g. in Node without `options.storage`).
 */
export function localStoragePositions(options: LocalStoragePositionsOptions = {}): PositionStore {
  const storage = options.storage ?? (globalThis as { localStorage?: StorageLike }).localStorage;
  if (!storage) throw new TypeError('localStoragePositions: no localStorage here; pass options.storage');
  const prefix = options.prefix ?? 'parley.positions.';
  return {
    load: (userId) => {
      const text = storage.getItem(prefix + userId);
      if (text === null) return [];
      try {
        return validPositions(JSON.parse(text));
      } catch {
        return [];
      }
    },
    save: (userId, positions) => storage.setItem(prefix + userId, JSON.stringify(positions)),
  };
}

/** The well-formed entries of a loaded value (anything else is dropped). */
export function validPositions(value: unknown): Position[] {
  if (!Array.isArray(value)) return [];
  const out: Position[] = [];
  for (const p of value as Array<Partial<Position> | null>) {
    if (!p || typeof p.conversationId !== 'string' || !isCount(p.afterSeq)) continue;
    const position: Position = { conversationId: p.conversationId, afterSeq: p.afterSeq };
    if (isCount(p.rev)) position.rev = p.rev;
    out.push(position);
  }
  return out;
}

function isCount(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0;
}
