import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hashPassword, verifyPassword } from '../../src/auth/passwords.js';

describe('password hashing', () => {
  test('the right password verifies, a wrong one does not', async () => {
    const stored = await hashPassword('correct horse battery staple');
    assert.equal(await verifyPassword('correct horse battery staple', stored), true);
    assert.equal(await verifyPassword('correct horse battery stapler', stored), false);
    assert.equal(await verifyPassword('', stored), false);
  });

  test('the stored string carries algorithm and parameters: scrypt$N$r$p$salt$hash', async () => {
    const stored = await hashPassword('pw-123456');
    const parts = stored.split('$');
    assert.equal(parts.length, 6);
    assert.equal(parts[0], 'scrypt');
    for (const n of parts.slice(1, 4)) assert.match(n, /^\d+$/);
    assert.equal(Buffer.from(parts[4], 'base64url').length, 16);
    assert.ok(!stored.includes('pw-123456'));
  });

  test('the same password hashes differently each time (distinct salts)', async () => {
    const a = await hashPassword('same password');
    const b = await hashPassword('same password');
    assert.notEqual(a, b);
    assert.notEqual(a.split('$')[4], b.split('$')[4]);
    assert.equal(await verifyPassword('same password', a), true);
    assert.equal(await verifyPassword('same password', b), true);
  });

  test('unicode passwords: composed and decomposed forms are the same password', async () => {
    const stored = await hashPassword('caf\u00e9-p\u00e4ss');
    assert.equal(await verifyPassword('cafe\u0301-pa\u0308ss', stored), true);
  });

  test('malformed or hostile stored strings verify as false, without throwing', async () => {
    const good = await hashPassword('pw');
    const [, n, r, p, salt, hash] = good.split('$');
    for (const stored of [
      '', 'plain', 'bcrypt$x', `scrypt$${n}$${r}$${p}$${salt}`, `argon2$${n}$${r}$${p}$${salt}$${hash}`,
      `scrypt$1000$${r}$${p}$${salt}$${hash}`, // N not a power of two
      `scrypt$${2 ** 24}$${r}$${p}$${salt}$${hash}`, // N absurdly large
      `scrypt$${n}$${r}$${p}$$${hash}`, `scrypt$${n}$${r}$${p}$${salt}$`,
    ]) {
      assert.equal(await verifyPassword('pw', stored), false, stored);
    }
  });

  test('older, cheaper parameters in a stored string still verify', async () => {
    const { scryptSync, randomBytes } = await import('node:crypto');
    const salt = randomBytes(16);
    const hash = scryptSync('legacy', salt, 32, { N: 1024, r: 8, p: 1 });
    const stored = `scrypt$1024$8$1$${salt.toString('base64url')}$${hash.toString('base64url')}`;
    assert.equal(await verifyPassword('legacy', stored), true);
    assert.equal(await verifyPassword('legacy!', stored), false);
  });
});
