/**
 * Catch-up against a real server (issue 8, sections 1 and 2): every reply that can grow stays within the reply byte
 * budget whatever the text, a reading client is never closed as a slow consumer for one large turn, `sync` returns every
 * change (edits, deletes, read cursors, members, renames) since the client's rev, and a retried send is published again.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { RawClient } from '../helpers/raw-client.js';
import { Seats, settle, type Seat } from '../helpers/seats.js';
import { api, startServer, type TestServer } from '../helpers/server.js';

const FAST = {
  PARLEY_LIMITS_USER_MESSAGE_RATE_PER_SECOND: '100000',
  PARLEY_LIMITS_USER_MESSAGE_RATE_BURST: '100000',
  PARLEY_LIMITS_CONNECTION_RATE_PER_SECOND: '100000',
  PARLEY_LIMITS_CONNECTION_RATE_BURST: '100000',
};
/** The default reply budget (limits.maxReplyBytes) and slow-consumer level (limits.maxOutgoingBytes). */
const REPLY_BYTES = 256 * 1024;

/** Records the byte size of every frame a client receives, and its close. */
function measure(client: RawClient): { sizes: number[] } {
  const sizes: number[] = [];
  client.ws.on('message', (data: Buffer) => sizes.push(data.length));
  return { sizes };
}

/** Sends `count` messages of `text` to a conversation, 50 in flight at a time. */
async function fill(seat: Seat, conversationId: string, count: number, text: (i: number) => string): Promise<void> {
  for (let start = 0; start < count; start += 50) {
    const batch = Array.from({ length: Math.min(50, count - start) }, (_, j) => start + j);
    await Promise.all(batch.map((i) => seat.client.ok('message.send', { conversationId, key: `fill-${i}`, text: text(i) })));
  }
}

/**
 * Runs the documented catch-up as a client would: `sync` from the given positions, then `history.after` while `more`,
 * and `sync` again from the returned rev while `changesMore`. Returns every message received per conversation.
 */
async function catchUp(client: RawClient, positions: Array<{ conversationId: string; afterSeq: number }>): Promise<Map<string, number[]>> {
  const got = new Map<string, number[]>(positions.map((p) => [p.conversationId, []]));
  const reply = await client.ok('sync', { conversations: positions });
  for (const c of reply.conversations) {
    const seqs = got.get(c.conversationId)!;
    seqs.push(...(c.messages ?? []).map((m: any) => m.seq));
    let more = c.more;
    for (let pages = 0; more && pages < 1000; pages++) {
      const page = await client.ok('history.after', { conversationId: c.conversationId, afterSeq: seqs.at(-1) ?? positions.find((p) => p.conversationId === c.conversationId)!.afterSeq });
      assert.ok(page.messages.length > 0, 'a page with more: true holds at least one message');
      seqs.push(...page.messages.map((m: any) => m.seq));
      more = page.more;
    }
  }
  return got;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('catch-up: every reply fits what a reading client may receive', () => {
  let server: TestServer;
  const seats = new Seats(() => server, 'budget');
  before(async () => {
    server = await startServer(FAST);
  });
  afterEach(() => seats.closeAll());
  after(async () => {
    await server.stop();
  });

  async function groupsWithBacklog(reader: Seat, groups: number, perGroup: number, text: (i: number) => string): Promise<string[]> {
    const writer = await seats.seat('writer');
    const ids: string[] = [];
    for (let g = 0; g < groups; g++) ids.push(await seats.publicGroup(writer, [reader]));
    for (const id of ids) await fill(writer, id, perGroup, text);
    return ids;
  }

  for (const { name, groups, perGroup, text } of [
    { name: '3 groups of 100 unread ~4 KB messages', groups: 3, perGroup: 100, text: (i: number) => `${i} `.padEnd(4000, 'x') },
    { name: '12 busy groups of 100 ordinary 840-byte messages', groups: 12, perGroup: 100, text: (i: number) => `${i} `.padEnd(840, 'y') },
  ]) {
    it(`a member of ${name} reconnects, syncs and pages everything without being closed`, async () => {
      const reader = await seats.seat('reader');
      const ids = await groupsWithBacklog(reader, groups, perGroup, text);
      reader.client.close();
      const again = await seats.connect(reader.user);
      const { sizes } = measure(again);
      const got = await catchUp(again, ids.map((conversationId) => ({ conversationId, afterSeq: 0 })));
      for (const id of ids) assert.deepEqual(got.get(id), range(1, perGroup), `every message of ${id}, once, in order`);
      await settle(again);
      assert.equal(again.closed, null, 'still connected');
      assert.ok(Math.max(...sizes) <= REPLY_BYTES + 64 * 1024, `largest frame ${Math.max(...sizes)} B stays near the reply budget`);
    });
  }

  it('pages a group where one member posted 50 messages of 4,096 characters that JSON-escape to 6 bytes each', async () => {
    const reader = await seats.seat('reader');
    const writer = await seats.seat('writer');
    const conversationId = await seats.publicGroup(writer, [reader]);
    // C0 controls become \u00XX (6 bytes); if the server refuses them in text, '"' (2 bytes) is the worst left.
    const probe = await writer.client.request('message.send', { conversationId, key: 'probe', text: '\u0001' });
    const unit = probe.error ? '"' : '\u0001';
    const base = probe.error ? 0 : 1;
    await fill(writer, conversationId, 50, () => unit.repeat(4096));
    const { sizes } = measure(reader.client);

    const forward = await catchUp(reader.client, [{ conversationId, afterSeq: 0 }]);
    assert.deepEqual(forward.get(conversationId), range(1, 50 + base));
    // Backwards too, and with the largest limit a request may name.
    const seen: number[] = [];
    let before: number | undefined;
    for (let pages = 0; pages < 100; pages++) {
      const page = await reader.client.ok('history.before', { conversationId, limit: 500, ...(before === undefined ? {} : { beforeSeq: before }) });
      assert.ok(page.messages.length > 0);
      seen.unshift(...page.messages.map((m: any) => m.seq));
      before = page.messages[0].seq;
      if (!page.more) break;
    }
    assert.deepEqual(seen, range(1, 50 + base));
    const single = await reader.client.ok('history.after', { conversationId, afterSeq: 0, limit: 500 });
    assert.equal(single.more, true, 'the byte budget says more before the count does');
    assert.ok(single.messages.length < 50);
    await settle(reader.client);
    assert.equal(reader.client.closed, null);
    assert.ok(Math.max(...sizes) <= REPLY_BYTES + 64 * 1024, `largest frame ${Math.max(...sizes)} B`);
  });

  it('bounds a sync of many conversations in bytes as a whole: later conversations say more and are paged', async () => {
    const reader = await seats.seat('reader');
    const ids = await groupsWithBacklog(reader, 5, 40, (i) => `${i} `.padEnd(4000, 'z'));
    const reply = await reader.client.request('sync', { conversations: ids.map((conversationId) => ({ conversationId, afterSeq: 0 })), limit: 100 });
    const bytes = Buffer.byteLength(JSON.stringify(reply));
    assert.ok(bytes <= REPLY_BYTES + 16 * 1024, `sync reply of ${bytes} B`);
    const entries = reply.result.conversations;
    assert.equal(entries.length, 5);
    assert.ok(entries.some((c: any) => c.more && (c.messages?.length ?? 0) < 40), 'some conversation was cut by the budget');
    for (const c of entries) assert.equal(c.lastSeq, 40);
  });
});

describe('slow consumer: a backlog that does not drain, not one large turn', () => {
  let server: TestServer;
  const seats = new Seats(() => server, 'slow');
  before(async () => {
    // A small backlog level (64 KiB, so the reply budget is 32 KiB) and a short window.
    server = await startServer({ ...FAST, PARLEY_LIMITS_MAX_OUTGOING_BYTES: '65536', PARLEY_LIMITS_SLOW_CONSUMER_MS: '300' });
  });
  afterEach(() => seats.closeAll());
  after(async () => {
    await server.stop();
  });

  it('a reading client that pipelines 30 history requests (far above the level in one turn) gets every reply', async () => {
    const writer = await seats.seat('writer');
    const reader = await seats.seat('reader');
    const conversationId = await seats.publicGroup(writer, [reader]);
    await fill(writer, conversationId, 40, (i) => `${i} `.padEnd(4000, 'p'));
    const { sizes } = measure(reader.client);
    const replies = await Promise.all(range(1, 30).map(() => reader.client.ok('history.after', { conversationId, afterSeq: 0, limit: 100 })));
    for (const page of replies) {
      assert.equal(page.more, true);
      assert.ok(page.messages.length >= 1);
    }
    assert.ok(sizes.reduce((a, b) => a + b, 0) > 65536 * 4, 'the replies were far above the backlog level together');
    assert.ok(Math.max(...sizes) <= 32 * 1024 + 8 * 1024, 'each within the budget derived from maxOutgoingBytes');
    await settle(reader.client);
    assert.equal(reader.client.closed, null);
  });

  it('a client that stops reading is closed (4002) once its backlog stops shrinking', async () => {
    const writer = await seats.seat('writer');
    const stalled = await seats.seat('stalled');
    const conversationId = await seats.publicGroup(writer, [stalled]);
    const socket = (stalled.client.ws as unknown as { _socket: import('node:net').Socket })._socket;
    socket.pause();
    const text = 'q'.repeat(4000);
    // Fill until the server gives up on the stalled reader; bounded in count and time.
    const deadline = Date.now() + 20_000;
    let closed = false;
    for (let i = 0; i < 5000 && Date.now() < deadline && !closed; i += 20) {
      await Promise.all(range(i, i + 19).map((k) => writer.client.ok('message.send', { conversationId, key: `s-${k}`, text })));
      const res = await fetch(`${server.url}/metrics`);
      closed = /parley_closes_total\{reason="SLOW_CONSUMER"\} [1-9]/.test(await res.text());
    }
    assert.ok(closed, 'the stalled reader was closed as a slow consumer');
    socket.resume();
    const { code } = await stalled.client.waitClose(10_000);
    assert.ok(code === 4002 || code === 1006, `closed with ${code}`);
    assert.equal(writer.client.closed, null, 'the writer is served on');
  });
});

describe('catch-up of changes (rev)', () => {
  let server: TestServer;
  const seats = new Seats(() => server, 'rev');
  before(async () => {
    server = await startServer(FAST);
  });
  afterEach(() => seats.closeAll());
  after(async () => {
    await server.stop();
  });

  it('B had seq 1-2 and went offline; A edits 1 and deletes 2: B\'s sync from seq 2 returns the edit and the delete', async () => {
    const a = await seats.seat('a');
    const b = await seats.seat('b');
    const conversationId = await seats.publicGroup(a, [b]);
    await a.client.ok('message.send', { conversationId, key: 'k1', text: 'one' });
    await a.client.ok('message.send', { conversationId, key: 'k2', text: 'two' });
    const { conversation } = await b.client.ok('conversation.get', { conversationId });
    assert.equal(conversation.lastSeq, 2);
    const rev = conversation.rev;
    b.client.close();

    await a.client.ok('message.edit', { conversationId, seq: 1, text: 'one, edited' });
    await a.client.ok('message.delete', { conversationId, seq: 2 });

    const back = await seats.connect(b.user);
    const reply = await back.ok('sync', { conversations: [{ conversationId, afterSeq: 2, rev }] });
    const [entry] = reply.conversations;
    assert.equal(entry.messages, undefined, 'no new messages: the field is left out');
    assert.equal(entry.more, undefined);
    assert.equal(entry.changesMore, false);
    const changed = entry.changes.filter((c: any) => c.kind === 'message').map((c: any) => c.message);
    assert.deepEqual(changed.map((m: any) => [m.seq, m.text, m.deleted]), [[1, 'one, edited', undefined], [2, '', true]]);
    assert.ok(changed.every((m: any) => !('key' in m)), "another user's key is not sent");
    assert.ok(entry.rev > rev);
    // Synced to the returned rev: nothing more.
    const again = await back.ok('sync', { conversations: [{ conversationId, afterSeq: 2, rev: entry.rev }] });
    assert.deepEqual(again.conversations[0].changes, []);
    assert.equal(again.conversations[0].conversation, undefined);
  });

  it('returns read cursors of others, joins, role changes, departures and the renamed conversation', async () => {
    const a = await seats.seat('a');
    const b = await seats.seat('b');
    const c = await seats.seat('c');
    const d = await seats.seat('d');
    const conversationId = await seats.publicGroup(a, [b, d]);
    await a.client.ok('message.send', { conversationId, key: 'k1', text: 'one' });
    const rev = (await b.client.ok('conversation.get', { conversationId })).conversation.rev;
    b.client.close();

    await d.client.ok('read.mark', { conversationId, seq: 1 });
    await c.client.ok('conversation.join', { conversationId });
    await a.client.ok('member.role', { conversationId, userId: c.user.id, role: 'admin' });
    await d.client.ok('conversation.leave', { conversationId });
    await a.client.ok('conversation.rename', { conversationId, name: 'renamed while away' });

    const back = await seats.connect(b.user);
    const [entry] = (await back.ok('sync', { conversations: [{ conversationId, afterSeq: 1, rev }] })).conversations;
    assert.equal(entry.conversation.name, 'renamed while away');
    assert.equal(entry.conversation.memberCount, 3);
    const kinds = entry.changes.map((ch: any) => ch.kind === 'left' ? `left:${ch.userId}` : ch.kind === 'member' ? `member:${ch.member.userId}` : `message:${ch.message.seq}`);
    assert.deepEqual(kinds, [`member:${c.user.id}`, `left:${d.user.id}`], 'c joined and became admin (one row, its latest change); d read and left');
    assert.equal(entry.changes[0].member.role, 'admin');
    const revs = entry.changes.map((ch: any) => ch.rev);
    assert.deepEqual(revs, [...revs].sort((x, y) => x - y));
    assert.equal(entry.rev, entry.conversation.rev);
  });

  it('a read cursor moved while away is returned with the member', async () => {
    const a = await seats.seat('a');
    const b = await seats.seat('b');
    const conversationId = await seats.publicGroup(a, [b]);
    await b.client.ok('message.send', { conversationId, key: 'k1', text: 'one' });
    await b.client.ok('message.send', { conversationId, key: 'k2', text: 'two' });
    const rev = (await b.client.ok('conversation.get', { conversationId })).conversation.rev;
    b.client.close();
    await a.client.ok('read.mark', { conversationId, seq: 2 });
    const back = await seats.connect(b.user);
    const [entry] = (await back.ok('sync', { conversations: [{ conversationId, afterSeq: 2, rev }] })).conversations;
    assert.deepEqual(entry.changes.map((ch: any) => [ch.kind, ch.member?.userId, ch.member?.readSeq]), [['member', a.user.id, 2]]);
  });

  it('changes are bounded in bytes too: changesMore, and syncing again from the returned rev converges', async () => {
    const a = await seats.seat('a');
    const b = await seats.seat('b');
    const conversationId = await seats.publicGroup(a, [b]);
    await fill(a, conversationId, 120, (i) => `m${i}`);
    const rev = (await b.client.ok('conversation.get', { conversationId })).conversation.rev;
    b.client.close();
    const big = (i: number) => `${i} `.padEnd(4000, 'e');
    for (let start = 1; start <= 120; start += 40) {
      await Promise.all(range(start, start + 39).map((seq) => a.client.ok('message.edit', { conversationId, seq, text: big(seq) })));
    }
    const back = await seats.connect(b.user);
    const edited = new Map<number, string>();
    let at = rev;
    let rounds = 0;
    for (; rounds < 50; rounds++) {
      const reply = await back.request('sync', { conversations: [{ conversationId, afterSeq: 120, rev: at }] });
      assert.ok(Buffer.byteLength(JSON.stringify(reply)) <= REPLY_BYTES + 16 * 1024);
      const [entry] = reply.result.conversations;
      for (const ch of entry.changes) if (ch.kind === 'message') edited.set(ch.message.seq, ch.message.text);
      assert.ok(entry.rev >= at);
      at = entry.rev;
      if (!entry.changesMore) break;
    }
    assert.ok(rounds >= 1, 'more than one round was needed');
    assert.equal(edited.size, 120);
    for (const [seq, text] of edited) assert.equal(text, big(seq));
  });

  it('keeps a sync of one full group and 150 groups behind on rev within the budget; syncing again converges', async () => {
    const a = await seats.seat('a');
    const b = await seats.seat('b');
    const big = await seats.publicGroup(a, [b]);
    await fill(a, big, 80, (i) => `${i} `.padEnd(4000, 'f'));
    const small: string[] = [];
    for (let g = 0; g < 150; g++) small.push(await seats.publicGroup(a, [b])); // b's join moves each group's rev
    let wanted = [{ conversationId: big, afterSeq: 0, rev: 0 }, ...small.map((conversationId) => ({ conversationId, afterSeq: 0, rev: 0 }))];
    let rounds = 0;
    for (; rounds < 20 && wanted.length > 0; rounds++) {
      const reply = await b.client.request('sync', { conversations: wanted });
      const bytes = Buffer.byteLength(JSON.stringify(reply));
      assert.ok(bytes <= REPLY_BYTES, `round ${rounds}: a sync reply of ${bytes} B`);
      const entries: any[] = reply.result.conversations;
      for (const entry of entries) {
        if (entry.changesMore) assert.equal(entry.conversation === undefined || entry.changes.length > 0, true, 'an entry cut by the budget carries no conversation without its changes');
        else assert.ok(entry.conversation, 'a conversation behind on rev comes back as it is now');
      }
      // Per the protocol: sync again, from the returned rev, the entries that said changesMore.
      wanted = entries.filter((e) => e.changesMore).map((e) => ({ conversationId: e.conversationId, afterSeq: 0, rev: e.rev }));
    }
    assert.ok(rounds >= 2, 'the first reply could not hold everything');
    assert.equal(wanted.length, 0, 'every conversation caught up on its changes');
  });

  it('a client that names no rev gets no changes but the current rev to start from', async () => {
    const a = await seats.seat('a');
    const conversationId = await seats.publicGroup(a, []);
    await a.client.ok('conversation.rename', { conversationId, name: 'x' });
    const [entry] = (await a.client.ok('sync', { conversations: [{ conversationId, afterSeq: 0 }] })).conversations;
    assert.equal(entry.changes, undefined);
    assert.equal(entry.rev, (await a.client.ok('conversation.get', { conversationId })).conversation.rev);
  });

  it('a retried send (same key) reaches a member who connected after the first attempt, live', async () => {
    const a = await seats.seat('a');
    const b = await seats.seat('b');
    const conversationId = await seats.publicGroup(a, [b]);
    b.client.close();
    const first = await a.client.ok('message.send', { conversationId, key: 'retried', text: 'did you get this?' });
    assert.equal(first.duplicate, false);
    const back = await seats.connect(b.user);
    await settle(back);
    const retry = await a.client.ok('message.send', { conversationId, key: 'retried', text: 'did you get this?' });
    assert.equal(retry.duplicate, true);
    const live = await back.waitFor('message.new', (m) => m.id === first.id);
    assert.equal(live.seq, first.seq);
    const { messages } = await back.ok('history.after', { conversationId, afterSeq: 0 });
    assert.equal(messages.filter((m: any) => m.text === 'did you get this?').length, 1, 'stored once');
  });
});

describe('lists that can grow are paged in bytes and count (conversation.list, member.list, member.bans, invite.list)', () => {
  let server: TestServer;
  const seats = new Seats(() => server, 'lists');
  const BUDGET = 4096;
  before(async () => {
    // The smallest reply budget, so that a hundred members already take several pages.
    server = await startServer({ ...FAST, PARLEY_LIMITS_MAX_REPLY_BYTES: String(BUDGET) });
  });
  afterEach(() => seats.closeAll());
  after(async () => {
    await server.stop();
  });

  async function pageAll(client: RawClient, type: 'member.list' | 'member.bans' | 'invite.list', conversationId: string, key: 'members' | 'bans' | 'invites', limit?: number): Promise<any[][]> {
    const pages: any[][] = [];
    let after: string | undefined;
    for (let i = 0; i < 200; i++) {
      const reply = await client.request(type, { conversationId, ...(after ? { after } : {}), ...(limit ? { limit } : {}) });
      assert.ok(!reply.error, JSON.stringify(reply.error));
      assert.ok(Buffer.byteLength(JSON.stringify(reply)) <= BUDGET + 512, `page of ${Buffer.byteLength(JSON.stringify(reply))} B`);
      pages.push(reply.result[key]);
      assert.equal(reply.result.more, reply.result.next !== null);
      if (!reply.result.more) return pages;
      after = reply.result.next;
    }
    throw new Error('did not end within 200 pages');
  }

  it('member.list pages a large group by bytes, in join order, each member once (also over REST)', async () => {
    const owner = await seats.seat('owner');
    const conversationId = await seats.publicGroup(owner, []);
    const ids: string[] = [];
    for (let i = 0; i < 100; i++) {
      const id = `lists-member-${i}-${conversationId.slice(0, 8)}`;
      const token = await server.token(id, { name: `member ${i} `.padEnd(60, 'n') });
      const res = await api(server, token, 'POST', `/api/v1/conversations/${conversationId}/join`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      ids.push(id);
    }
    const pages = await pageAll(owner.client, 'member.list', conversationId, 'members');
    assert.ok(pages.length > 3, `${pages.length} pages`);
    const all = pages.flat().map((m) => m.userId);
    assert.deepEqual(all, [owner.user.id, ...ids]);
    const byCount = await pageAll(owner.client, 'member.list', conversationId, 'members', 7);
    assert.ok(byCount.every((p) => p.length <= 7));
    assert.deepEqual(byCount.flat().map((m) => m.userId), all);

    const first = await api(server, owner.user.token, 'GET', `/api/v1/conversations/${conversationId}/members?limit=10`);
    assert.equal(first.status, 200);
    assert.equal(first.body.members.length, 10);
    const second = await api(server, owner.user.token, 'GET', `/api/v1/conversations/${conversationId}/members?limit=10&after=${first.body.next}`);
    assert.deepEqual(second.body.members.map((m: any) => m.userId), all.slice(10, 20));
  });

  it('member.bans pages many bans (non-members banned ahead) by bytes and count, in ban order, each ban once (also over REST)', async () => {
    const owner = await seats.seat('owner');
    const conversationId = await seats.publicGroup(owner, []);
    const ids: string[] = [];
    for (let i = 0; i < 100; i++) {
      const id = `lists-banned-${i}-${conversationId.slice(0, 8)}`;
      const token = await server.token(id, { name: `banned ${i} `.padEnd(60, 'b') });
      // Any authenticated request makes the user known; they never join: banned ahead.
      assert.equal((await api(server, token, 'GET', '/api/v1/conversations')).status, 200);
      const res = await api(server, owner.user.token, 'PUT', `/api/v1/conversations/${conversationId}/bans/${id}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      ids.push(id);
    }
    const pages = await pageAll(owner.client, 'member.bans', conversationId, 'bans');
    assert.ok(pages.length > 3, `${pages.length} pages`);
    const all = pages.flat().map((b) => b.userId);
    assert.equal(all.length, 100);
    assert.deepEqual(new Set(all), new Set(ids));
    const byCount = await pageAll(owner.client, 'member.bans', conversationId, 'bans', 7);
    assert.ok(byCount.every((p) => p.length <= 7));
    assert.deepEqual(byCount.flat().map((b) => b.userId), all);

    const rest: string[] = [];
    let after: string | null = null;
    for (let i = 0; i < 200; i++) {
      const query: string = after === null ? '' : `?after=${after}`;
      const res = await api(server, owner.user.token, 'GET', `/api/v1/conversations/${conversationId}/bans${query}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.ok(Buffer.byteLength(JSON.stringify(res.body)) <= BUDGET + 512);
      rest.push(...res.body.bans.map((b: any) => b.userId));
      assert.equal(res.body.more, res.body.next !== null);
      if (!res.body.more) break;
      after = res.body.next;
    }
    assert.deepEqual(rest, all);
    const limited = await api(server, owner.user.token, 'GET', `/api/v1/conversations/${conversationId}/bans?limit=3`);
    assert.deepEqual(limited.body.bans.map((b: any) => b.userId), all.slice(0, 3));
    assert.equal(limited.body.more, true);
  });

  it('invite.list pages by bytes and count', async () => {
    const owner = await seats.seat('owner');
    const conversationId = await seats.publicGroup(owner, []);
    const tokens: string[] = [];
    for (let i = 0; i < 60; i++) tokens.push((await owner.client.ok('invite.create', { conversationId })).invite.token);
    const pages = await pageAll(owner.client, 'invite.list', conversationId, 'invites');
    assert.ok(pages.length > 1);
    assert.deepEqual(new Set(pages.flat().map((inv) => inv.token)), new Set(tokens));
    assert.equal(pages.flat().length, 60);
  });

  it('conversation.list pages by bytes, most recently active first, each conversation once (also over REST)', async () => {
    const owner = await seats.seat('owner');
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) ids.push((await owner.client.ok('conversation.create', { name: `list ${i} `.padEnd(150, 'c') })).conversation.id);
    const pages: any[][] = [];
    let after: string | undefined;
    for (let i = 0; i < 100; i++) {
      const reply = await owner.client.request('conversation.list', after ? { after } : {});
      assert.ok(Buffer.byteLength(JSON.stringify(reply)) <= BUDGET + 512);
      pages.push(reply.result.conversations);
      if (!reply.result.more) break;
      after = reply.result.next;
    }
    assert.ok(pages.length > 2, `${pages.length} pages`);
    const listed = pages.flat().map((c) => c.id);
    assert.equal(new Set(listed).size, 40);
    assert.deepEqual(new Set(listed), new Set(ids));
    const rest = await api(server, owner.user.token, 'GET', '/api/v1/conversations?limit=5');
    assert.equal(rest.status, 200);
    assert.deepEqual(rest.body.conversations.map((c: any) => c.id), listed.slice(0, 5));
    assert.equal(rest.body.more, true);
  });

  it("sync's unknown list is cut by the budget (unknownMore); naming what came back returns the rest", async () => {
    const owner = await seats.seat('owner');
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push((await owner.client.ok('conversation.create', { name: `unknown ${i} `.padEnd(150, 'u') })).conversation.id);
    const learned = new Map<string, any>();
    for (let round = 0; round < 40; round++) {
      const named = [...learned.values()].map((c) => ({ conversationId: c.id, afterSeq: c.lastSeq, rev: c.rev }));
      const reply = await owner.client.request('sync', { conversations: named });
      // The entries of named conversations are charged first (small and at most 1000); unknown shares what is left,
      // with at least one per reply.
      const entryBytes = Buffer.byteLength(JSON.stringify(reply.result.conversations));
      assert.ok(Buffer.byteLength(JSON.stringify(reply)) <= Math.max(BUDGET, entryBytes) + 1024, 'within the budget but for one item');
      for (const c of reply.result.unknown) learned.set(c.id, c);
      if (!reply.result.unknownMore) break;
      assert.ok(reply.result.unknown.length > 0, 'each round makes progress');
    }
    assert.deepEqual(new Set(learned.keys()), new Set(ids));
  });

  it('refuses a cursor that no page gave with INVALID_REQUEST', async () => {
    const owner = await seats.seat('owner');
    const conversationId = await seats.publicGroup(owner, []);
    for (const after of ['nonsense', Buffer.from('[1]').toString('base64url'), Buffer.from('["x","y"]').toString('base64url')]) {
      assert.equal(await owner.client.errorCode('member.list', { conversationId, after }), 'INVALID_REQUEST');
      assert.equal(await owner.client.errorCode('invite.list', { conversationId, after }), 'INVALID_REQUEST');
      assert.equal(await owner.client.errorCode('member.bans', { conversationId, after }), 'INVALID_REQUEST');
      assert.equal(await owner.client.errorCode('conversation.list', { after }), 'INVALID_REQUEST');
    }
  });

  it('a page always holds at least one message, even one larger than the whole budget', async () => {
    const owner = await seats.seat('owner');
    const conversationId = await seats.publicGroup(owner, []);
    for (let i = 0; i < 3; i++) await owner.client.ok('message.send', { conversationId, key: `big-${i}`, text: '"'.repeat(4096) });
    const seen: number[] = [];
    for (let i = 0; i < 10; i++) {
      const page = await owner.client.ok('history.after', { conversationId, afterSeq: seen.at(-1) ?? 0 });
      assert.equal(page.messages.length, 1);
      seen.push(page.messages[0].seq);
      if (!page.more) break;
    }
    assert.deepEqual(seen, [1, 2, 3]);
    const [entry] = (await owner.client.ok('sync', { conversations: [{ conversationId, afterSeq: 0 }] })).conversations;
    assert.equal(entry.messages.length, 1);
    assert.equal(entry.more, true);
  });
});
