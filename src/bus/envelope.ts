/**
 * What travels on the bus: the serialised event frame itself, so that an instance receiving it frames the same bytes
 * for every local recipient without parsing. Two optional prefixes, cheap to test because a frame always starts with
 * '{':
 * - `!<length>:<userId><frame>`: deliver to every interested connection except those of <userId> (typing indicators
 *   go to the other members only). The id is length-prefixed (its length in UTF-16 code units, in decimal), not
 *   ended by a separator, so any string is carried whole, whatever characters it holds;
 * - `#<command>\n`: a control message for the gateway (for example `#ban`: close this user's connections). Commands
 *   are the fixed words of this module's callers, never ids.
 * This module is the only place that knows the layout.
 */
export type Envelope =
  | { kind: 'frame'; frame: string; exceptUser: string | null }
  | { kind: 'control'; command: string };

export function encodeFrame(frame: string, exceptUser: string | null = null): string {
  return exceptUser === null ? frame : `!${exceptUser.length}:${exceptUser}${frame}`;
}

export function encodeControl(command: string): string {
  return `#${command}\n`;
}

export function decodeEnvelope(payload: string): Envelope {
  const first = payload.charCodeAt(0);
  if (first === 0x7b /* { */) return { kind: 'frame', frame: payload, exceptUser: null };
  if (first === 0x21 /* ! */) {
    const colon = payload.indexOf(':', 1);
    const digits = payload.slice(1, colon);
    const length = Number(digits);
    const start = colon + 1;
    if (colon > 1 && /^\d+$/.test(digits) && start + length <= payload.length) {
      return { kind: 'frame', frame: payload.slice(start + length), exceptUser: payload.slice(start, start + length) };
    }
  }
  const newline = payload.indexOf('\n');
  if (first === 0x23 /* # */ && newline > 0) return { kind: 'control', command: payload.slice(1, newline) };
  return { kind: 'frame', frame: payload, exceptUser: null };
}
