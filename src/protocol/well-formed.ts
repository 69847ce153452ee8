/**
 * Well-formed strings. JSON can carry a lone UTF-16 surrogate (`"\ud800"` parses to one), but no UTF-8 encoding of it
 * exists: stored in SQLite it comes back as U+FFFD, so the same message would read differently live and from history.
 * Every string a client sends is therefore refused unless it is well-formed UTF-16 (every high surrogate followed by a
 * low one, no low surrogate alone). The check runs on each decoded request as a whole (WebSocket frame, REST body,
 * query and path), strings and object keys at any depth, before any schema: a field added later is covered too.
 */

type PathPart = string | number;

/** True when `s` has no lone surrogate (String.prototype.isWellFormed, Node 20+). */
export function isWellFormed(s: string): boolean {
  return (s as unknown as { isWellFormed(): boolean }).isWellFormed();
}

/** `s` with every lone surrogate replaced by U+FFFD, for showing a bad value or key in an error. */
export function toWellFormed(s: string): string {
  return (s as unknown as { toWellFormed(): string }).toWellFormed();
}

// Decoded JSON nests only as deep as the frame allows; the bound keeps a hostile value from exhausting the stack.
const MAX_DEPTH = 256;

/**
 * The path of the first ill-formed string in a decoded JSON value (an object key counts as a string, and its path
 * ends at that key), or null when every string is well-formed. Values nested deeper than 256 levels are not visited.
 * Runs on every frame, so a well-formed value costs one walk and no allocation beyond the key lists.
 */
export function findIllFormed(value: unknown): PathPart[] | null {
  const path: PathPart[] = [];
  return walk(value, path) ? path : null;
}

/** True when an ill-formed string lies in `value`; `path` then holds its path (it is restored otherwise). */
function walk(value: unknown, path: PathPart[]): boolean {
  if (typeof value === 'string') return !isWellFormed(value);
  if (typeof value !== 'object' || value === null || path.length >= MAX_DEPTH) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      path.push(i);
      if (walk(value[i], path)) return true;
      path.pop();
    }
    return false;
  }
  for (const key of Object.keys(value)) {
    path.push(key);
    if (!isWellFormed(key) || walk((value as Record<string, unknown>)[key], path)) return true;
    path.pop();
  }
  return false;
}

export const ILL_FORMED_MESSAGE = 'not well-formed Unicode: a lone UTF-16 surrogate (\\uD800-\\uDFFF) has no UTF-8 form';

/**
 * The `details` entry of an INVALID_REQUEST for an ill-formed string: `{path, message}` like a schema issue, the path
 * dotted and made printable (a lone surrogate in a key is shown as U+FFFD).
 */
export function illFormedDetail(path: PathPart[]): { path: string; message: string } {
  return { path: path.map((p) => toWellFormed(String(p))).join('.'), message: ILL_FORMED_MESSAGE };
}
