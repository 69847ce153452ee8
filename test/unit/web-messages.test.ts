import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ParleyClientError } from '../../packages/sdk/src/index.js';
import { isStalePresence, messageOf } from '../../packages/web/src/chat-store.js';

describe('messageOf (what the web client tells the user of a failure)', () => {
  it('names what each field must be when the input was invalid', () => {
    const err = new ParleyClientError('INVALID_REQUEST', 'the request does not match its schema', {
      details: [{ path: 'username', message: 'a username may contain only letters, combining marks, digits, "_", "." and "-"' }],
    });
    assert.equal(messageOf(err), 'username: a username may contain only letters, combining marks, digits, "_", "." and "-"');
  });

  it('keeps the server\'s message otherwise', () => {
    assert.equal(messageOf(new ParleyClientError('INVALID_CREDENTIALS', 'Wrong username or password')), 'Wrong username or password');
    assert.equal(messageOf(new ParleyClientError('WEAK_PASSWORD', 'Too easy to guess', { details: { reason: 'guessable' } })), 'Too easy to guess');
    assert.equal(messageOf('plain'), 'plain');
  });
});

describe('isStalePresence (presence changes from several instances, out of order)', () => {
  it('ignores a change older than the one shown, and takes a newer or equal one', () => {
    assert.equal(isStalePresence(undefined, 1000), false, 'nothing shown yet');
    assert.equal(isStalePresence(2000, 1000), true, 'an offline from before the online shown');
    assert.equal(isStalePresence(2000, 2000), false);
    assert.equal(isStalePresence(2000, 3000), false);
    assert.equal(isStalePresence(2000, null), true, 'never connected is older than any change');
  });
});
