import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Message } from '../../src/protocol/types.js';
import { Sequencer } from '../../packages/sdk/src/sequencer.js';
import { catchUp, runSync, SYNC_BATCH, type CatchUpContext } from '../../packages/sdk/src/sync.js';
import type { ResultMap } from '@parley/protocol';

function msg(conversationId: string, seq: number, text = `m${seq}`): Message {
  return {
    id: `${conversationId}:${seq}`, conversationId, seq, senderId: 'u1', text, key: `k${seq}`, createdAt: 1_700_000_000_000 + seq,
  };
}
const seqs = (ms: Message[]) => ms.map((m) => m.seq);

describe('SDK sequencer (ordering and dedup buffer)', () => {
  it('calls onChange exactly when positions() changes (what the client persists), never for a no-op', () => {
    let changes = 0;
    const s = new Sequencer(() => changes++);
    const step = (what: string, run: () => void, changed: boolean): void => {
      const before = JSON.stringify(s.positions());
      const count = changes;
      run();
      assert.equal(JSON.stringify(s.positions()) !== before, changed, `${what}: positions ${changed ? '' : 'un'}changed`);
      assert.equal(changes > count, changed, `${what}: onChange ${changed ? '' : 'not '}called`);
    };
    step('track a new conversation', () => s.track('c', 2), true);
    step('track backwards', () => s.track('c', 1), false);
    step('offer the next seq', () => s.offer(msg('c', 3)), true);
    step('offer a duplicate', () => s.offer(msg('c', 3)), false);
    step('offer ahead of a gap (buffered only)', () => s.offer(msg('c', 6)), false);
    step('skip the gap', () => s.skipGap('c'), true);
    step('set a rev', () => s.setRev('c', 4), true);
    step('set an older rev', () => s.setRev('c', 3), false);
    step('offer a message of an unknown conversation', () => s.offer(msg('d', 1)), true);
    step('forget', () => s.forget('d'), true);
    step('forget an unknown conversation', () => s.forget('d'), false);
    step('clear', () => s.clear(), true);
    step('clear when empty', () => s.clear(), false);
  });

  it('delivers consecutive seqs at once', () => {
    const s = new Sequencer();
    s.track('c', 0);
    assert.deepEqual(seqs(s.offer(msg('c', 1))), [1]);
    assert.deepEqual(seqs(s.offer(msg('c', 2))), [2]);
    assert.equal(s.last('c'), 2);
    assert.equal(s.gap('c'), null);
  });

  it('drops duplicates, whether already delivered or already buffered', () => {
    const s = new Sequencer();
    s.track('c', 5);
    assert.deepEqual(seqs(s.offer(msg('c', 5))), []);
    assert.deepEqual(seqs(s.offer(msg('c', 3))), []);
    assert.deepEqual(seqs(s.offer(msg('c', 6))), [6]);
    assert.deepEqual(seqs(s.offer(msg('c', 6))), []);
    assert.deepEqual(seqs(s.offer(msg('c', 8))), []);
    assert.deepEqual(seqs(s.offer(msg('c', 8, 'again'))), []);
    assert.equal(s.bufferedCount('c'), 1);
    const out = s.offer(msg('c', 7));
    assert.deepEqual(seqs(out), [7, 8]);
    assert.equal(out[1].text, 'm8', 'the first copy is kept');
  });

  it('buffers out-of-order seqs and reports the missing range', () => {
    const s = new Sequencer();
    s.track('c', 10);
    assert.deepEqual(s.offer(msg('c', 14)), []);
    assert.deepEqual(s.gap('c'), { conversationId: 'c', from: 11, to: 13 });
    assert.deepEqual(s.offer(msg('c', 12)), []);
    assert.deepEqual(s.gap('c'), { conversationId: 'c', from: 11, to: 11 }, 'the first missing range only');
    assert.deepEqual(seqs(s.offer(msg('c', 11))), [11, 12]);
    assert.deepEqual(s.gap('c'), { conversationId: 'c', from: 13, to: 13 });
    assert.deepEqual(seqs(s.offer(msg('c', 13))), [13, 14]);
    assert.equal(s.gap('c'), null);
    assert.equal(s.last('c'), 14);
  });

  it('delivers a shuffled stream with duplicates exactly once, in order', () => {
    const s = new Sequencer();
    s.track('c', 0);
    const input = [3, 1, 1, 2, 7, 5, 3, 4, 6, 6, 10, 9, 8, 2, 10];
    const delivered: number[] = [];
    for (const n of input) delivered.push(...seqs(s.offer(msg('c', n))));
    assert.deepEqual(delivered, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('keeps conversations independent and offerMany sorts', () => {
    const s = new Sequencer();
    s.track('a', 0);
    s.track('b', 100);
    const out = s.offerMany([msg('b', 102), msg('a', 2), msg('b', 101), msg('a', 1)]);
    assert.deepEqual(out.map((m) => `${m.conversationId}${m.seq}`), ['a1', 'a2', 'b101', 'b102']);
  });

  it('makes an unknown conversation known just before its first message', () => {
    const s = new Sequencer();
    assert.equal(s.isKnown('x'), false);
    assert.deepEqual(seqs(s.offer(msg('x', 42))), [42]);
    assert.equal(s.last('x'), 42);
    assert.deepEqual(seqs(s.offer(msg('x', 41))), [], 'older than the moment it became known');
  });

  it('track never moves backwards, and moving forward flushes the buffer', () => {
    const s = new Sequencer();
    s.track('c', 5);
    s.track('c', 2);
    assert.equal(s.last('c'), 5);
    s.offer(msg('c', 8));
    s.offer(msg('c', 9));
    s.offer(msg('c', 11));
    assert.deepEqual(seqs(s.track('c', 7)), [8, 9]);
    assert.deepEqual(s.gap('c'), { conversationId: 'c', from: 10, to: 10 });
    assert.deepEqual(seqs(s.track('c', 12)), [], 'buffered seqs at or below the new position are dropped');
    assert.equal(s.bufferedCount('c'), 0);
  });

  it('skipGap gives up on the first hole only', () => {
    const s = new Sequencer();
    s.track('c', 0);
    s.offer(msg('c', 3));
    s.offer(msg('c', 4));
    s.offer(msg('c', 7));
    assert.deepEqual(seqs(s.skipGap('c')), [3, 4]);
    assert.deepEqual(s.gap('c'), { conversationId: 'c', from: 5, to: 6 });
  });

  it('update replaces a buffered copy (an edit arriving before delivery)', () => {
    const s = new Sequencer();
    s.track('c', 0);
    s.offer(msg('c', 2));
    s.update({ ...msg('c', 2), text: 'edited', editedAt: 1 });
    s.update(msg('c', 9)); // not buffered: ignored
    assert.equal(s.bufferedCount('c'), 1);
    const out = s.offer(msg('c', 1));
    assert.deepEqual(out.map((m) => m.text), ['m1', 'edited']);
  });

  it('positions and forget', () => {
    const s = new Sequencer();
    s.track('a', 3);
    s.track('b', 0);
    assert.deepEqual(s.positions(), [{ conversationId: 'a', afterSeq: 3 }, { conversationId: 'b', afterSeq: 0 }]);
    s.forget('a');
    assert.deepEqual(s.positions(), [{ conversationId: 'b', afterSeq: 0 }]);
    assert.throws(() => s.track('z', -1), RangeError);
  });
});

/** A fake server holding full histories; records the requests the catch-up code makes. */
function fakeServer(histories: Record<string, number>, pageSize = 3) {
  const calls: Array<{ type: string; data: unknown }> = [];
  const page = (conversationId: string, afterSeq: number, limit = pageSize) => {
    const last = histories[conversationId] ?? 0;
    const messages: Message[] = [];
    for (let n = afterSeq + 1; n <= last && messages.length < limit; n++) messages.push(msg(conversationId, n));
    return { messages, more: afterSeq + messages.length < last };
  };
  const delivered: Message[] = [];
  const ctx = (s: Sequencer): CatchUpContext => ({
    sequencer: s,
    pageSize,
    deliver: (ms) => delivered.push(...ms),
    applyChange: () => {},
    applyConversation: () => {},
    async historyAfter(data) {
      calls.push({ type: 'history.after', data });
      return page(data.conversationId, data.afterSeq, data.limit);
    },
    async listConversations(data) {
      // Never needed here: these syncs are never cut (unknownMore is false).
      calls.push({ type: 'conversation.list', data });
      return { conversations: [], more: false, next: null };
    },
    async sync(data): Promise<ResultMap['sync']> {
      calls.push({ type: 'sync', data });
      const named = new Set(data.conversations.map((c) => c.conversationId));
      return {
        conversations: data.conversations
          .filter((c) => c.conversationId in histories)
          .map((c) => ({ conversationId: c.conversationId, lastSeq: histories[c.conversationId], rev: 0, ...page(c.conversationId, c.afterSeq, data.limit) })),
        unknown: Object.keys(histories)
          .filter((id) => !named.has(id))
          .map((id) => ({
            id, kind: 'group', name: id, visibility: 'public', createdAt: 0, createdBy: 'u1', lastSeq: histories[id],
            memberCount: 2, rev: 0, role: 'member', readSeq: 0, unread: 0, peer: null, lastMessageAt: null,
          })),
        unknownMore: false,
        removed: data.conversations.map((c) => c.conversationId).filter((id) => !(id in histories)),
      };
    },
  });
  return { calls, delivered, ctx };
}

describe('SDK catch-up (gap fill and sync)', () => {
  it('fills a gap with history.after pages from the delivered position', async () => {
    const s = new Sequencer();
    s.track('c', 2);
    const server = fakeServer({ c: 20 }, 3);
    assert.deepEqual(s.offer(msg('c', 10)), []);
    assert.deepEqual(s.gap('c'), { conversationId: 'c', from: 3, to: 9 });
    await catchUp(server.ctx(s), 'c', false);
    // The last page also brings 11: real and contiguous, so it is delivered (its live copy will be a duplicate).
    assert.deepEqual(seqs(server.delivered), [3, 4, 5, 6, 7, 8, 9, 10, 11]);
    assert.deepEqual(server.calls.map((c) => c.data), [
      { conversationId: 'c', afterSeq: 2, limit: 3 },
      { conversationId: 'c', afterSeq: 5, limit: 3 },
      { conversationId: 'c', afterSeq: 8, limit: 3 },
    ]);
    assert.equal(s.last('c'), 11, 'stops once the gap is filled (live events bring the rest)');
    assert.deepEqual(s.offer(msg('c', 11)), []);
  });

  it('skips a gap the server cannot fill instead of stalling', async () => {
    const s = new Sequencer();
    s.track('c', 0);
    const server = fakeServer({ c: 0 });
    s.offer(msg('c', 5));
    await catchUp(server.ctx(s), 'c', false);
    assert.deepEqual(seqs(server.delivered), [5]);
  });

  it('sync delivers every missed message once, pages while more, tracks unknown, forgets removed', async () => {
    const s = new Sequencer();
    s.track('a', 1);
    s.track('b', 4);
    s.track('gone', 3);
    s.offer(msg('a', 6)); // a live message that arrived during the sync
    const server = fakeServer({ a: 7, b: 4, fresh: 9 }, 2);
    const outcome = await runSync(server.ctx(s));
    assert.deepEqual(server.delivered.map((m) => `${m.conversationId}${m.seq}`), ['a2', 'a3', 'a4', 'a5', 'a6', 'a7']);
    assert.deepEqual(outcome.removed, ['gone']);
    assert.deepEqual(outcome.unknown.map((c) => c.id), ['fresh']);
    assert.equal(s.last('fresh'), 9, 'an unknown conversation starts at its lastSeq');
    assert.equal(s.isKnown('gone'), false);
    assert.equal(server.calls[0].type, 'sync');
    assert.deepEqual(server.calls[0].data, {
      conversations: [{ conversationId: 'a', afterSeq: 1 }, { conversationId: 'b', afterSeq: 4 }, { conversationId: 'gone', afterSeq: 3 }],
      limit: 2,
    });
    // A second sync finds nothing new.
    server.delivered.length = 0;
    await runSync(server.ctx(s));
    assert.deepEqual(server.delivered, []);
  });

  it('sync batches more than SYNC_BATCH conversations and counts only genuinely unknown ones', async () => {
    const s = new Sequencer();
    const histories: Record<string, number> = {};
    for (let i = 0; i < SYNC_BATCH + 5; i++) {
      s.track(`c${i}`, 0);
      histories[`c${i}`] = 0;
    }
    histories['new'] = 3;
    const server = fakeServer(histories);
    const outcome = await runSync(server.ctx(s));
    const syncCalls = server.calls.filter((c) => c.type === 'sync');
    assert.equal(syncCalls.length, 2);
    assert.deepEqual(outcome.unknown.map((c) => c.id), ['new']);
  });
});
