import { ParleyError } from '../protocol/errors.js';

/**
 * The byte budget of one reply that can grow (history and sync pages, lists). Items are measured as the UTF-8 bytes of
 * their JSON, which is what goes on the wire, so escaping (a control character becomes 6 bytes) is counted. The first
 * item always fits, whatever its size: a page always makes progress, and one message (at most maxMessageBytes of text,
 * escaped, plus meta) is far below the budget's floor anyway.
 */
export class ReplyBudget {
  private used = 0;
  private items = 0;

  constructor(private readonly bytes: number) {}

  /** Whether `value` fits in what is left; if so it is charged. */
  take(value: unknown): boolean {
    const size = jsonBytes(value) + 1; // + the separating comma
    if (this.items > 0 && this.used + size > this.bytes) return false;
    this.used += size;
    this.items++;
    return true;
  }

  /** Whether `value` fits in what is left, without charging it (unlike `take`, even as the first item). */
  fits(value: unknown): boolean {
    return this.used + jsonBytes(value) <= this.bytes;
  }

  /** Charges bytes that go out whether they fit or not (a page's fixed fields). */
  charge(value: unknown): void {
    this.used += jsonBytes(value);
  }

  get exhausted(): boolean {
    return this.used >= this.bytes;
  }
}

export function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
}

/** The leading items of `items` that fit the budget, and whether any were left out. */
export function takeLeading<T>(items: readonly T[], budget: ReplyBudget): { taken: T[]; cut: boolean } {
  const taken: T[] = [];
  for (const item of items) {
    if (!budget.take(item)) return { taken, cut: true };
    taken.push(item);
  }
  return { taken, cut: false };
}

/** The trailing items of `items` that fit the budget (in their order), and whether any were left out. */
export function takeTrailing<T>(items: readonly T[], budget: ReplyBudget): { taken: T[]; cut: boolean } {
  let start = items.length;
  while (start > 0 && budget.take(items[start - 1])) start--;
  return { taken: items.slice(start), cut: start > 0 };
}

/** A keyset cursor (a time and an id) as an opaque URL-safe string, for `next`/`after` of list pages. */
export function encodeCursor(time: number, id: string): string {
  return Buffer.from(JSON.stringify([time, id]), 'utf8').toString('base64url');
}

/** The inverse of encodeCursor; anything else is INVALID_REQUEST (the cursor must come from a previous page). */
export function decodeCursor<T>(cursor: string, make: (time: number, id: string) => T): T {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    parsed = null;
  }
  if (!Array.isArray(parsed) || parsed.length !== 2 || !Number.isSafeInteger(parsed[0]) || typeof parsed[1] !== 'string') {
    throw new ParleyError('INVALID_REQUEST', 'after: not a cursor from a previous page (pass `next` back unchanged)');
  }
  return make(parsed[0] as number, parsed[1] as string);
}
