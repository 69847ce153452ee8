import { createHash, createPublicKey, randomUUID, type KeyObject } from 'node:crypto';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors, jwtVerify, SignJWT, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { ConfigError } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { ParleyError } from '../protocol/errors.js';
import { displayNameCharacterProblem } from '../protocol/display-names.js';
import { isWellFormed } from '../protocol/well-formed.js';
import { isValidId } from '../protocol/ids.js';

/**
 * Bearer tokens. Two kinds are accepted:
 * - the server's own: HS256 with the server secret, `iss` = auth.accounts.issuer (issued by `issue`, on login and by
 *   `parley token`);
 * - the integrating product's ("external"): HS256 with auth.jwt.secret, or RS256/ES256 with auth.jwt.publicKey or a key
 *   from auth.jwt.jwksUrl.
 * A token is routed by its unverified `iss`: the own issuer is checked against the own secret only, anything else
 * against the external keys only, so an external key can never mint a token that passes as one of ours.
 * Every refusal is a ParleyError('UNAUTHORIZED') with a short reason; an unreachable JWKS is UNAVAILABLE (retry later).
 */

export interface VerifiedToken {
  userId: string;
  name: string | null;
  /** Expiry in ms since the epoch (like Date.now()). */
  expiresAt: number | null;
  issuer: 'local' | 'external';
  /** Our own tokens: the session id (`jti`) that logout revokes, or null for a token without one. */
  sessionId: string | null;
  /** Our own tokens: the user's token generation at issue (`gen`, 0 when absent); "log out everywhere" moves it on. */
  generation: number;
  /** Product tokens: whether the configured admin claim (auth.jwt.adminClaim) is `true`. Never true otherwise. */
  admin: boolean;
}

export interface TokenService {
  /**
   * The token's claims once its signature and claims check out; a ParleyError UNAUTHORIZED (UNAVAILABLE when the JWKS
   * cannot be fetched) otherwise. A token verified before is answered from memory while it is valid (see
   * REMEMBERED_TOKENS): reconnecting clients and REST clients present the same token again and again.
   */
  verify(token: string): Promise<VerifiedToken>;
  /** Tokens remembered now, and verifications answered from memory and checked in full since start (for tests). */
  stats(): { remembered: number; hits: number; checked: number };
  /**
   * A token of our own for the user, with a fresh session id (`jti`) and the user's token generation (`gen`);
   * `expiresAt` in ms since the epoch.
   */
  issue(user: { id: string; name: string; generation?: number }, options?: { ttlSeconds?: number }): Promise<{ token: string; expiresAt: number; sessionId: string }>;
}

const MAX_TOKEN_LENGTH = 16 * 1024;

/**
 * Verified tokens kept, at most; past it the oldest is forgotten. A check costs ~35 µs of CPU and, since jose uses
 * WebCrypto, a trip through libuv's thread pool (~90 µs before the answer on an idle machine): on every reconnect, and
 * on every REST call. A token is kept as its SHA-256 (~1 µs for a usual token), not as itself: an entry is then
 * at most ~0.6 KB (the digest, the user id and name of at most 128 characters each) whatever the token's length, and
 * never holds on to the request header the token was cut from. So the bound is about 0.6 MB.
 */
export const REMEMBERED_TOKENS = 1024;
/**
 * How long a verification is remembered at most (ms), whatever the token's expiry: a key dropped from a JWKS stops
 * being accepted within jose's own refresh of the key set (10 minutes), as before. Expiry is checked on every use;
 * revocation (logout, bans) is checked by the Authenticator on every use, from the store.
 */
export const REMEMBERED_TOKEN_MS = 5 * 60_000;
const MAX_SUBJECT_LENGTH = 128;
const MAX_NAME_LENGTH = 128;

type AsymmetricAlg = 'RS256' | 'ES256';
type Verifier = { key: Parameters<typeof jwtVerify>[1]; remote: boolean };

/** `clock`: ms since the epoch, for expiry (tests move it). */
export function createTokenService(config: Config['auth'], ownSecret: string, clock: () => number = Date.now): TokenService {
  if (!ownSecret) throw new Error('createTokenService: the own secret is empty');
  const ownKey = hmacKey(ownSecret);
  const ownIssuer = config.accounts.issuer;
  const jwt = config.jwt;
  const tolerance = jwt.clockToleranceSeconds;

  const externalSecret = jwt.secret ? hmacKey(jwt.secret) : undefined;
  const pem = jwt.publicKey ? importPem(jwt.publicKey) : undefined;
  const jwks = jwt.jwksUrl ? createRemoteJWKSet(new URL(jwt.jwksUrl), { timeoutDuration: 5000, cooldownDuration: 30_000 }) : undefined;

  const externalAlgs = new Set<string>();
  if (externalSecret) externalAlgs.add('HS256');
  if (pem) externalAlgs.add(pem.alg);
  if (jwks) { externalAlgs.add('RS256'); externalAlgs.add('ES256'); }

  const externalOptions: JWTVerifyOptions = { clockTolerance: tolerance, requiredClaims: ['exp', 'sub'] };
  if (jwt.issuer) externalOptions.issuer = jwt.issuer;
  if (jwt.audience) externalOptions.audience = jwt.audience;

  async function verifyOwn(token: string, now: number): Promise<JWTPayload> {
    try {
      const { payload } = await jwtVerify(token, await ownKey(), {
        algorithms: ['HS256'], issuer: ownIssuer, clockTolerance: tolerance, requiredClaims: ['exp', 'sub'], currentDate: new Date(now),
      });
      return payload;
    } catch (err) {
      throw wrap(err);
    }
  }

  async function verifyExternal(token: string, alg: string, now: number): Promise<JWTPayload> {
    if (externalAlgs.size === 0) throw unauthorized('tokens from this issuer are not accepted');
    if (!externalAlgs.has(alg)) throw unauthorized('algorithm not allowed');
    const candidates: Verifier[] = [];
    if (alg === 'HS256' && externalSecret) candidates.push({ key: await externalSecret(), remote: false });
    if (pem && pem.alg === alg) candidates.push({ key: pem.key, remote: false });
    if (jwks && (alg === 'RS256' || alg === 'ES256')) candidates.push({ key: jwks as unknown as Verifier['key'], remote: true });
    const failures: ParleyError[] = [];
    for (const { key, remote } of candidates) {
      try {
        const { payload } = await jwtVerify(token, key as any, { ...externalOptions, algorithms: [alg], currentDate: new Date(now) });
        return payload;
      } catch (err) {
        const wrapped = wrap(err, remote);
        // A claim failure means the signature was good: that is the real reason.
        if (isClaimFailure(err)) throw wrapped;
        failures.push(wrapped);
      }
    }
    throw failures.find((f) => f.code === 'UNAVAILABLE') ?? failures[0] ?? unauthorized('algorithm not allowed');
  }

  /** The full check of a token not remembered: signature, issuer routing, claims. */
  async function check(token: string, now: number): Promise<VerifiedToken> {
    if (typeof token !== 'string' || token.length === 0) throw unauthorized('missing token');
    if (token.length > MAX_TOKEN_LENGTH) throw unauthorized('token too long');
    let alg: unknown;
    let claimedIssuer: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
      claimedIssuer = decodeJwt(token).iss;
    } catch {
      throw unauthorized('malformed token');
    }
    if (typeof alg !== 'string' || alg.toLowerCase() === 'none') throw unauthorized('algorithm not allowed');

    const local = claimedIssuer === ownIssuer;
    const payload = local ? await verifyOwn(token, now) : await verifyExternal(token, alg, now);

    const sub = payload.sub;
    if (typeof sub !== 'string' || sub.length === 0) throw unauthorized('token has no subject (sub)');
    if (sub.length > MAX_SUBJECT_LENGTH) throw unauthorized(`subject (sub) longer than ${MAX_SUBJECT_LENGTH} characters`);
    // The user id reaches topics, logs and URLs: refused at the door unless it is of the id alphabet.
    if (!isValidId(sub)) throw unauthorized('subject (sub) has characters outside the id alphabet (A-Z a-z 0-9 . _ ~ - : @ + | =)');
    if (typeof payload.exp !== 'number') throw unauthorized('token has no expiry (exp)');
    // jose compares whole seconds: an exp with a fraction would pass until the next second, past the moment a
    // connection made with it is closed (4004 at exp + tolerance). Refused from that same moment.
    if (now >= (payload.exp + tolerance) * 1000) throw unauthorized('token expired');
    // jose checks iat only against a maximum age; one from the future (beyond the tolerance) was never issued honestly.
    if (typeof payload.iat === 'number' && payload.iat > now / 1000 + tolerance) throw unauthorized('token issued in the future (iat)');
    // Frozen: a remembered verification is handed to every later caller of the token.
    return Object.freeze({
      userId: sub, name: nameOf(payload), expiresAt: payload.exp * 1000, issuer: local ? 'local' : 'external',
      sessionId: local && typeof payload.jti === 'string' && payload.jti.length > 0 ? payload.jti : null,
      generation: local && Number.isSafeInteger(payload.gen) ? (payload.gen as number) : 0,
      admin: !local && jwt.adminClaim !== undefined && payload[jwt.adminClaim] === true,
    } satisfies VerifiedToken);
  }

  // Insertion order is age: the first key is the oldest.
  const remembered = new Map<string, { verified: VerifiedToken; until: number }>();
  let hits = 0;
  let checked = 0;

  function remember(token: string, verified: VerifiedToken, now: number): void {
    // Valid while check() would still accept it: now < exp + tolerance.
    const until = Math.min((verified.expiresAt ?? now) + tolerance * 1000, now + REMEMBERED_TOKEN_MS);
    if (until <= now) return;
    if (remembered.size >= REMEMBERED_TOKENS) remembered.delete(remembered.keys().next().value!);
    remembered.set(digestOf(token), { verified, until });
  }

  return {
    async verify(token) {
      const now = clock();
      const key = typeof token === 'string' && token.length <= MAX_TOKEN_LENGTH ? digestOf(token) : null;
      const known = key === null ? undefined : remembered.get(key);
      if (known !== undefined) {
        if (now < known.until) {
          hits++;
          return known.verified;
        }
        remembered.delete(key!);
      }
      const verified = await check(token, now);
      checked++;
      remember(token, verified, now);
      return verified;
    },

    stats: () => ({ remembered: remembered.size, hits, checked }),

    async issue(user, options) {
      if (!isValidId(user.id)) throw new Error(`issue: user id must be 1 to ${MAX_SUBJECT_LENGTH} characters of the id alphabet`);
      if (!isWellFormed(user.name)) throw new Error('issue: the user name must be well-formed Unicode (no lone surrogate)');
      const ttl = options?.ttlSeconds ?? config.accounts.tokenTtlSeconds;
      if (!(Number.isInteger(ttl) && ttl > 0)) throw new Error('issue: ttlSeconds must be a positive whole number');
      const now = Math.floor(Date.now() / 1000);
      const exp = now + ttl;
      const sessionId = randomUUID();
      const token = await new SignJWT({ name: user.name, gen: user.generation ?? 0 })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setIssuer(ownIssuer)
        .setSubject(user.id)
        .setJti(sessionId)
        .setIssuedAt(now)
        .setExpirationTime(exp)
        .sign(await ownKey());
      return { token, expiresAt: exp * 1000, sessionId };
    },
  };
}

/**
 * An HS256 secret as a CryptoKey, imported on first use and kept: given the secret's bytes, jose imports them again for
 * every token it checks, about a tenth of what a connection's setup allocates.
 */
function hmacKey(secret: string): () => Promise<CryptoKey> {
  let imported: Promise<CryptoKey> | undefined;
  return () => (imported ??= crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']));
}

function nameOf(payload: JWTPayload): string | null {
  for (const claim of ['name', 'preferred_username']) {
    const v = payload[claim];
    if (typeof v !== 'string' || v.trim().length === 0) continue;
    if (!isWellFormed(v)) throw unauthorized(`${claim} claim is not well-formed Unicode (lone surrogate)`);
    // Cut at a code point boundary (slicing UTF-16 units could split a surrogate pair), then trim again: the name kept
    // is what the display-name rule (src/protocol/display-names.ts) judges, so a cut cannot leave a broken flag
    // sequence, a trailing space or nothing visible.
    const name = Array.from(v.trim()).slice(0, MAX_NAME_LENGTH).join('').trim();
    const problem = displayNameCharacterProblem(name);
    if (problem) throw unauthorized(`${claim} claim: ${problem}`);
    return name;
  }
  return null;
}

/** Parse auth.jwt.publicKey (PEM SPKI or certificate) and pick its algorithm from the key type. */
function importPem(text: string): { alg: AsymmetricAlg; key: KeyObject } {
  const pem = text.includes('\\n') && !text.includes('\n') ? text.replace(/\\n/g, '\n') : text; // from an env var
  const bad = (problem: string) => new ConfigError([{ path: 'auth.jwt.publicKey', problem, source: 'configuration' }]);
  if (/PRIVATE KEY/.test(pem)) throw bad('is a private key; give the public key (PEM "BEGIN PUBLIC KEY")');
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw bad('is not a PEM public key (expected "-----BEGIN PUBLIC KEY-----")');
  }
  if (key.asymmetricKeyType === 'rsa') return { alg: 'RS256', key };
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return { alg: 'ES256', key };
  throw bad(`unsupported key type ${key.asymmetricKeyType}${key.asymmetricKeyDetails?.namedCurve ? ` (${key.asymmetricKeyDetails.namedCurve})` : ''}; use RSA (RS256) or EC P-256 (ES256)`);
}

function unauthorized(reason: string, cause?: unknown): ParleyError {
  const err = new ParleyError('UNAUTHORIZED', reason);
  if (cause !== undefined) Object.defineProperty(err, 'cause', { value: cause, enumerable: false });
  return err;
}

function isClaimFailure(err: unknown): boolean {
  return err instanceof errors.JWTExpired || err instanceof errors.JWTClaimValidationFailed;
}

/**
 * Turn whatever jose threw into a ParleyError with a short reason. With `remote` (a JWKS lookup), failures that are
 * not about the token itself (network, timeout, bad JWKS response) are UNAVAILABLE.
 */
function wrap(err: unknown, remote = false): ParleyError {
  if (err instanceof ParleyError) return err;
  if (err instanceof errors.JWTExpired) return unauthorized('token expired', err);
  if (err instanceof errors.JWSSignatureVerificationFailed) return unauthorized('signature verification failed', err);
  if (err instanceof errors.JOSEAlgNotAllowed) return unauthorized('algorithm not allowed', err);
  if (err instanceof errors.JWTClaimValidationFailed) {
    const missing = err.reason === 'missing';
    switch (err.claim) {
      case 'exp': return unauthorized(missing ? 'token has no expiry (exp)' : 'invalid expiry (exp)', err);
      case 'sub': return unauthorized(missing ? 'token has no subject (sub)' : 'invalid subject (sub)', err);
      case 'iss': return unauthorized('issuer not accepted', err);
      case 'aud': return unauthorized('audience not accepted', err);
      case 'nbf': return unauthorized(err.reason === 'check_failed' ? 'token not yet valid' : 'invalid not-before (nbf)', err);
      case 'iat': return unauthorized('invalid issued-at (iat)', err);
      default: return unauthorized(`invalid "${err.claim}" claim`, err);
    }
  }
  if (err instanceof errors.JWKSNoMatchingKey) return unauthorized('no matching key in the JWKS', err);
  if (err instanceof errors.JWKSMultipleMatchingKeys) return unauthorized('ambiguous key in the JWKS (several match; set kid)', err);
  const generic = !(err instanceof errors.JOSEError) || err.code === 'ERR_JOSE_GENERIC';
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid || (remote && generic)) {
    const e = new ParleyError('UNAVAILABLE', 'could not fetch the signing keys (JWKS)');
    Object.defineProperty(e, 'cause', { value: err, enumerable: false });
    return e;
  }
  if (err instanceof errors.JOSEError) return unauthorized('malformed token', err);
  return unauthorized('invalid token', err);
}

/** What a remembered token is kept as: its SHA-256, base64url. */
function digestOf(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}
