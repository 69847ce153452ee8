import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { exportJWK, SignJWT, type JWTPayload } from 'jose';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateSecret } from '../../src/auth/secret.js';
import { createTokenService, REMEMBERED_TOKEN_MS, REMEMBERED_TOKENS } from '../../src/auth/tokens.js';
import { loadConfig } from '../../src/config/load.js';
import type { Config, ConfigInput } from '../../src/config/schema.js';
import { ParleyError } from '../../src/protocol/errors.js';

const OWN_SECRET = 'own-secret-own-secret-own-secret-0123456789';
const EXTERNAL_SECRET = 'external-secret-external-secret-0123456789';
const enc = (s: string) => new TextEncoder().encode(s);
const nowSeconds = () => Math.floor(Date.now() / 1000);

function authConfig(jwt: Record<string, unknown> = {}): Config['auth'] {
  return loadConfig({ env: {}, overrides: { auth: { jwt: jwt as NonNullable<NonNullable<ConfigInput['auth']>['jwt']> } } }).auth;
}

async function sign(payload: JWTPayload, key: Uint8Array | KeyObject, alg: string, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg, typ: 'JWT', ...header }).sign(key);
}

async function refused(promise: Promise<unknown>, reason?: RegExp): Promise<ParleyError> {
  const err = await promise.then(
    () => assert.fail('expected the token to be refused'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ParleyError, `expected a ParleyError, got ${String(err)}`);
  assert.equal(err.code, 'UNAUTHORIZED');
  if (reason) assert.match(err.message, reason);
  return err;
}

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('own tokens', () => {
  const service = createTokenService(authConfig(), OWN_SECRET);

  test('issue then verify round-trips id, name, expiry, session id and generation; 24 hours by default', async () => {
    const before = Date.now();
    const { token, expiresAt, sessionId } = await service.issue({ id: 'u-1', name: 'Alice', generation: 3 });
    const verified = await service.verify(token);
    assert.deepEqual(verified, { userId: 'u-1', name: 'Alice', expiresAt, issuer: 'local', sessionId, generation: 3, admin: false });
    assert.notEqual((await service.issue({ id: 'u-1', name: 'Alice' })).sessionId, sessionId, 'every token has its own session id');
    const ttlMs = 24 * 3600 * 1000;
    assert.ok(expiresAt >= Math.floor(before / 1000) * 1000 + ttlMs && expiresAt <= Date.now() + ttlMs);
  });

  test('a custom ttl is honoured', async () => {
    const { token, expiresAt } = await service.issue({ id: 'u-1', name: 'Alice' }, { ttlSeconds: 60 });
    assert.ok(Math.abs(expiresAt - (Date.now() + 60_000)) < 2000);
    assert.equal((await service.verify(token)).expiresAt, expiresAt);
  });

  test('a token of another server (other secret, same issuer) is refused', async () => {
    const other = createTokenService(authConfig(), 'another-secret-another-secret-0123456789');
    const { token } = await other.issue({ id: 'u-1', name: 'Alice' });
    await refused(service.verify(token), /signature verification failed/);
  });

  test('an expired own token is refused', async () => {
    const token = await sign({ sub: 'u-1', iss: 'parley', exp: nowSeconds() - 3600 }, enc(OWN_SECRET), 'HS256');
    await refused(service.verify(token), /token expired/);
  });
});

describe('external tokens', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const otherEc = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsaPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const ecPem = ec.publicKey.export({ type: 'spki', format: 'pem' }).toString();

  const hs = createTokenService(authConfig({ secret: EXTERNAL_SECRET }), OWN_SECRET);
  const rs = createTokenService(authConfig({ publicKey: rsaPem }), OWN_SECRET);
  const valid = () => ({ sub: 'ext-42', name: 'Bob', iss: 'https://product.example', exp: nowSeconds() + 600 });

  let jwksServer: Server;
  let jwksUrl: string;
  let jwksHits = 0;
  before(async () => {
    const jwk = { ...(await exportJWK(ec.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    jwksServer = createServer((req, res) => {
      jwksHits++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;
  });
  after(() => new Promise<void>((resolve) => jwksServer.close(() => resolve())));

  test('HS256 with the shared secret', async () => {
    const exp = nowSeconds() + 600;
    const token = await sign({ ...valid(), exp }, enc(EXTERNAL_SECRET), 'HS256');
    assert.deepEqual(await hs.verify(token), {
      userId: 'ext-42', name: 'Bob', expiresAt: exp * 1000, issuer: 'external', sessionId: null, generation: 0, admin: false,
    });
  });

  test('a product token grants admin only through the configured claim, exactly true; its jti and gen mean nothing', async () => {
    const withClaim = createTokenService(authConfig({ secret: EXTERNAL_SECRET, adminClaim: 'parley_admin' }), OWN_SECRET);
    const token = (claims: Record<string, unknown>) => sign({ ...valid(), jti: 'j', gen: 5, ...claims }, enc(EXTERNAL_SECRET), 'HS256');
    assert.equal((await withClaim.verify(await token({ parley_admin: true }))).admin, true);
    for (const value of [false, 'true', 1]) assert.equal((await withClaim.verify(await token({ parley_admin: value }))).admin, false);
    const plain = await hs.verify(await token({ parley_admin: true, admin: true }));
    assert.deepEqual([plain.admin, plain.sessionId, plain.generation], [false, null, 0]);
  });

  test('preferred_username is used when there is no name', async () => {
    const { name: _, ...rest } = valid();
    const token = await sign({ ...rest, preferred_username: 'bobby' }, enc(EXTERNAL_SECRET), 'HS256');
    assert.equal((await hs.verify(token)).name, 'bobby');
  });

  test('no name at all gives null', async () => {
    const { name: _, ...rest } = valid();
    assert.equal((await hs.verify(await sign(rest, enc(EXTERNAL_SECRET), 'HS256'))).name, null);
  });

  test('RS256 with a PEM public key', async () => {
    const token = await sign(valid(), rsa.privateKey, 'RS256');
    const verified = await rs.verify(token);
    assert.equal(verified.userId, 'ext-42');
    assert.equal(verified.issuer, 'external');
  });

  test('ES256 with a PEM public key (algorithm detected from the key)', async () => {
    const es = createTokenService(authConfig({ publicKey: ecPem }), OWN_SECRET);
    assert.equal((await es.verify(await sign(valid(), ec.privateKey, 'ES256'))).userId, 'ext-42');
    await refused(es.verify(await sign(valid(), rsa.privateKey, 'RS256')), /algorithm not allowed/);
  });

  test('ES256 with a key from a JWKS URL', async () => {
    const service = createTokenService(authConfig({ jwksUrl }), OWN_SECRET);
    const token = await sign(valid(), ec.privateKey, 'ES256', { kid: 'k1' });
    assert.equal((await service.verify(token)).userId, 'ext-42');
    assert.ok(jwksHits >= 1);
    await refused(service.verify(await sign(valid(), otherEc.privateKey, 'ES256', { kid: 'k1' })), /signature verification failed/);
  });

  test('an unreachable JWKS is UNAVAILABLE, not UNAUTHORIZED', async () => {
    const dead = createServer();
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
    const port = (dead.address() as AddressInfo).port;
    await new Promise<void>((resolve) => dead.close(() => resolve()));
    const service = createTokenService(authConfig({ jwksUrl: `http://127.0.0.1:${port}/jwks` }), OWN_SECRET);
    const err = await service.verify(await sign(valid(), ec.privateKey, 'ES256')).catch((e: unknown) => e);
    assert.ok(err instanceof ParleyError);
    assert.equal(err.code, 'UNAVAILABLE');
  });

  test('required issuer and audience', async () => {
    const strict = createTokenService(authConfig({ secret: EXTERNAL_SECRET, issuer: 'https://product.example', audience: 'parley' }), OWN_SECRET);
    assert.equal((await strict.verify(await sign({ ...valid(), aud: 'parley' }, enc(EXTERNAL_SECRET), 'HS256'))).userId, 'ext-42');
    await refused(strict.verify(await sign({ ...valid(), aud: 'other' }, enc(EXTERNAL_SECRET), 'HS256')), /audience/);
    await refused(strict.verify(await sign({ ...valid(), aud: 'parley', iss: 'https://evil.example' }, enc(EXTERNAL_SECRET), 'HS256')), /issuer/);
  });

  test('clock tolerance: recently expired passes, long expired does not', async () => {
    await hs.verify(await sign({ ...valid(), exp: nowSeconds() - 10 }, enc(EXTERNAL_SECRET), 'HS256'));
    await refused(hs.verify(await sign({ ...valid(), exp: nowSeconds() - 120 }, enc(EXTERNAL_SECRET), 'HS256')), /token expired/);
  });

  describe('refused', () => {
    test('alg none (crafted by hand)', async () => {
      const token = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(valid())}.`;
      await refused(hs.verify(token), /algorithm not allowed/);
      const own = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ ...valid(), iss: 'parley' })}.`;
      await refused(hs.verify(own), /algorithm not allowed/);
    });

    test('wrong shared secret', async () => {
      const token = await sign(valid(), enc('not-the-secret-not-the-secret-0123456789'), 'HS256');
      await refused(hs.verify(token), /signature verification failed/);
    });

    test('wrong RSA key', async () => {
      await refused(rs.verify(await sign(valid(), otherRsa.privateKey, 'RS256')), /signature verification failed/);
    });

    test('HS256 signed with the public key as secret (algorithm confusion)', async () => {
      await refused(rs.verify(await sign(valid(), enc(rsaPem), 'HS256')), /algorithm not allowed/);
    });

    test('algorithm the configured keys do not use', async () => {
      await refused(hs.verify(await sign(valid(), rsa.privateKey, 'RS256')), /algorithm not allowed/);
      await refused(hs.verify(await sign(valid(), enc(EXTERNAL_SECRET), 'HS512')), /algorithm not allowed/);
    });

    test('expired', async () => {
      await refused(hs.verify(await sign({ ...valid(), exp: nowSeconds() - 3600 }, enc(EXTERNAL_SECRET), 'HS256')), /token expired/);
    });

    test('missing exp (an eternal token)', async () => {
      const { exp: _, ...rest } = valid();
      await refused(hs.verify(await sign(rest, enc(EXTERNAL_SECRET), 'HS256')), /expiry/);
    });

    test('missing, empty or too long sub', async () => {
      const { sub: _, ...rest } = valid();
      await refused(hs.verify(await sign(rest, enc(EXTERNAL_SECRET), 'HS256')), /subject/);
      await refused(hs.verify(await sign({ ...valid(), sub: '' }, enc(EXTERNAL_SECRET), 'HS256')), /subject/);
      await refused(hs.verify(await sign({ ...valid(), sub: 'x'.repeat(129) }, enc(EXTERNAL_SECRET), 'HS256')), /subject/);
    });

    test('signed with the external secret but claiming the own issuer', async () => {
      const token = await sign({ ...valid(), iss: 'parley' }, enc(EXTERNAL_SECRET), 'HS256');
      await refused(hs.verify(token), /signature verification failed/);
    });

    test('an own token is not accepted by the external route (no issuer)', async () => {
      const { iss: _, ...rest } = valid();
      await refused(hs.verify(await sign(rest, enc(OWN_SECRET), 'HS256')), /signature verification failed/);
    });

    test('external tokens when no external key is configured', async () => {
      const ownOnly = createTokenService(authConfig(), OWN_SECRET);
      await refused(ownOnly.verify(await sign(valid(), enc(EXTERNAL_SECRET), 'HS256')), /not accepted/);
    });

    test('garbage strings', async () => {
      for (const garbage of ['', 'abc', 'a.b.c', '...', 'Bearer x', `${b64url({ alg: 'HS256' })}.notjson.sig`, 'x'.repeat(20_000)]) {
        await refused(hs.verify(garbage));
      }
      await refused(hs.verify(undefined as unknown as string));
    });

    test('a tampered payload', async () => {
      const token = await sign(valid(), enc(EXTERNAL_SECRET), 'HS256');
      const [h, , s] = token.split('.');
      await refused(hs.verify(`${h}.${b64url({ ...valid(), sub: 'admin' })}.${s}`), /signature verification failed/);
    });
  });
});

describe('configuration mistakes', () => {
  test('a private key or junk as auth.jwt.publicKey is refused at creation', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    assert.throws(() => createTokenService(authConfig({ publicKey: pem }), OWN_SECRET), /private key/);
    assert.throws(() => createTokenService(authConfig({ publicKey: 'nonsense' }), OWN_SECRET), /auth\.jwt\.publicKey/);
  });
});

describe('the server secret (<dataDir>/secret)', () => {
  const root = mkdtempSync(join(tmpdir(), 'parley-secret-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  test('created once (folder too), mode 0600, then read back unchanged', async () => {
    const dataDir = join(root, 'a', 'b');
    const secret = await loadOrCreateSecret(dataDir);
    assert.match(secret, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(statSync(join(dataDir, 'secret')).mode & 0o777, 0o600);
    assert.equal(await loadOrCreateSecret(dataDir), secret);
    assert.equal(readFileSync(join(dataDir, 'secret'), 'utf8').trim(), secret);
  });

  test('processes starting together agree on one secret', async () => {
    const dataDir = join(root, 'race');
    const secrets = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateSecret(dataDir)));
    assert.equal(new Set(secrets).size, 1);
  });

  test('a damaged secret file is an error, not silently replaced', async () => {
    const dataDir = join(root, 'damaged');
    await loadOrCreateSecret(dataDir);
    writeFileSync(join(dataDir, 'secret'), 'short');
    await assert.rejects(loadOrCreateSecret(dataDir), /no usable secret/);
  });
});

describe('verified tokens are remembered', () => {
  // A clock the test moves: expiry on a remembered token is judged by it, as jose judges a fresh one.
  let now = Date.now();
  const clock = () => now;
  const fresh = () => createTokenService(authConfig(), OWN_SECRET, clock);

  test('a token checked once is answered from memory after; a token that differs only in its signature is not', async () => {
    const service = fresh();
    const { token } = await service.issue({ id: 'u-1', name: 'Alice' });
    const first = await service.verify(token);
    assert.deepEqual(await service.verify(token), first);
    assert.deepEqual(service.stats(), { remembered: 1, hits: 1, checked: 1 });
    const [h, p, s] = token.split('.');
    const forged = `${h}.${p}.${s.slice(0, -2)}${s.endsWith('AA') ? 'BB' : 'AA'}`;
    await refused(service.verify(forged), /signature verification failed/);
    assert.deepEqual(service.stats(), { remembered: 1, hits: 1, checked: 1 }, 'a refusal is not remembered');
    await refused(service.verify(forged), /signature verification failed/);
  });

  test('a remembered token is refused once expired (with the tolerance), like any other', async () => {
    now = Date.now();
    const service = fresh();
    const { token, expiresAt } = await service.issue({ id: 'u-1', name: 'Alice' }, { ttlSeconds: 60 });
    await service.verify(token);
    const tolerance = authConfig().jwt.clockToleranceSeconds * 1000;
    now = expiresAt + tolerance - 1;
    assert.equal((await service.verify(token)).userId, 'u-1', 'still within exp + tolerance');
    assert.equal(service.stats().hits, 1);
    now = expiresAt + tolerance;
    await refused(service.verify(token), /token expired/);
    assert.equal(service.stats().remembered, 0);
  });

  test('a verification is remembered for at most REMEMBERED_TOKEN_MS, then checked in full again', async () => {
    now = Date.now();
    const service = fresh();
    const { token } = await service.issue({ id: 'u-1', name: 'Alice' });
    await service.verify(token);
    now += REMEMBERED_TOKEN_MS - 1;
    await service.verify(token);
    assert.deepEqual(service.stats(), { remembered: 1, hits: 1, checked: 1 });
    now += 1;
    await service.verify(token);
    assert.deepEqual(service.stats(), { remembered: 1, hits: 1, checked: 2 });
  });

  test(`at most ${REMEMBERED_TOKENS} are kept: the oldest is forgotten first`, async () => {
    now = Date.now();
    const service = fresh();
    const tokens = await Promise.all(Array.from({ length: REMEMBERED_TOKENS + 2 }, (_, i) => service.issue({ id: `u-${i}`, name: 'A' })));
    for (const { token } of tokens) await service.verify(token);
    assert.deepEqual(service.stats(), { remembered: REMEMBERED_TOKENS, hits: 0, checked: REMEMBERED_TOKENS + 2 });
    await service.verify(tokens.at(-1)!.token);
    assert.equal(service.stats().hits, 1, 'the newest is remembered');
    await service.verify(tokens[0]!.token);
    assert.deepEqual(service.stats(), { remembered: REMEMBERED_TOKENS, hits: 1, checked: REMEMBERED_TOKENS + 3 }, 'the oldest was forgotten');
  });
});

describe('expiry with a fraction of a second', () => {
  test('a token whose exp has a fraction is refused from exp + tolerance exactly, as its connection is closed then', async () => {
    const exp = nowSeconds() + 60.5;
    let now = Date.now();
    const service = createTokenService(authConfig({ secret: EXTERNAL_SECRET }), OWN_SECRET, () => now);
    const token = await sign({ sub: 'u-frac', exp }, enc(EXTERNAL_SECRET), 'HS256');
    const tolerance = authConfig().jwt.clockToleranceSeconds;
    now = (exp + tolerance) * 1000 - 1;
    assert.equal((await service.verify(token)).expiresAt, exp * 1000);
    now = (exp + tolerance) * 1000;
    await refused(service.verify(token), /token expired/);
    // Checked in full, not only when remembered: a second service that never saw the token refuses it too.
    await refused(createTokenService(authConfig({ secret: EXTERNAL_SECRET }), OWN_SECRET, () => now).verify(token), /token expired/);
  });
});
