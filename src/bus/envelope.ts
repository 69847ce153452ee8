/**
 * What travels on the bus: the serialised event frame itself, so that an instance receiving it frames the same bytes
 * for every local recipient without parsing. Two optional prefixes, cheap to test because a frame always starts with
 * '{':
 * - `!<length>:<userId><frame>`: deliver to every interested connection except those of <userId> (typing indicators
 *   go to the other members only). The id is length-prefixed (its length in UTF-16 code units, in decimal), not
 *   ended by a separator, so any string is carried whole, whatever characters it holds;
 * - `~<length>:<connectionId><frame>`: the same, except one connection (the one whose request caused the event: its
 *   reply already says what happened), laid out like the user form;
 * - `#<command>\n`: a control message for the gateway (for example `#ban`: close this user's connections). Commands
 *   are the fixed words of this module's callers, never ids.
 * This module is the only place that knows the layout.
 */
export type Envelope =
  | { kind: 'frame'; frame: string; exceptUser: string | null; exceptConnection: string | null }
  | { kind: 'control'; command: string };

/** At most one exception is carried: `exceptUser` when given, else `exceptConnection`. */
export function encodeFrame(frame: string, exceptUser: string | null = null, exceptConnection: string | null = null): string {
  if (exceptUser !== null) return `!${exceptUser.length}:${exceptUser}${frame}`;
  return exceptConnection === null ? frame : `~${exceptConnection.length}:${exceptConnection}${frame}`;
}

export function encodeControl(command: string): string {
  return `#${command}\n`;
}

export function decodeEnvelope(payload: string): Envelope {
  const first = payload.charCodeAt(0);
  if (first === 0x7b /* { */) return { kind: 'frame', frame: payload, exceptUser: null, exceptConnection: null };
  if (first === 0x21 /* ! */ || first === 0x7e /* ~ */) {
    const colon = payload.indexOf(':', 1);
    const digits = payload.slice(1, colon);
    const length = Number(digits);
    const start = colon + 1;
    if (colon > 1 && /^\d+$/.test(digits) && start + length <= payload.length) {
      const except = payload.slice(start, start + length);
      const frame = payload.slice(start + length);
      return first === 0x21
        ? { kind: 'frame', frame, exceptUser: except, exceptConnection: null }
        : { kind: 'frame', frame, exceptUser: null, exceptConnection: except };
    }
  }
  const newline = payload.indexOf('\n');
  if (first === 0x23 /* # */ && newline > 0) return { kind: 'control', command: payload.slice(1, newline) };
  return { kind: 'frame', frame: payload, exceptUser: null, exceptConnection: null };
}
