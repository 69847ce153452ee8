/**
 * What travels on the bus: the serialised event frame itself, so that an instance receiving it frames the same bytes
 * for every local recipient without parsing. Two optional prefixes, cheap to test because a frame always starts with
 * '{':
 * - `!<userId>\n<frame>`: deliver to every interested connection except those of <userId> (typing indicators go to
 *   the other members only);
 * - `#<command>\n`: a control message for the gateway (for example `#ban`: close this user's connections).
 * This module is the only place that knows the layout.
 */
export type Envelope =
  | { kind: 'frame'; frame: string; exceptUser: string | null }
  | { kind: 'control'; command: string };

export function encodeFrame(frame: string, exceptUser: string | null = null): string {
  return exceptUser === null ? frame : `!${exceptUser}\n${frame}`;
}

export function encodeControl(command: string): string {
  return `#${command}\n`;
}

export function decodeEnvelope(payload: string): Envelope {
  const first = payload.charCodeAt(0);
  if (first === 0x7b /* { */) return { kind: 'frame', frame: payload, exceptUser: null };
  const newline = payload.indexOf('\n');
  if (first === 0x21 /* ! */ && newline > 0) {
    return { kind: 'frame', frame: payload.slice(newline + 1), exceptUser: payload.slice(1, newline) };
  }
  if (first === 0x23 /* # */ && newline > 0) return { kind: 'control', command: payload.slice(1, newline) };
  return { kind: 'frame', frame: payload, exceptUser: null };
}
