/**
 * What travels on the bus: the serialised event frame itself, as bytes (UTF-8), so that an instance receiving it
 * frames the same bytes for every local recipient without decoding or parsing them. Two optional prefixes, cheap to
 * test because a frame always starts with '{':
 * - `!<length>:<userId><frame>`: deliver to every interested connection except those of <userId> (typing indicators
 *   go to the other members only). The id is length-prefixed (its length in UTF-8 bytes, in decimal), not ended by a
 *   separator, so any string is carried whole, whatever characters it holds;
 * - `~<length>:<connectionId><frame>`: the same, except one connection (the one whose request caused the event: its
 *   reply already says what happened), laid out like the user form;
 * - `#<command>\n`: a control message for the gateway (for example `#ban`: close this user's connections). Commands
 *   are the fixed words of this module's callers, never ids.
 * This module is the only place that knows the layout.
 */
export type Envelope =
  | { kind: 'frame'; frame: Buffer; exceptUser: string | null; exceptConnection: string | null }
  | { kind: 'control'; command: string };

const OPEN_BRACE = 0x7b; // {
const BANG = 0x21; // !
const TILDE = 0x7e; // ~
const HASH = 0x23; // #
const COLON = 0x3a; // :
const NEWLINE = 0x0a;

/** At most one exception is carried: `exceptUser` when given, else `exceptConnection`. One UTF-8 encoding. */
export function encodeFrame(frame: string, exceptUser: string | null = null, exceptConnection: string | null = null): Buffer {
  if (exceptUser !== null) return prefixed(BANG, exceptUser, frame);
  if (exceptConnection !== null) return prefixed(TILDE, exceptConnection, frame);
  return Buffer.from(frame);
}

/** `<mark><length>:<id><frame>` written straight into one Buffer (a template string would be copied once more first). */
function prefixed(mark: number, id: string, frame: string): Buffer {
  const idBytes = Buffer.byteLength(id);
  const digits = String(idBytes);
  const out = Buffer.allocUnsafe(1 + digits.length + 1 + idBytes + Buffer.byteLength(frame));
  out[0] = mark;
  let at = 1 + out.write(digits, 1, 'latin1');
  out[at++] = COLON;
  at += out.write(id, at, 'utf8');
  out.write(frame, at, 'utf8');
  return out;
}

export function encodeControl(command: string): Buffer {
  return Buffer.from(`#${command}\n`);
}

/** The envelope of a payload; the frame is a view of the payload's bytes (no copy). */
export function decodeEnvelope(payload: Buffer): Envelope {
  const first = payload[0];
  if (first === OPEN_BRACE) return { kind: 'frame', frame: payload, exceptUser: null, exceptConnection: null };
  if (first === BANG || first === TILDE) {
    const colon = payload.indexOf(COLON, 1);
    const start = colon + 1;
    const length = colon > 1 ? decimalAt(payload, 1, colon) : -1;
    if (length >= 0 && start + length <= payload.length) {
      const except = payload.toString('utf8', start, start + length);
      const frame = payload.subarray(start + length);
      return first === BANG
        ? { kind: 'frame', frame, exceptUser: except, exceptConnection: null }
        : { kind: 'frame', frame, exceptUser: null, exceptConnection: except };
    }
  }
  const newline = payload.indexOf(NEWLINE);
  if (first === HASH && newline > 0) return { kind: 'control', command: payload.toString('utf8', 1, newline) };
  return { kind: 'frame', frame: payload, exceptUser: null, exceptConnection: null };
}

/** The decimal number written in bytes [from, to) of `payload`, or -1 if any of them is not a digit (read per event: no string, no regex). */
function decimalAt(payload: Buffer, from: number, to: number): number {
  let value = 0;
  for (let i = from; i < to; i++) {
    const digit = payload[i]! - 0x30;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}
