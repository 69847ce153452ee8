import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RawClient } from '../helpers/raw-client.js';
import { register, startServer, type TestServer } from '../helpers/server.js';

function assertError(reply: any, code: string, id: string | number | null): void {
  assert.equal(reply.id, id, `id of ${JSON.stringify(reply)}`);
  assert.equal(reply.result, undefined);
  assert.equal(reply.error?.code, code, JSON.stringify(reply));
  assert.equal(typeof reply.error.message, 'string');
  assert.equal(reply.error.temporary, false);
}

describe('bad input', () => {
  let server: TestServer;
  let alice: { id: string; token: string };
  let bob: { id: string; token: string };
  let conversationId: string;
  let historyBefore: any[];
  before(async () => {
    server = await startServer({ PARLEY_LIMITS_MAX_FRAME_BYTES: '2048' });
    alice = await register(server, 'bad-alice');
    bob = await register(server, 'bad-bob');
    const a = await RawClient.connect(server.wsUrl, alice.token);
    const b = await RawClient.connect(server.wsUrl, bob.token);
    conversationId = (await a.ok('conversation.create', { name: 'bad input room' })).conversation.id;
    await b.ok('conversation.join', { conversationId });
    for (let i = 1; i <= 3; i++) await a.ok('message.send', { conversationId, key: `before-${i}`, text: `before ${i}` });
    historyBefore = (await a.ok('history.after', { conversationId, afterSeq: 0 })).messages;
    assert.equal(historyBefore.length, 3);
    a.close();
    b.close();
  });
  after(async () => {
    await server.stop();
  });

  it('answers malformed JSON with BAD_FRAME and id null, and keeps the connection', async () => {
    const client = await RawClient.connect(server.wsUrl, alice.token);
    for (const frame of ['{"id":1,"type":', 'not json', '{id: 1, type: "ping"}', '']) {
      assertError(await client.rawReply(frame), 'BAD_FRAME', null);
    }
    assert.deepEqual(await client.ok('ping'), {});
    assert.equal(client.closed, null);
    client.close();
  });

  it('answers JSON that is not an object (array, number, string, null, boolean) with BAD_FRAME', async () => {
    const client = await RawClient.connect(server.wsUrl, alice.token);
    for (const frame of ['[{"id":1,"type":"ping"}]', '42', '"ping"', 'null', 'true']) {
      assertError(await client.rawReply(frame), 'BAD_FRAME', null);
    }
    assert.deepEqual(await client.ok('ping'), {});
    client.close();
  });

  it('answers a request without a usable id with BAD_FRAME', async () => {
    const client = await RawClient.connect(server.wsUrl, alice.token);
    const frames = [
      { type: 'ping' },
      { id: null, type: 'ping' },
      { id: {}, type: 'ping' },
      { id: '', type: 'ping' },
      { id: 1.5, type: 'ping' },
      { id: 'x'.repeat(65), type: 'ping' },
    ];
    for (const frame of frames) assertError(await client.rawReply(JSON.stringify(frame)), 'BAD_FRAME', null);
    // An integer beyond 2^53 cannot be echoed as sent (JSON.parse rounds it): it is no usable id either.
    for (const id of ['123456789012345678901234567890', '9007199254740993', '-9007199254740993']) {
      assertError(await client.rawReply(`{"id":${id},"type":"ping"}`), 'BAD_FRAME', null);
    }
    assert.deepEqual((await client.rawReply('{"id":9007199254740991,"type":"ping"}')).result, {}, 'the largest safe integer is an id');
    client.close();
  });

  it('answers an unknown type with UNKNOWN_TYPE, echoing the id', async () => {
    const client = await RawClient.connect(server.wsUrl, alice.token);
    assertError(await client.rawReply(JSON.stringify({ id: 'req-7', type: 'no.such.thing' })), 'UNKNOWN_TYPE', 'req-7');
    assertError(await client.rawReply(JSON.stringify({ id: 8, type: 'message.sned', data: {} })), 'UNKNOWN_TYPE', 8);
    for (const type of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      assertError(await client.rawReply(JSON.stringify({ id: `proto-${type}`, type })), 'UNKNOWN_TYPE', `proto-${type}`);
    }
    client.close();
  });

  it('answers missing or wrong-typed fields with INVALID_REQUEST and details naming the field', async () => {
    const client = await RawClient.connect(server.wsUrl, alice.token);
    const cases: Array<{ type: string; data: unknown; path: string }> = [
      { type: 'message.send', data: { conversationId, key: 'k-missing' }, path: 'text' },
      { type: 'message.send', data: { conversationId, text: 'no key' }, path: 'key' },
      { type: 'message.send', data: { conversationId, key: 'k-typed', text: 42 }, path: 'text' },
      { type: 'history.after', data: { conversationId, afterSeq: 'zero' }, path: 'afterSeq' },
      { type: 'history.after', data: { conversationId, afterSeq: -1 }, path: 'afterSeq' },
      { type: 'history.after', data: { conversationId: 123, afterSeq: 0 }, path: 'conversationId' },
      { type: 'typing', data: { conversationId, typing: 'yes' }, path: 'typing' },
      { type: 'conversation.create', data: { name: '' }, path: 'name' },
      { type: 'read.mark', data: { conversationId }, path: 'seq' },
    ];
    for (const { type, data, path } of cases) {
      const reply = await client.request(type, data);
      assertError(reply, 'INVALID_REQUEST', reply.id);
      assert.ok(Array.isArray(reply.error.details), `${type}: details is a list`);
      assert.ok(reply.error.details.some((d: any) => d.path === path && typeof d.message === 'string'), `${type}: details name ${path}: ${JSON.stringify(reply.error.details)}`);
    }
    const neither = await client.request('message.send', { key: 'k-neither', text: 'to nobody' });
    assertError(neither, 'INVALID_REQUEST', neither.id);
    const both = await client.request('message.send', { conversationId, to: bob.id, key: 'k-both', text: 'to both' });
    assertError(both, 'INVALID_REQUEST', both.id);
    client.close();
  });

  it('answers extra fields, in data or in the envelope, with INVALID_REQUEST', async () => {
    const client = await RawClient.connect(server.wsUrl, alice.token);
    const ping = await client.request('ping', { extra: true });
    assertError(ping, 'INVALID_REQUEST', ping.id);
    const send = await client.request('message.send', { conversationId, key: 'k-extra', text: 'extra', seq: 99 });
    assertError(send, 'INVALID_REQUEST', send.id);
    assert.ok(send.error.details.length > 0);
    assertError(await client.rawReply(JSON.stringify({ id: 'env-1', type: 'ping', data: {}, extra: 1 })), 'INVALID_REQUEST', 'env-1');
    assertError(await client.rawReply(JSON.stringify({ id: 'env-2', type: 'ping', data: [1, 2] })), 'INVALID_REQUEST', 'env-2');
    assertError(await client.rawReply(JSON.stringify({ id: 'env-3', type: 'ping', data: 'x' })), 'INVALID_REQUEST', 'env-3');
    assertError(await client.rawReply(JSON.stringify({ id: 'env-4' })), 'INVALID_REQUEST', 'env-4');
    client.close();
  });

  it('answers a binary frame with BAD_FRAME, even if it holds a valid request', async () => {
    const client = await RawClient.connect(server.wsUrl, alice.token);
    assertError(await client.rawReply(Buffer.from(JSON.stringify({ id: 1, type: 'ping' }))), 'BAD_FRAME', null);
    assertError(await client.rawReply(Buffer.from([0, 1, 2, 255])), 'BAD_FRAME', null);
    assert.deepEqual(await client.ok('ping'), {});
    client.close();
  });

  it('closes a connection that sends a frame over maxFrameBytes with 1009, and only that one', async () => {
    const big = await RawClient.connect(server.wsUrl, alice.token);
    const other = await RawClient.connect(server.wsUrl, alice.token);
    assert.equal((await big.waitFor('welcome')).limits.maxFrameBytes, 2048);
    big.sendRaw(JSON.stringify({ id: 1, type: 'message.send', data: { conversationId, key: 'too-big', text: 'x'.repeat(3000) } }));
    assert.equal((await big.waitClose(3000)).code, 1009);
    assert.deepEqual(await other.ok('ping'), {});
    other.close();
  });

  it('after all of that, still serves other clients with the data intact', async () => {
    const a = await RawClient.connect(server.wsUrl, alice.token);
    const b = await RawClient.connect(server.wsUrl, bob.token);
    const { messages } = await b.ok('history.after', { conversationId, afterSeq: 0 });
    // Read by bob: alice's keys are hers alone.
    const withoutKey = (list: any[]) => list.map(({ key: _key, ...m }) => m);
    assert.deepEqual(withoutKey(messages), withoutKey(historyBefore), 'no refused request stored or changed anything');
    const { conversation } = await b.ok('conversation.get', { conversationId });
    assert.equal(conversation.lastSeq, 3);
    const message = await a.ok('message.send', { conversationId, key: 'after-1', text: 'still here' });
    assert.equal(message.seq, 4);
    assert.equal((await b.waitFor('message.new', (m) => m.id === message.id)).text, 'still here');
    a.close();
    b.close();
  });
});
