import { utf8Length } from './socket.js';

/**
 * Room kept in every request frame for what wraps the list: `{"id":…,"type":"sync","data":{"conversations":[…],
 * "limit":…}}` is under 100 bytes; the rest is margin. Never more than a quarter of the frame, so the smallest frame
 * the server allows (1024 bytes) still carries entries.
 */
const FRAME_ENVELOPE_BYTES = 512;

/**
 * Splits a list the client sends (the `conversations` of `sync`, the `userIds` of `presence.get`) into batches that
 * each fit one request frame: at most `maxCount` items (the request's count limit) and, when `maxFrameBytes` is known
 * (`welcome.limits.maxFrameBytes`), items whose JSON (UTF-8, with separating commas) fits the frame less room for the
 * envelope. A larger frame would be closed 1009 by the server, and resending it would fail forever. A batch always
 * holds at least one item, so every item is sent even if one alone is too large (the request then fails on its own).
 * An empty list gives no batches.
 */
export function splitForFrame<T>(items: readonly T[], maxCount: number, maxFrameBytes: number | undefined): T[][] {
  const budget = maxFrameBytes === undefined
    ? Number.POSITIVE_INFINITY
    : maxFrameBytes - Math.min(FRAME_ENVELOPE_BYTES, Math.floor(maxFrameBytes / 4));
  const batches: T[][] = [];
  let batch: T[] = [];
  let used = 0;
  for (const item of items) {
    const size = utf8Length(JSON.stringify(item)) + 1;
    if (batch.length > 0 && (batch.length >= maxCount || used + size > budget)) {
      batches.push(batch);
      batch = [];
      used = 0;
    }
    batch.push(item);
    used += size;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}
