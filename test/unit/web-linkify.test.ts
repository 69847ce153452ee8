import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { linkify } from '../../packages/web/src/linkify.js';

describe('linkify (the web client\'s links in message text)', () => {
  it('makes http and https URLs links, leaving the sentence punctuation outside', () => {
    assert.deepEqual(linkify('See https://example.com/a?b=1, or (http://x.test/path).'), [
      { kind: 'text', text: 'See ' },
      { kind: 'link', text: 'https://example.com/a?b=1', href: 'https://example.com/a?b=1' },
      { kind: 'text', text: ', or (' },
      { kind: 'link', text: 'http://x.test/path', href: 'http://x.test/path' },
      { kind: 'text', text: ').' },
    ]);
  });

  it('never links other schemes, and keeps markup as text', () => {
    for (const text of ['javascript:alert(1)', 'data:text/html,<b>x</b>', '<a href="https://evil.test">x</a>', 'vbscript:x']) {
      const segments = linkify(text);
      assert.equal(segments.map((s) => s.text).join(''), text, 'nothing is lost or added');
      for (const s of segments) if (s.kind === 'link') assert.match(s.href, /^https?:\/\//);
    }
    assert.deepEqual(linkify('<a href="https://evil.test">x</a>').filter((s) => s.kind === 'link').map((s) => s.text), ['https://evil.test']);
  });

  it('returns plain text unchanged, and nothing for nothing', () => {
    assert.deepEqual(linkify('just words'), [{ kind: 'text', text: 'just words' }]);
    assert.deepEqual(linkify(''), []);
  });
});
