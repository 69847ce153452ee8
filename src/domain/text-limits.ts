import { ParleyError } from '../protocol/errors.js';
import { nestsDeeperThan } from '../protocol/json-depth.js';

/**
 * Refuse text and metadata over the configured byte sizes (UTF-8, as stored and sent), and metadata nested deeper
 * than `maxJsonDepth` levels (INVALID_REQUEST: the same input fails again, whatever the sizes).
 */
export function checkMessageSize(
  text: string, meta: unknown, limits: { maxMessageBytes: number; maxMetaBytes: number; maxJsonDepth: number },
): unknown | null {
  if (Buffer.byteLength(text, 'utf8') > limits.maxMessageBytes) {
    throw new ParleyError('MESSAGE_TOO_LARGE', `text exceeds ${limits.maxMessageBytes} bytes`);
  }
  if (meta === undefined || meta === null) return null;
  if (nestsDeeperThan(meta, limits.maxJsonDepth)) {
    throw new ParleyError('INVALID_REQUEST', `meta nests deeper than ${limits.maxJsonDepth} levels`, [
      { path: 'meta', message: `at most ${limits.maxJsonDepth} levels of arrays and objects` },
    ]);
  }
  const serialised = JSON.stringify(meta);
  if (Buffer.byteLength(serialised, 'utf8') > limits.maxMetaBytes) {
    throw new ParleyError('MESSAGE_TOO_LARGE', `meta exceeds ${limits.maxMetaBytes} bytes`);
  }
  return meta;
}
