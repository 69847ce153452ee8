import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { displayNameProblem } from '../../src/protocol/display-names.js';
import { usernameDisplayForm, usernameFoldedSkeleton, usernameKey, usernameProblem, usernameScriptProblem, usernameSkeleton } from '../../src/protocol/usernames.js';
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

  it('the skeleton is taken of the name as shown, then case-insensitively: capital, digit and Cyrillic/Greek look-alikes collide', () => {
    const pairs: Array<[string, string]> = [
      ['Bob', 'Воb'], ['BOB', 'ВОВ'], ['Bob', 'ВОВ'], ['TOM', 'ТОМ'], ['TEXAS', 'ТЕХАЅ'], ['Kate', 'Κate'], ['paypal', 'paypaI'],
      ['Alice', 'AIice'], ['google', 'g00gle'], ['apple', 'аррӏе'], ['apple', 'АРРӀЕ'], ['oscar', 'οscar'], ['bob', 'BOB'], ['COOP', 'ϹΟΟΡ'], ['coop', 'ϲοορ'], ['bob', 'ｂоｂ'],
    ];
    for (const [a, b] of pairs) assert.equal(usernameSkeleton(a), usernameSkeleton(b), `${a} ~ ${b}`);
    // Folding first (the old order) erased these look-alikes before the confusables table saw them.
    assert.notEqual(usernameKey('paypaI'), usernameKey('paypal'));
  });

  it('the folded skeleton (of the key) is one for every spelling of an account, so either skeleton catches a look-alike', () => {
    for (const [a, b] of [['MARIA', 'maria'], ['MARIA', 'mari\u0307a'], ['MARIA2', 'rnaria2'], ['ИВАН', 'Иван'], ['PAYPAL', 'paypal']]) {
      assert.equal(usernameFoldedSkeleton(a), usernameFoldedSkeleton(b), `${a} ~ ${b}`);
    }
    assert.notEqual(usernameSkeleton('MARIA'), usernameSkeleton('maria'), 'the shown skeleton sees the capital I');
    assert.notEqual(usernameFoldedSkeleton('ali'), usernameFoldedSkeleton('all'));
    assert.notEqual(usernameSkeleton('ali'), usernameSkeleton('all'), 'lower-case i and l stay apart');
  });

  it('combining marks do not tell names apart, unless they are the own marks of a script that spells with them', () => {
    const same: Array<[string, string]> = [
      ['ivan', 'i\u0307van'], ['maria', 'MARİA'.toLowerCase()], ['bob', 'bob\u{16FE4}'], ['bob', 'bo\u1A60b'], ['bob', 'bob\u0CBC'],
      ['Jose', 'José'], ['Jose', 'Jose\u0301'], ['Иван', 'Иван\u0483'], ['हिन्दी', 'हिन्दी\u0CBC'],
    ];
    for (const [a, b] of same) assert.equal(usernameSkeleton(a), usernameSkeleton(b), `${JSON.stringify(a)} ~ ${JSON.stringify(b)}`);
    for (const [a, b] of [['कमल', 'कमला'], ['हिन्दी', 'हन्द'], ['alice', 'alicia'], ['李小龍', '李小龙'], ['Иван', 'Иеан']]) {
      assert.notEqual(usernameSkeleton(a), usernameSkeleton(b), `${a} differs from ${b}`);
    }
  });

  it('the letters of a username may not mix Latin, Cyrillic, Greek, Armenian or Cherokee; other scripts mix freely', () => {
    for (const mixed of ['Воb', 'Κate', 'Ivanов', 'Ωmega', 'Ꮟоb', 'Հello']) {
      assert.match(usernameScriptProblem(mixed) ?? '', /may not mix letters of/, mixed);
    }
    for (const fine of ['bob', 'ВОВ', 'аррӏе', 'ТЕХАЅ', 'Ωμέγα', '李alice', 'hindiहिन्दी', 'x1_2', 'ᏣᎳᎩ', 'さくらsakura']) {
      assert.equal(usernameScriptProblem(fine), null, fine);
    }
  });

  it('display names: 1-200 characters, no C0/C1 controls, no bidi embedding/override/isolate controls, well-formed', () => {
    for (const ok of ['Team chat', 'Ада 🎉', 'x'.repeat(200), '😀'.repeat(200), 'a\u200db', 'עברית and English']) assert.equal(displayNameProblem(ok), null, ok);
    const bad: Array<[string, RegExp]> = [
      ['', /at least one/], ['x'.repeat(201), /at most 200/], ['a\u0000b', /control/], ['a\nb', /control/], ['a\u0085b', /control/],
      ['a\u009bb', /control/], ['a\u202eb', /bidi/], ['a\u202ab', /bidi/], ['a\u2066b', /bidi/], ['a\u2069', /bidi/], ['a\ud800', /well-formed/],
    ];
    for (const [name, why] of bad) assert.match(displayNameProblem(name) ?? '', why, JSON.stringify(name));
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
