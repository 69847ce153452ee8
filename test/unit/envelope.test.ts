import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeEnvelope, encodeControl, encodeFrame } from '../../src/bus/envelope.js';
import { conversationTopic, userTopic } from '../../src/bus/bus.js';
import { isValidId } from '../../src/protocol/ids.js';

const text = '{"event":"typing","data":{"conversationId":"c1","userId":"u","typing":true,"expiresInMs":5000,"é":"😀"}}';
const frame = Buffer.from(text);

describe('bus envelope', () => {
  it('carries any user id whole, whatever characters it holds (separators, digits, newlines, braces)', () => {
    const ids = ['u1', 'auth0|5f7c', 'ann.lee+chat@example.com', 'tenant:42', 'a\nb', '12:34', '!3:x', '{"a":1}', '#ban\n', ':', 'é😀', 'x'.repeat(128)];
    for (const id of ids) {
      assert.deepEqual(decodeEnvelope(encodeFrame(text, id)), { kind: 'frame', frame, exceptUser: id, exceptConnection: null }, JSON.stringify(id));
      // The layout, byte for byte: `!<UTF-8 length>:<id><frame>`.
      assert.deepEqual(encodeFrame(text, id), Buffer.from(`!${Buffer.byteLength(id)}:${id}${text}`), JSON.stringify(id));
      assert.deepEqual(encodeFrame(text, null, id), Buffer.from(`~${Buffer.byteLength(id)}:${id}${text}`), JSON.stringify(id));
    }
    // A prefix of many digits (an id over 1,000 bytes) and a length prefix that is not all digits (read as a frame).
    const long = 'é'.repeat(600);
    assert.deepEqual(decodeEnvelope(encodeFrame(text, long)), { kind: 'frame', frame, exceptUser: long, exceptConnection: null });
    const odd = Buffer.from(`!1x:u${text}`);
    assert.deepEqual(decodeEnvelope(odd), { kind: 'frame', frame: odd, exceptUser: null, exceptConnection: null });
    assert.deepEqual(decodeEnvelope(encodeFrame(text)), { kind: 'frame', frame, exceptUser: null, exceptConnection: null });
    assert.deepEqual(decodeEnvelope(encodeControl('ban')), { kind: 'control', command: 'ban' });
  });

  it('carries an excepted connection id whole, apart from an excepted user', () => {
    for (const id of ['3f2a9c1e-8b7d-4c6a-9e1f-0a2b3c4d5e6f', 'a\nb', '12:34', '~3:x', '!1:y', '{"a":1}', 'é😀']) {
      assert.deepEqual(decodeEnvelope(encodeFrame(text, null, id)), { kind: 'frame', frame, exceptUser: null, exceptConnection: id }, JSON.stringify(id));
    }
    // One exception at most: the user's wins (an event to the others of a user excludes that user's every connection).
    assert.deepEqual(decodeEnvelope(encodeFrame(text, 'u1', 'c1')), { kind: 'frame', frame, exceptUser: 'u1', exceptConnection: null });
  });

  it('is bytes: the frame is the UTF-8 of the event text, a view of the payload (no copy)', () => {
    const payload = encodeFrame(text, 'u1');
    const envelope = decodeEnvelope(payload);
    assert.ok(envelope.kind === 'frame' && envelope.frame.buffer === payload.buffer, 'a view of the same memory');
    assert.equal(envelope.kind === 'frame' ? envelope.frame.toString() : null, text);
    assert.deepEqual(encodeFrame(text), Buffer.from(text), 'no prefix, no exception: the event text itself');
  });

  it('names topics so that the id is exactly what follows the two-character prefix', () => {
    for (const id of ['c.1', 'u.x', 'a\nb', 'tenant:42']) {
      assert.equal(conversationTopic(id).slice(2), id);
      assert.equal(userTopic(id).slice(2), id);
      assert.notEqual(conversationTopic(id), userTopic(id));
    }
  });
});

describe('id alphabet', () => {
  it('accepts UUIDs, e-mail addresses and common identity-provider subjects', () => {
    for (const id of ['3f2a9c1e-8b7d-4c6a-9e1f-0a2b3c4d5e6f', 'ann.lee+chat@example.com', 'auth0|5f7c8ec7c33c6c004bbafe82', 'google-oauth2|104334', 'tenant:42', 'AbC_-=~.', 'x'.repeat(128)]) {
      assert.ok(isValidId(id), id);
    }
  });

  it('refuses empty, over-long, whitespace, control, URL-structural and comma-bearing ids', () => {
    for (const id of ['', 'x'.repeat(129), 'a b', 'a\nb', 'a\tb', 'a/b', 'a?b', 'a#b', 'a%20', 'a,b', 'a"b', "a'b", 'a\\b', 'é', '\u0000', 42, null]) {
      assert.equal(isValidId(id), false, JSON.stringify(id));
    }
  });
});
