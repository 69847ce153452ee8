/**
 * The close code of a failed connection attempt, for every error the authentication path can raise: only a refusal of
 * the credentials says "do not reconnect"; every temporary error, and an unexpected one, says "reconnect with backoff".
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { closeCatalogue, errorCatalogue, errorCodes, shouldReconnect } from '@parley/protocol';
import { refusalFor } from '../../src/gateway/gateway.js';
import { ParleyError } from '../../src/protocol/errors.js';

describe('the close code of a refused connection attempt', () => {
  it('reconnects after every temporary error and refuses for good only on permanent ones', () => {
    for (const code of errorCodes) {
      const close = closeCatalogue[refusalFor(new ParleyError(code))];
      if (code === 'BANNED') assert.equal(close.code, closeCatalogue.BANNED.code);
      else assert.equal(shouldReconnect(close.code), errorCatalogue[code].temporary, `${code} closes ${close.code}`);
    }
  });

  it('reconnects after an error that is not a ParleyError (a fault, not a verdict on the token)', () => {
    assert.equal(refusalFor(new TypeError('x is undefined')), 'UNAVAILABLE');
    assert.equal(refusalFor('a string thrown'), 'UNAVAILABLE');
  });
});
