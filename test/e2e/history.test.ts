import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Seats, settle, type Seat } from '../helpers/seats.js';
import { RawClient, sleep } from '../helpers/raw-client.js';
import { api, startServer, type TestServer } from '../helpers/server.js';

describe('history', () => {
  let server: TestServer;
  const seats = new Seats(() => server, 'hist');

  before(async () => {
    // Each test writes a long history from one connection, faster than the default per-user message rate and
    // per-connection request rate allow; rate limiting is not what this file is about.
    server = await startServer({
      PARLEY_LIMITS_USER_MESSAGE_RATE_BURST: '1000',
      PARLEY_LIMITS_USER_MESSAGE_RATE_PER_SECOND: '1000',
      PARLEY_LIMITS_CONNECTION_RATE_BURST: '1000',
      PARLEY_LIMITS_CONNECTION_RATE_PER_SECOND: '1000',
    });
  });
  after(async () => {
    seats.closeAll();
    await server.stop();
  });

  const seat = (label: string): Promise<Seat> => seats.seat(label);
  const range = (from: number, to: number): number[] => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
  const seqsOf = (page: { messages: any[] }): number[] => page.messages.map((m) => m.seq);

  /** A group of `owner` holding `count` messages with texts m1..m<count> at seqs 1..count. */
  async function conversationWith(owner: Seat, count: number): Promise<string> {
    const { conversation } = await owner.client.ok('conversation.create', { name: `history ${randomUUID().slice(0, 8)}` });
    await send(owner, conversation.id, 1, count);
    return conversation.id;
  }
  async function send(owner: Seat, conversationId: string, from: number, to: number): Promise<void> {
    for (const i of range(from, to)) {
      const { seq } = await owner.client.ok('message.send', { conversationId, key: `m${i}`, text: `m${i}` });
      assert.equal(seq, i);
    }
  }

  it('returns the newest page, oldest first, with more: true, when no position is given', async () => {
    const alice = await seat('newest');
    const conversationId = await conversationWith(alice, 120);
    const page = await alice.client.ok('history.before', { conversationId, limit: 30 });
    assert.deepEqual(seqsOf(page), range(91, 120));
    assert.deepEqual(page.messages.map((m: any) => m.text), range(91, 120).map((i) => `m${i}`));
    assert.equal(page.more, true);
    const byDefault = await alice.client.ok('history.before', { conversationId });
    assert.deepEqual(seqsOf(byDefault), range(71, 120), 'the default page is 50');
    assert.equal(byDefault.more, true);
  });

  it('walks all 120 messages backwards with beforeSeq, without gap or repeat, ending with more: false', async () => {
    const alice = await seat('walk');
    const conversationId = await conversationWith(alice, 120);
    const pages: number[][] = [];
    let page = await alice.client.ok('history.before', { conversationId, limit: 25 });
    pages.push(seqsOf(page));
    while (page.more) {
      assert.ok(pages.length < 10, 'paging terminates');
      page = await alice.client.ok('history.before', { conversationId, beforeSeq: page.messages[0].seq, limit: 25 });
      pages.push(seqsOf(page));
    }
    assert.deepEqual(pages.map((p) => p.length), [25, 25, 25, 25, 20]);
    for (const p of pages) assert.deepEqual(p, [...p].sort((x, y) => x - y), 'each page is ascending');
    assert.deepEqual(pages.reverse().flat(), range(1, 120));
    const beforeFirst = await alice.client.ok('history.before', { conversationId, beforeSeq: 1 });
    assert.deepEqual(beforeFirst, { messages: [], more: false });
  });

  it('says more: false on the page that reaches seq 1 exactly', async () => {
    const alice = await seat('exact');
    const conversationId = await conversationWith(alice, 40);
    const page = await alice.client.ok('history.before', { conversationId, beforeSeq: 21, limit: 20 });
    assert.deepEqual(seqsOf(page), range(1, 20));
    assert.equal(page.more, false);
    const whole = await alice.client.ok('history.before', { conversationId, limit: 40 });
    assert.deepEqual(seqsOf(whole), range(1, 40));
    assert.equal(whole.more, false);
  });

  it('pages forward with history.after, more: false at the end', async () => {
    const alice = await seat('after');
    const conversationId = await conversationWith(alice, 120);
    const seen: number[] = [];
    let afterSeq = 0;
    for (;;) {
      const page = await alice.client.ok('history.after', { conversationId, afterSeq, limit: 50 });
      seen.push(...seqsOf(page));
      if (!page.more) break;
      afterSeq = page.messages[page.messages.length - 1].seq;
    }
    assert.deepEqual(seen, range(1, 120));
  });

  it('returns only the messages sent before beforeTime', async () => {
    const alice = await seat('time');
    const { conversation } = await alice.client.ok('conversation.create', { name: `time ${randomUUID().slice(0, 8)}` });
    const conversationId = conversation.id;
    await send(alice, conversationId, 1, 5);
    // The cut must lie after message 5's createdAt (stamped before its reply came): wait for the clock to pass it.
    const fifthAckedAt = Date.now();
    while (Date.now() <= fifthAckedAt) await sleep(1);
    const cut = Date.now();
    await send(alice, conversationId, 6, 10);
    const page = await alice.client.ok('history.before', { conversationId, beforeTime: cut });
    assert.deepEqual(seqsOf(page), range(1, 5));
    assert.equal(page.more, false);
    const limited = await alice.client.ok('history.before', { conversationId, beforeTime: cut, limit: 2 });
    assert.deepEqual(seqsOf(limited), [4, 5]);
    assert.equal(limited.more, true);
    const rest = await api(server, alice.user.token, 'GET', `/api/v1/conversations/${conversationId}/messages?beforeTime=${cut}`);
    assert.equal(rest.status, 200);
    assert.deepEqual(seqsOf(rest.body), range(1, 5));
  });

  it('clamps a limit above the maximum page size (100)', async () => {
    const alice = await seat('clamp');
    const conversationId = await conversationWith(alice, 120);
    const backwards = await alice.client.ok('history.before', { conversationId, limit: 500 });
    assert.deepEqual(seqsOf(backwards), range(21, 120));
    assert.equal(backwards.more, true);
    const forwards = await alice.client.ok('history.after', { conversationId, afterSeq: 0, limit: 500 });
    assert.deepEqual(seqsOf(forwards), range(1, 100));
    assert.equal(forwards.more, true);
    const rest = await api(server, alice.user.token, 'GET', `/api/v1/conversations/${conversationId}/messages?limit=500`);
    assert.equal(rest.status, 200);
    assert.deepEqual(seqsOf(rest.body), range(21, 120));
    assert.equal(await alice.client.errorCode('history.before', { conversationId, limit: 501 }), 'INVALID_REQUEST');
  });

  it('serves the same pages over REST: GET /conversations/:id/messages with before, after and limit', async () => {
    const alice = await seat('rest');
    const conversationId = await conversationWith(alice, 120);
    const path = `/api/v1/conversations/${conversationId}/messages`;
    const cases: Array<[string, string, Record<string, unknown>]> = [
      ['', 'history.before', {}],
      ['?limit=10', 'history.before', { limit: 10 }],
      ['?before=61&limit=20', 'history.before', { beforeSeq: 61, limit: 20 }],
      ['?before=5&limit=20', 'history.before', { beforeSeq: 5, limit: 20 }],
      ['?after=0&limit=30', 'history.after', { afterSeq: 0, limit: 30 }],
      ['?after=100&limit=30', 'history.after', { afterSeq: 100, limit: 30 }],
      ['?after=110', 'history.after', { afterSeq: 110 }],
    ];
    for (const [query, type, data] of cases) {
      const rest = await api(server, alice.user.token, 'GET', `${path}${query}`);
      assert.equal(rest.status, 200, `${query}: ${JSON.stringify(rest.body)}`);
      const ws = await alice.client.ok(type, { conversationId, ...data });
      assert.deepEqual(rest.body, ws, `GET ${query} equals ${type}`);
    }
    const before = await api(server, alice.user.token, 'GET', `${path}?before=61&limit=20`);
    assert.deepEqual(seqsOf(before.body), range(41, 60));
    assert.equal(before.body.more, true);
    const afterEnd = await api(server, alice.user.token, 'GET', `${path}?after=110`);
    assert.deepEqual(seqsOf(afterEnd.body), range(111, 120));
    assert.equal(afterEnd.body.more, false);
    const bad = await api(server, alice.user.token, 'GET', `${path}?before=abc`);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'INVALID_REQUEST');
  });

  it('refuses history to a non-member: NOT_MEMBER over WebSocket, 403 NOT_MEMBER over REST', async () => {
    const alice = await seat('owner');
    const mallory = await seat('outsider');
    const conversationId = await conversationWith(alice, 3);
    assert.equal(await mallory.client.errorCode('history.before', { conversationId }), 'NOT_MEMBER');
    assert.equal(await mallory.client.errorCode('history.before', { conversationId, beforeTime: Date.now() }), 'NOT_MEMBER');
    assert.equal(await mallory.client.errorCode('history.after', { conversationId, afterSeq: 0 }), 'NOT_MEMBER');
    for (const query of ['', '?before=3', '?after=0', `?beforeTime=${Date.now()}`]) {
      const rest = await api(server, mallory.user.token, 'GET', `/api/v1/conversations/${conversationId}/messages${query}`);
      assert.equal(rest.status, 403, query);
      assert.equal(rest.body.error.code, 'NOT_MEMBER');
    }
    const missing = await api(server, mallory.user.token, 'GET', '/api/v1/conversations/no-such-conversation/messages');
    assert.equal(missing.status, 403, 'a missing conversation looks the same as a foreign one');
    assert.equal(missing.body.error.code, 'NOT_MEMBER');
    const anonymous = await api(server, null, 'GET', `/api/v1/conversations/${conversationId}/messages`);
    assert.equal(anonymous.status, 401);
  });
});
