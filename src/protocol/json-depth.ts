/**
 * How deeply a JSON value nests: a scalar is 0, `[]` or `{}` is 1, `{"a": [1]}` is 2. Deep input is refused before
 * anything recursive (validation, serialisation, structured cloning to the store thread) can overflow the stack on it.
 */

/** Whether `value` nests arrays and objects more than `max` levels deep. Iterative, so any input is safe to check. */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: Array<{ value: object; depth: number }> = [];
  if (typeof value === 'object' && value !== null) stack.push({ value, depth: 1 });
  while (stack.length > 0) {
    const { value: node, depth } = stack.pop()!;
    if (depth > max) return true;
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (typeof child === 'object' && child !== null) stack.push({ value: child, depth: depth + 1 });
    }
  }
  return false;
}

/** Levels a request frame or REST body adds around `meta` (`{"data": {"meta": …}}`): the whole may nest this much deeper. */
export const ENVELOPE_DEPTH = 2;
