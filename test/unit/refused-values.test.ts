import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NON_FINITE_MESSAGE, NUL_MESSAGE, PROTO_KEY_MESSAGE, ILL_FORMED_MESSAGE, findRefused, illFormedDetail, inspectInput, stringRefusal } from '../../src/protocol/well-formed.js';
import { nestsDeeperThan } from '../../src/protocol/json-depth.js';
import { QUERY_FAULT, parseQuery } from '../../src/http/request-input.js';

describe('findRefused: values no request may carry', () => {
  it('finds a __proto__ key, a non-finite number and a lone surrogate, in document order, with their paths', () => {
    assert.deepEqual(findRefused(JSON.parse('{"a":[{},[],{"x":1}],"b":{"c":[1,2,{"__proto__":1}]}}')), { path: ['b', 'c', 2, '__proto__'], message: PROTO_KEY_MESSAGE });
    assert.deepEqual(findRefused(JSON.parse('{"a":{"n":-1e400},"b":"\\ud800"}')), { path: ['a', 'n'], message: NON_FINITE_MESSAGE });
    assert.deepEqual(findRefused(JSON.parse('{"a":{"n":1},"b":["\\ud800"]}')), { path: ['b', 0], message: ILL_FORMED_MESSAGE });
    assert.deepEqual(findRefused(Infinity), { path: [], message: NON_FINITE_MESSAGE });
  });

  it('finds U+0000 in a value or a key at any depth, on both walks, and shows it in a path as U+FFFD', () => {
    assert.deepEqual(findRefused(JSON.parse('{"a":"ok","b":[1,{"c":"x\\u0000"}]}')), { path: ['b', 1, 'c'], message: NUL_MESSAGE });
    assert.deepEqual(findRefused(JSON.parse('{"m":{"k\\u0000":1}}')), { path: ['m', 'k\u0000'], message: NUL_MESSAGE });
    assert.deepEqual(findRefused('\u0000'), { path: [], message: NUL_MESSAGE });
    const deep = (n: number): unknown => (n === 0 ? 'a\u0000' : [deep(n - 1)]);
    for (const n of [1, 63, 64, 65, 100]) assert.equal(inspectInput(deep(n), Infinity).refused?.message, NUL_MESSAGE, `${n} levels down`);
    assert.equal(illFormedDetail(['m', 'k\u0000'], NUL_MESSAGE).path, 'm.k\ufffd');
    assert.equal(stringRefusal('a\u0000'), NUL_MESSAGE);
    assert.equal(stringRefusal('a\ud800'), ILL_FORMED_MESSAGE);
    assert.equal(stringRefusal('\u0001 tab\t and \ud83d\ude00'), null, 'other control characters are data here (names have their own rule)');
  });

  it('accepts constructor, prototype, finite numbers and surrogate pairs', () => {
    assert.equal(findRefused({ constructor: { prototype: { n: 1.7e308, m: -0 } }, s: '\ud83d\ude00', e: [[], {}], z: null }), null);
  });

  it('has no depth bound and does not recurse (100000 levels)', () => {
    let value: unknown = JSON.parse('{"__proto__":1}');
    for (let i = 0; i < 100_000; i++) value = [value];
    const found = findRefused(value);
    assert.equal(found?.path.length, 100_001);
    assert.equal(found?.message, PROTO_KEY_MESSAGE);
  });
});

describe('parseQuery: strict query strings', () => {
  it('decodes %XX and + and keeps one string per name', () => {
    const query = parseQuery('a=Gr%C3%BC%C3%9Fe+x&b=&c');
    assert.deepEqual({ ...query }, { a: 'Grüße x', b: '', c: '' });
    assert.equal(query[QUERY_FAULT], undefined);
  });

  it('reports a repeated name and ill-formed percent-encoding, naming the parameter', () => {
    assert.equal(parseQuery('a=1&a=2')[QUERY_FAULT]?.path, 'a');
    for (const bad of ['%ED%A0%80', '%FF', '%C0%80', '%E2%82', '%', '%zz']) assert.equal(parseQuery(`q=${bad}`)[QUERY_FAULT]?.path, 'q', bad);
    assert.equal(parseQuery('%FF=1')[QUERY_FAULT]?.path, '%FF');
  });

  it('gives a __proto__ name no prototype to reach', () => {
    const query = parseQuery('__proto__=1');
    assert.equal(Object.getPrototypeOf(query), null);
    assert.equal(query['__proto__'], '1');
  });
});

describe('inspectInput (the per-frame walk)', () => {
  it('judges depth exactly as nestsDeeperThan does, and reports a refused value before the depth', () => {
    const chain = (n: number): unknown => (n === 0 ? 'x' : { a: [chain(n - 1)] });
    const values: unknown[] = ['s', 1, null, [], {}, [[]], { a: {} }, { a: [1, { b: [] }] }, chain(3), chain(20), [[[[[[]]]]]]];
    for (const value of values) {
      for (const max of [0, 1, 2, 3, 5, 10, 40]) {
        assert.equal(inspectInput(value, max).tooDeep, nestsDeeperThan(value, max), `${JSON.stringify(value)} at ${max}`);
      }
    }
    // Around and past the depth the allocation-free first pass recurses into (64): the same answers.
    const deepValues: unknown[] = [chain(31), chain(32), chain(33), chain(40), chain(100)];
    for (const value of deepValues) {
      for (const max of [62, 63, 64, 65, 66, 80, 81, 200, Infinity]) {
        assert.equal(inspectInput(value, max).tooDeep, nestsDeeperThan(value, max), `depth at ${max}`);
      }
    }
    const deepRefusal = (n: number): unknown => (n === 0 ? Number.POSITIVE_INFINITY : [deepRefusal(n - 1)]);
    for (const n of [10, 63, 64, 65, 100]) {
      const { refused } = inspectInput(deepRefusal(n), Infinity);
      assert.equal(refused?.path.length, n, `a refused number ${n} levels down`);
      assert.equal(refused?.message, NON_FINITE_MESSAGE);
    }
    assert.equal(inspectInput({ a: { __proto__: null, b: 1 } }, 10).refused, null, 'a key named by the prototype syntax is no __proto__ key');
    assert.deepEqual(inspectInput(JSON.parse('{"x":[{"__proto__":1}]}'), 10).refused?.path, ['x', 0, '__proto__']);
    const both = inspectInput(JSON.parse('{"a":[[[[[["\\ud800"]]]]]]}'), 2);
    assert.deepEqual(both.refused?.path, ['a', 0, 0, 0, 0, 0, 0]);
    assert.equal(inspectInput({ a: [[[[1]]]] }, 2).refused, null);
  });
});
