import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { requestSchemas } from '../../src/protocol/requests.js';

/**
 * The gateway takes a validated request's data as its target (src/gateway/dispatcher.ts, targetOf): that holds only
 * while every schema's `conversationId` and `to`, when it has them, are strings.
 */
describe('request targets', () => {
  it('every request schema that names conversationId or to makes it a string', () => {
    let named = 0;
    for (const [type, schema] of Object.entries(requestSchemas)) {
      const shape = (schema as unknown as { shape: Record<string, { _zod: { def: { type: string; innerType?: unknown } } }> }).shape;
      assert.ok(shape, `${type} is an object schema`);
      for (const key of ['conversationId', 'to']) {
        let field = shape[key];
        if (field === undefined) continue;
        named++;
        while (field._zod.def.type === 'optional') field = field._zod.def.innerType as typeof field;
        assert.equal(field._zod.def.type, 'string', `${type}.${key}`);
      }
    }
    assert.ok(named > 10, `${named} fields checked`);
  });
});
