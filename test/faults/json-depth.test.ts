import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RawClient } from '../helpers/raw-client.js';
import { api, register, startServer, type TestServer } from '../helpers/server.js';

/** `{"a": {"a": … leaf …}}`, `levels` objects deep. */
function nested(levels: number, leaf: unknown = 1): unknown {
  let value: unknown = leaf;
  for (let i = 0; i < levels; i++) value = { a: value };
  return value;
}
/** The same as raw JSON text, for depths where building objects would be the test's own problem. */
const nestedArrays = (levels: number): string => '['.repeat(levels) + ']'.repeat(levels);

describe('bad input: deeply nested JSON', () => {
  let server: TestServer;
  let token: string;
  let client: RawClient;
  let conversationId: string;
  before(async () => {
    server = await startServer();
    token = (await register(server, 'deep-alice')).token;
    client = await RawClient.connect(server.wsUrl, token);
    conversationId = (await client.ok('conversation.create', { name: 'deep' })).conversation.id;
  });
  after(async () => {
    client.close();
    await server.stop();
  });

  const failures = () => server.logs.filter((l) => l.msg === 'request failed' || l.level === 50 || l.level === 60);

  it('answers a 5000-level meta in a 10 KB frame with a permanent INVALID_REQUEST, stores nothing and logs no error', async () => {
    const frame = `{"id": "deep", "type": "message.send", "data": {"conversationId": "${conversationId}", "key": "k", "text": "x", "meta": ${nestedArrays(5000)}}}`;
    assert.ok(frame.length > 10_000 && frame.length < 64 * 1024);
    client.sendRaw(frame);
    await client.ok('ping');
    const reply = client.frames.find((f) => f.id === 'deep');
    assert.equal(reply?.error?.code, 'INVALID_REQUEST', JSON.stringify(reply));
    assert.equal(reply.error.temporary, false);
    assert.ok(Array.isArray(reply.error.details));
    assert.equal((await client.ok('history.after', { conversationId, afterSeq: 0 })).messages.length, 0);
    assert.deepEqual(failures(), []);
    assert.equal(client.closed, null);
  });

  it('refuses meta one level past the limit on send and edit, and accepts it at the limit', async () => {
    const atLimit = nested(32);
    const message = await client.ok('message.send', { conversationId, key: 'ok', text: 'x', meta: atLimit });
    assert.deepEqual((await client.ok('history.after', { conversationId, afterSeq: 0 })).messages[0].meta, atLimit);
    const send = await client.request('message.send', { conversationId, key: 'deep2', text: 'x', meta: nested(33) });
    assert.equal(send.error?.code, 'INVALID_REQUEST');
    const edit = await client.request('message.edit', { conversationId, seq: message.seq, text: 'y', meta: [nested(40)] });
    assert.equal(edit.error?.code, 'INVALID_REQUEST');
    assert.deepEqual((await client.ok('history.after', { conversationId, afterSeq: 0 })).messages.map((m: any) => m.text), ['x']);
  });

  it('answers a deep frame without a usable id with BAD_FRAME, deep data of any request with INVALID_REQUEST', async () => {
    client.sendRaw(nestedArrays(20_000));
    const badFrame = await client.request('ping').then(() => client.frames.find((f) => f.id === null && f.error));
    assert.equal(badFrame?.error?.code, 'BAD_FRAME');
    const join = await client.request('conversation.join', { conversationId, extra: nested(3000) });
    assert.equal(join.error?.code, 'INVALID_REQUEST');
    assert.deepEqual(failures(), []);
  });

  it('answers a deep REST body with 400 INVALID_REQUEST, on every route', async () => {
    for (const [method, path] of [['POST', '/api/v1/conversations'], ['POST', '/api/v1/sessions'], ['POST', '/api/v1/accounts'], ['POST', `/api/v1/conversations/${conversationId}/read`]]) {
      const reply = await api(server, token, method, path, { name: 'x', deep: nested(3000) });
      assert.equal(reply.status, 400, `${method} ${path}: ${JSON.stringify(reply.body)}`);
      assert.equal(reply.body.error.code, 'INVALID_REQUEST');
      assert.equal(reply.body.error.temporary, false);
    }
    assert.deepEqual(failures(), []);
  });

  it('never answers INTERNAL to hostile values: prototype keys, huge and odd numbers, wide objects', async () => {
    const hostile: Array<[string, unknown]> = [
      ['message.send', { conversationId, key: 'proto', text: 'x', meta: JSON.parse('{"__proto__": {"admin": true}, "constructor": {"prototype": 1}}') }],
      ['message.send', { conversationId, key: 'wide', text: 'x', meta: Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`k${i}`, i])) }],
      ['message.send', { conversationId, key: 'big', text: 'x', meta: { n: 1e308, m: -0, s: Number.MAX_SAFE_INTEGER + 2 } }],
      ['history.after', { conversationId, afterSeq: 1e308 }],
      ['history.after', { conversationId, afterSeq: -1 }],
      ['history.before', { conversationId, beforeTime: 1e308 }],
      ['history.before', { conversationId, limit: 0.5 }],
      ['read.mark', { conversationId, seq: Number.MAX_SAFE_INTEGER }],
      ['conversation.search', { query: '\u0000%_*"()' }],
      ['sync', { conversations: Array.from({ length: 50 }, () => ({ conversationId, afterSeq: 0 })) }],
    ];
    for (const [type, data] of hostile) {
      const reply = await client.request(type, data);
      assert.notEqual(reply.error?.code, 'INTERNAL', `${type} ${JSON.stringify(data).slice(0, 80)}: ${JSON.stringify(reply.error)}`);
    }
    // A key "__proto__" is refused wherever it is (docs/protocol.md "Conventions"); "constructor" is data like any other.
    const refused = await client.request('message.send', { conversationId, key: 'proto-only', text: 'x', meta: JSON.parse('{"__proto__": {"admin": true}}') });
    assert.equal(refused.error?.code, 'INVALID_REQUEST');
    assert.equal(refused.error.details[0].path, 'meta.__proto__');
    await client.ok('message.send', { conversationId, key: 'ctor', text: 'x', meta: { constructor: { prototype: 1 } } });
    const { messages } = await client.ok('history.before', { conversationId, limit: 100 });
    assert.ok(!messages.some((m: any) => m.key === 'proto' || m.key === 'proto-only'), 'a message with a __proto__ key was stored');
    const ctor = messages.find((m: any) => m.key === 'ctor');
    assert.deepEqual(ctor?.meta, { constructor: { prototype: 1 } });
    assert.deepEqual(failures(), []);
  });
});
