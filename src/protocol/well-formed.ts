/**
 * Well-formed strings. JSON can carry a lone UTF-16 surrogate (`"\ud800"` parses to one), but no UTF-8 encoding of it
 * exists: stored in SQLite it comes back as U+FFFD, so the same message would read differently live and from history.
 * Every string a client sends is therefore refused unless it is well-formed UTF-16 (every high surrogate followed by a
 * low one, no low surrogate alone). The check runs on each decoded request as a whole (WebSocket frame, REST body,
 * query and path), strings and object keys at any depth, before any schema: a field added later is covered too.
 * The same walk refuses the other values no request may carry: U+0000 in a string or key, `__proto__` keys and
 * non-finite numbers (findRefused).
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

/**
 * Why no request may carry the string `s` (a lone surrogate, or U+0000), or null when it may. For strings that enter
 * outside a decoded request (command-line arguments, token claims).
 */
export function stringRefusal(s: string): string | null {
  if (!isWellFormed(s)) return ILL_FORMED_MESSAGE;
  return s.includes('\0') ? NUL_MESSAGE : null;
}

/**
 * The path of the first refused value in a decoded JSON value (see findRefused), or null when there is none.
 * Kept for callers that only need the path.
 */
export function findIllFormed(value: unknown): PathPart[] | null {
  return findRefused(value)?.path ?? null;
}

/** A value no request may carry, wherever it sits: its path (an object key's path ends at that key) and why. */
export interface RefusedValue {
  path: PathPart[];
  message: string;
}

/**
 * The first value, in document order, that no request may carry (docs/protocol.md "Conventions"), or null:
 * - a string or object key that is not well-formed UTF-16 (a lone surrogate): ILL_FORMED_MESSAGE;
 * - a string or object key holding U+0000 (NUL): NUL_MESSAGE. PostgreSQL's text cannot hold it (SQLSTATE 22021), so
 *   it would fail on one engine where another stores it; no chat text needs it. Refused everywhere, on every engine;
 * - an object key named `__proto__`: PROTO_KEY_MESSAGE. JSON.parse makes it an own property, but any consumer that
 *   copies or merges the value (Object.assign, a spread into a class, a naive deep merge) would set a prototype;
 *   schemas miss it too, since `"__proto__"` is never a known key. `constructor` and `prototype` are plain data;
 * - a number that is not finite (`1e400` parses to Infinity): NON_FINITE_MESSAGE. It has no JSON form, so it would be
 *   stored and served back as null.
 * Iterative with no depth bound, so it covers every depth the configured limits allow (limits.maxJsonDepth) and any
 * hostile input is safe to check. Runs on every frame and body: a clean value costs one walk and the key lists.
 */
export function findRefused(value: unknown): RefusedValue | null {
  return inspectInput(value, Infinity).refused;
}

/**
 * findRefused and the depth check (json-depth.ts nestsDeeperThan: a scalar is 0, `[]` or `{}` is 1) in one walk, for
 * the WebSocket's per-frame check. A refused value wins over the depth, as when the two checks ran one after the other.
 */
export function inspectInput(value: unknown, maxDepth: number): { refused: RefusedValue | null; tooDeep: boolean } {
  // Nearly every frame is clean and shallow: said so by a walk that allocates nothing. Anything else (a refusal, or
  // nesting past what that walk recurses into) is found again by the walk below, which gives its path.
  if (cleanWithin(value, Math.min(maxDepth, FAST_DEPTH))) return CLEAN;
  const path: PathPart[] = [];
  const refusal = scalarRefusal(value);
  if (refusal) return { refused: { path, message: refusal }, tooDeep: false };
  if (typeof value !== 'object' || value === null) return { refused: null, tooDeep: false };
  let tooDeep = maxDepth < 1;
  // One frame per open array/object: its children's keys and the next one to visit. `path` mirrors the stack.
  const stack: Array<{ node: object; keys: PathPart[]; next: number }> = [frame(value)];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.next >= top.keys.length) {
      stack.pop();
      continue;
    }
    const key = top.keys[top.next++]!;
    path[stack.length - 1] = key;
    path.length = stack.length;
    if (typeof key === 'string') {
      const keyRefusal = stringRefusal(key);
      if (keyRefusal) return { refused: { path, message: keyRefusal }, tooDeep };
      if (key === '__proto__') return { refused: { path, message: PROTO_KEY_MESSAGE }, tooDeep };
    }
    const child = (top.node as Record<PathPart, unknown>)[key];
    const childRefusal = scalarRefusal(child);
    if (childRefusal) return { refused: { path, message: childRefusal }, tooDeep };
    if (typeof child === 'object' && child !== null) {
      stack.push(frame(child));
      if (stack.length > maxDepth) tooDeep = true; // the stack holds one frame per open array/object: its depth
    }
  }
  return { refused: null, tooDeep };
}

const CLEAN: { refused: null; tooDeep: false } = Object.freeze({ refused: null, tooDeep: false });
/** How deep cleanWithin recurses at most: far from the call stack's limit. */
const FAST_DEPTH = 64;

/** Whether `value` carries nothing findRefused refuses and nests at most `depthLeft` levels; false tells nothing more. */
function cleanWithin(value: unknown, depthLeft: number): boolean {
  if (typeof value !== 'object' || value === null) return scalarRefusal(value) === null;
  if (depthLeft < 1) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!cleanWithin(value[i], depthLeft - 1)) return false;
    return true;
  }
  const keys = Object.keys(value);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (key === '__proto__' || stringRefusal(key) !== null || !cleanWithin((value as Record<string, unknown>)[key], depthLeft - 1)) return false;
  }
  return true;
}

function frame(node: object): { node: object; keys: PathPart[]; next: number } {
  return { node, keys: Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node), next: 0 };
}

function scalarRefusal(value: unknown): string | null {
  if (typeof value === 'string') return stringRefusal(value);
  if (typeof value === 'number') return Number.isFinite(value) ? null : NON_FINITE_MESSAGE;
  return null;
}

export const PROTO_KEY_MESSAGE = 'a key named "__proto__", which no request may carry (a prototype-pollution vector; "constructor" is allowed)';

export const NON_FINITE_MESSAGE = 'a number beyond the range of a double (it would parse as Infinity); send at most about 1.7e308';

export const NUL_MESSAGE = 'a string with U+0000 (NUL), which no request may carry (PostgreSQL text cannot hold it)';

export const ILL_FORMED_MESSAGE = 'not well-formed Unicode: a lone UTF-16 surrogate (\\uD800-\\uDFFF) has no UTF-8 form';

/**
 * The `details` entry of an INVALID_REQUEST for a refused value: `{path, message}` like a schema issue, the path
 * dotted and made printable (a lone surrogate or U+0000 in a key is shown as U+FFFD).
 */
export function illFormedDetail(path: PathPart[], message = ILL_FORMED_MESSAGE): { path: string; message: string } {
  return { path: path.map((p) => toWellFormed(String(p)).replaceAll('\0', '\ufffd')).join('.'), message };
}
