import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { usernameDisplayForm, usernameKey, usernameProblem, usernameSkeleton } from '../../src/protocol/usernames.js';
import { findIllFormed, isWellFormed } from '../../src/protocol/well-formed.js';

describe('username keys and skeletons (src/protocol/usernames.ts)', () => {
  it('the key is NFKC + full case folding, where toLowerCase falls short', () => {
    const same: Array<[string, string]> = [['Straße', 'STRASSE'], ['ﬃ', 'FFI'], ['σας', 'ΣΑΣ'], ['ｂｏｂ', 'BOB'], ['Иван', 'иВАН'], ['Å', 'å'], ['ǅ', 'DŽ']];
    for (const [a, b] of same) assert.equal(usernameKey(a), usernameKey(b), `${a} ~ ${b}`);
    assert.notEqual('Straße'.toLowerCase(), 'STRASSE'.toLowerCase(), 'toLowerCase alone would keep ß');
    assert.notEqual(usernameKey('ivan'), usernameKey('іvan'), 'a look-alike is not the same key');
  });

  it('the skeleton joins look-alikes across scripts and styles (TR39)', () => {
    for (const [a, b] of [['ivan', 'іvan'], ['paypal', '𝔭𝒶ỿ𝕡𝕒ℓ'], ['modern', 'rnodern'], ['alice', 'аlicе'], ['bob', 'Ꮟоb']]) {
      assert.equal(usernameSkeleton(a), usernameSkeleton(b), `${a} ~ ${b}`);
    }
    assert.notEqual(usernameSkeleton('alice'), usernameSkeleton('alicia'));
  });

  it('the display form is trimmed NFC, and the rules refuse invisible, spacing and control characters', () => {
    assert.equal(usernameDisplayForm('  Jose\u0301 '), 'José');
    for (const ok of ['alice', 'José', 'हिन्दी', 'user_1.b-c', '李小龍', 'x'.repeat(64)]) assert.equal(usernameProblem(ok), null, ok);
    for (const bad of ['', 'a b', 'a\u200bb', 'a\u202eb', 'a\u0007b', 'a\ufe0f', '\u3164', '\u0301a', 'x'.repeat(65), 'a@b', 'a😀']) {
      assert.notEqual(usernameProblem(bad), null, JSON.stringify(bad));
    }
  });
});

describe('well-formed strings (src/protocol/well-formed.ts)', () => {
  it('finds lone surrogates in values and keys at any depth, with their path', () => {
    assert.equal(isWellFormed('a\ud83d\ude00b'), true);
    assert.equal(isWellFormed('a\ud800'), false);
    assert.equal(isWellFormed('\udc00a'), false);
    assert.equal(findIllFormed({ a: [1, 'ok', { b: 'x\ud800' }] })?.join('.'), 'a.2.b');
    assert.equal(findIllFormed({ a: { ['k\udc00']: 1 } })?.join('.'), 'a.k\udc00');
    assert.equal(findIllFormed({ a: ['\ud83d\ude00'], b: null, c: 3 }), null);
  });
});
