import { createRequire } from 'node:module';

// ws exports its Sender at run time, but its type definitions do not declare it; describe the one function used.
type FrameFn = (data: Buffer, options: { fin: boolean; opcode: number; mask: boolean; readOnly: boolean; rsv1: boolean }) => Buffer[];
const { frame } = (createRequire(import.meta.url)('ws') as { Sender: { frame: FrameFn } }).Sender;

const TEXT = { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false };

/**
 * Build the complete WebSocket text frame (header + payload) for a server message, once. The same Buffer is then
 * written to every recipient's socket: fan-out costs one framing, not one per recipient.
 */
export function frameText(text: string | Buffer): Buffer {
  const parts = frame(typeof text === 'string' ? Buffer.from(text, 'utf8') : text, TEXT);
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

/**
 * A ping frame carrying `payload` (ASCII, at most 125 bytes): a client answers with a pong carrying the same payload
 * (RFC 6455 5.5.3, which browsers and WebSocket libraries do on their own), and answers it only after reading every byte
 * written before it, so the pong confirms that the peer took everything written before the ping.
 */
export function framePing(payload: string): Buffer {
  const out = Buffer.allocUnsafe(2 + payload.length);
  out[0] = 0x89; // FIN + ping
  out[1] = payload.length; // ≤ 125 bytes: always a 7-bit length, unmasked (server to client)
  out.write(payload, 2, 'latin1');
  return out;
}
