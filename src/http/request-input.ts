import { ParleyError } from '../protocol/errors.js';

/**
 * How the REST API decodes the two parts of a request fastify would otherwise decode leniently: the query string and
 * the JSON body. Both refuse ill-formed UTF-8 (which lenient decoders turn into U+FFFD and store) with INVALID_REQUEST,
 * as a URL path with it is and as a WebSocket text frame with it is (closed 1007).
 */

/** Where parseQuery leaves the first fault of a query string, for the preValidation hook to answer (a parser may not throw). */
export const QUERY_FAULT = Symbol('parley.queryFault');

/** A decoded query: one string per parameter name, plus the first fault found, if any. */
export type ParsedQuery = Record<string, string> & { [QUERY_FAULT]?: { path: string; message: string } };

/**
 * Decode `a=1&b=x+y` (application/x-www-form-urlencoded, as browsers send it): `+` is a space, `%XX` bytes must form
 * well-formed UTF-8. A parameter given twice, or one whose name or value is not valid percent-encoded UTF-8, is a fault
 * (the parameter keeps its first value). The object has no prototype, so no name (`__proto__` included) reaches one.
 */
export function parseQuery(queryString: string): ParsedQuery {
  const query = Object.create(null) as ParsedQuery;
  const fault = (path: string, message: string) => { query[QUERY_FAULT] ??= { path, message }; };
  for (const pair of queryString.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const rawName = eq === -1 ? pair : pair.slice(0, eq);
    const name = decode(rawName);
    const value = decode(eq === -1 ? '' : pair.slice(eq + 1));
    if (name === null) {
      fault(lenient(rawName), 'this parameter name is not valid percent-encoded UTF-8');
      continue;
    }
    if (value === null) fault(name, 'not valid percent-encoded UTF-8 (each %XX byte sequence must be well-formed UTF-8)');
    else if (Object.hasOwn(query, name)) fault(name, 'given more than once; send each query parameter at most once');
    else query[name] = value;
  }
  return query;
}

/** `s` percent-decoded, or null when its %XX bytes are not well-formed UTF-8 (decodeURIComponent is strict about that). */
function decode(s: string): string | null {
  try {
    return decodeURIComponent(s.replaceAll('+', ' '));
  } catch {
    return null;
  }
}

/** A bad name made printable for the error detail: undecodable bytes are left percent-encoded. */
function lenient(s: string): string {
  return s.length > 64 ? `${s.slice(0, 64)}…` : s;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** An empty body, or one of JSON whitespace only (space, tab, CR, LF): no body, whatever its content-type says. */
export function isBlank(body: Buffer): boolean {
  for (const byte of body) if (byte !== 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) return false;
  return true;
}

/** A body of another type than JSON (or of none given): INVALID_REQUEST naming the content-type. */
export function notJsonType(): ParleyError {
  return new ParleyError('INVALID_REQUEST', 'send application/json', [{ path: 'content-type', message: 'the only accepted body type is application/json' }]);
}

/**
 * Fastify's JSON content-type parser, replaced: the bytes must be well-formed UTF-8 (a fatal TextDecoder, so no byte
 * becomes U+FFFD unseen) and then JSON. Plain JSON.parse keeps `__proto__` as an own key, which the shared input check
 * (findRefused) then refuses with its path on both transports alike; secure-json-parse would refuse it as "not JSON".
 * An empty body (or only JSON whitespace) is no body: `undefined`.
 * Errors: INVALID_REQUEST (path `body`) for bad UTF-8; BAD_FRAME for a body that is not JSON.
 */
export function parseJsonBody(body: Buffer): unknown {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new ParleyError('INVALID_REQUEST', 'the body is not valid UTF-8', [{ path: 'body', message: 'not valid UTF-8 (ill-formed byte sequence)' }]);
  }
  // What fetch and curl send with a JSON content type set for every request: the same as no body.
  if (isBlank(body)) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new ParleyError('BAD_FRAME', 'the body is not valid JSON');
  }
}
