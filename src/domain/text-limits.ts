import { ParleyError } from '../protocol/errors.js';

/** Refuse text and metadata over the configured byte sizes (UTF-8, as stored and sent). */
export function checkMessageSize(text: string, meta: unknown, limits: { maxMessageBytes: number; maxMetaBytes: number }): unknown | null {
  if (Buffer.byteLength(text, 'utf8') > limits.maxMessageBytes) {
    throw new ParleyError('MESSAGE_TOO_LARGE', `text exceeds ${limits.maxMessageBytes} bytes`);
  }
  if (meta === undefined || meta === null) return null;
  const serialised = JSON.stringify(meta);
  if (Buffer.byteLength(serialised, 'utf8') > limits.maxMetaBytes) {
    throw new ParleyError('MESSAGE_TOO_LARGE', `meta exceeds ${limits.maxMetaBytes} bytes`);
  }
  return meta;
}
