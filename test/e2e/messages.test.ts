import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Seats, settle, type Seat } from '../helpers/seats.js';
import { RawClient, sleep } from '../helpers/raw-client.js';
import { api, startServer, type TestServer } from '../helpers/server.js';

describe('messages', () => {
  let server: TestServer;
  const seats = new Seats(() => server, 'msg');

  before(async () => {
    server = await startServer();
  });
  after(async () => {
    seats.closeAll();
    await server.stop();
  });

  const seat = (label: string): Promise<Seat> => seats.seat(label);
  /** A public group owned by the first seat that the others joined. */
  const group = (owner: Seat, ...others: Seat[]): Promise<string> => seats.publicGroup(owner, others);
  const newIn = (c: RawClient, conversationId: string): any[] => c.eventsOf('message.new').filter((m) => m.conversationId === conversationId);
  const lastSeq = async (c: RawClient, conversationId: string): Promise<number> =>
    (await c.ok('conversation.get', { conversationId })).conversation.lastSeq;
  const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

  describe('ordering', () => {
    it('assigns seqs 1..N without gaps under 100 concurrent sends from 3 clients, and every member receives each of the others\' exactly once', async () => {
      const seats = [await seat('burst-a'), await seat('burst-b'), await seat('burst-c')];
      const conversationId = await group(seats[0], seats[1], seats[2]);
      const N = 100;
      const replies = await Promise.all(range(0, N - 1).map((i) =>
        seats[i % 3].client.ok('message.send', { conversationId, key: `burst-${i}`, text: `message ${i}` })));
      const seqs = replies.map((r) => r.seq).sort((x, y) => x - y);
      assert.deepEqual(seqs, range(1, N), 'seqs are exactly 1..N');
      assert.equal(new Set(replies.map((r) => r.id)).size, N, 'every message has its own id');
      assert.ok(replies.every((r) => r.duplicate === false));

      for (const [s, { client }] of seats.entries()) {
        // A sending connection gets the reply, not the event: the others' messages arrive as events.
        const others = replies.filter((_, i) => i % 3 !== s).map((r) => r.seq).sort((x, y) => x - y);
        const deadline = Date.now() + 5000;
        while (newIn(client, conversationId).length < others.length && Date.now() < deadline) await sleep(10);
        await settle(client);
        const received = newIn(client, conversationId).map((m) => m.seq);
        assert.equal(received.length, others.length, 'no duplicates, none of its own');
        assert.deepEqual(received, others, 'events arrive in seq order');
      }
      assert.equal(await lastSeq(seats[0].client, conversationId), N);
      const { messages } = await seats[1].client.ok('history.after', { conversationId, afterSeq: 0, limit: 100 });
      assert.deepEqual(messages.map((m: any) => m.seq), range(1, N));
    });
  });

  describe('idempotent sends', () => {
    it('returns the original message for a retry with the same key, republishes it (same seq) and stores no second copy', async () => {
      const alice = await seat('idem-a');
      const bob = await seat('idem-b');
      const conversationId = await group(alice, bob);
      const first = await alice.client.ok('message.send', { conversationId, key: 'retry-me', text: 'only once' });
      assert.equal(first.duplicate, false);
      const retry = await alice.client.ok('message.send', { conversationId, key: 'retry-me', text: 'only once' });
      assert.equal(retry.duplicate, true);
      assert.deepEqual([retry.id, retry.seq, retry.createdAt], [first.id, first.seq, first.createdAt]);
      // A duplicate's receipt carries the original (its text may differ from the retry's), with the sender's key.
      assert.equal(retry.message.text, 'only once');
      assert.equal(retry.message.key, 'retry-me');
      assert.equal(first.message, undefined, 'a first send gets only the receipt');

      const next = await alice.client.ok('message.send', { conversationId, key: 'next', text: 'after the retry' });
      assert.equal(next.seq, first.seq + 1, 'the retry did not take a seq');
      await bob.client.waitFor('message.new', (m) => m.id === next.id);
      await settle(bob.client);
      await settle(alice.client);
      // The retry is published again (the first publish may have been lost to a crash after the commit): the same
      // message, same seq, which receivers dedupe by seq. The sending connection gets neither copy.
      const copies = newIn(bob.client, conversationId).filter((m) => m.id === first.id);
      assert.equal(copies.length, 2, 'the original and the republished retry');
      assert.deepEqual(copies[1], copies[0]);
      assert.equal(newIn(alice.client, conversationId).length, 0, 'the sender connection got receipts, not events');
      const { messages } = await bob.client.ok('history.after', { conversationId, afterSeq: 0 });
      assert.deepEqual(messages.map((m: any) => m.text), ['only once', 'after the retry']);
    });

    it('stores one message for concurrent sends with the same key', async () => {
      const alice = await seat('idem-race');
      const conversationId = await group(alice);
      const replies = await Promise.all(range(1, 5).map(() =>
        alice.client.ok('message.send', { conversationId, key: 'same-key', text: 'raced' })));
      assert.equal(new Set(replies.map((r) => r.id)).size, 1);
      assert.equal(replies.filter((r) => !r.duplicate).length, 1, 'exactly one original');
      assert.equal(await lastSeq(alice.client, conversationId), 1);
    });

    it('answers a REST send 201 when stored and 200 with the original when its key was seen before', async () => {
      const alice = await seat('idem-rest');
      const conversationId = await group(alice);
      const body = { key: 'rest-key', text: 'over REST' };
      const first = await api(server, alice.user.token, 'POST', `/api/v1/conversations/${conversationId}/messages`, body);
      assert.deepEqual([first.status, first.body.duplicate], [201, false]);
      const again = await api(server, alice.user.token, 'POST', `/api/v1/conversations/${conversationId}/messages`, body);
      assert.deepEqual([again.status, again.body.duplicate, again.body.seq, again.body.message.seq], [200, true, first.body.seq, first.body.seq]);
    });

    it('treats the same key from another user as a new message', async () => {
      const alice = await seat('key-a');
      const bob = await seat('key-b');
      const conversationId = await group(alice, bob);
      const fromAlice = await alice.client.ok('message.send', { conversationId, key: 'shared-key', text: 'from alice' });
      const fromBob = await bob.client.ok('message.send', { conversationId, key: 'shared-key', text: 'from bob' });
      assert.equal(fromBob.duplicate, false);
      assert.notEqual(fromBob.id, fromAlice.id);
      assert.equal(fromBob.seq, fromAlice.seq + 1);
      const received = await alice.client.waitFor('message.new', (m) => m.id === fromBob.id);
      assert.equal(received.text, 'from bob');
    });
  });

  describe('editing and deleting', () => {
    it('lets the author edit: message.updated carries the new text and editedAt', async () => {
      const alice = await seat('edit-a');
      const bob = await seat('edit-b');
      const conversationId = await group(alice, bob);
      const message = await alice.client.ok('message.send', { conversationId, key: 'e1', text: 'teh typo' });
      const { message: edited } = await alice.client.ok('message.edit', { conversationId, seq: message.seq, text: 'the typo' });
      assert.equal(edited.id, message.id);
      assert.equal(edited.seq, message.seq);
      assert.equal(edited.text, 'the typo');
      assert.equal(typeof edited.editedAt, 'number');
      assert.ok(edited.editedAt >= message.createdAt);
      assert.equal(edited.createdAt, message.createdAt);
      const updated = await bob.client.waitFor('message.updated', (m) => m.id === message.id);
      assert.equal(updated.text, 'the typo');
      assert.equal(updated.editedAt, edited.editedAt);
      assert.equal('deleted' in updated, false, 'a default field is left out');
      assert.equal('key' in updated, false, "the sender's key is not sent to others");
      await settle(alice.client);
      assert.equal(alice.client.eventsOf('message.updated').length, 0, 'the editing connection has the reply');
      const { messages } = await bob.client.ok('history.after', { conversationId, afterSeq: 0 });
      assert.equal(messages[0].text, 'the typo');
      assert.equal(messages[0].editedAt, edited.editedAt);
    });

    it('refuses an edit or delete by another member (FORBIDDEN) and leaves the message as it was', async () => {
      const alice = await seat('edit-owner');
      const bob = await seat('edit-other');
      const conversationId = await group(alice, bob);
      const message = await bob.client.ok('message.send', { conversationId, key: 'mine', text: 'bob wrote this' });
      assert.equal(await alice.client.errorCode('message.edit', { conversationId, seq: message.seq, text: 'alice rewrote it' }), 'FORBIDDEN');
      assert.equal(await alice.client.errorCode('message.delete', { conversationId, seq: message.seq }), 'FORBIDDEN');
      const { messages } = await alice.client.ok('history.after', { conversationId, afterSeq: 0 });
      assert.equal(messages[0].text, 'bob wrote this');
      assert.equal(messages[0].editedAt, undefined);
      assert.equal(messages[0].deleted, undefined);
    });

    it('refuses an edit of a seq that holds no message (NOT_FOUND)', async () => {
      const alice = await seat('edit-missing');
      const conversationId = await group(alice);
      assert.equal(await alice.client.errorCode('message.edit', { conversationId, seq: 7, text: 'nothing here' }), 'NOT_FOUND');
    });

    it('turns a deleted message into a tombstone that keeps its seq; the next message takes the next seq', async () => {
      const alice = await seat('del-a');
      const bob = await seat('del-b');
      const conversationId = await group(alice, bob);
      await alice.client.ok('message.send', { conversationId, key: 'd1', text: 'first' });
      const doomed = await alice.client.ok('message.send', { conversationId, key: 'd2', text: 'regrettable', meta: { mood: 'angry' } });
      await alice.client.ok('message.send', { conversationId, key: 'd3', text: 'third' });

      const { message: tombstone } = await alice.client.ok('message.delete', { conversationId, seq: doomed.seq });
      assert.equal(tombstone.id, doomed.id);
      assert.equal(tombstone.seq, doomed.seq);
      assert.equal(tombstone.deleted, true);
      assert.equal(tombstone.text, '');
      assert.equal(tombstone.meta, undefined);
      const updated = await bob.client.waitFor('message.updated', (m) => m.id === doomed.id && m.deleted);
      assert.equal(updated.text, '');
      assert.equal(updated.meta, undefined);
      assert.equal(updated.seq, doomed.seq);

      const { messages } = await bob.client.ok('history.after', { conversationId, afterSeq: 0 });
      assert.deepEqual(messages.map((m: any) => [m.seq, m.text, m.deleted, m.meta]), [
        [1, 'first', undefined, undefined],
        [2, '', true, undefined],
        [3, 'third', undefined, undefined],
      ]);
      const { messages: backwards } = await bob.client.ok('history.before', { conversationId });
      assert.deepEqual(backwards.map((m: any) => m.seq), [1, 2, 3]);
      assert.equal(backwards[1].deleted, true);

      const next = await bob.client.ok('message.send', { conversationId, key: 'd4', text: 'fourth' });
      assert.equal(next.seq, 4);
      assert.equal(await lastSeq(alice.client, conversationId), 4);
    });

    it('refuses editing or deleting again a deleted message (CONFLICT)', async () => {
      const alice = await seat('del-conflict');
      const conversationId = await group(alice);
      const message = await alice.client.ok('message.send', { conversationId, key: 'gone', text: 'soon gone' });
      await alice.client.ok('message.delete', { conversationId, seq: message.seq });
      assert.equal(await alice.client.errorCode('message.edit', { conversationId, seq: message.seq, text: 'back from the dead' }), 'CONFLICT');
      assert.equal(await alice.client.errorCode('message.delete', { conversationId, seq: message.seq }), 'CONFLICT');
      const { messages } = await alice.client.ok('history.after', { conversationId, afterSeq: 0 });
      assert.equal(messages[0].text, '');
      assert.equal(messages[0].deleted, true);
    });

    it('keeps a tombstone a tombstone when an edit races the delete: the edit is refused (CONFLICT), never applied', async () => {
      const alice = await seat('race-edit');
      const bob = await seat('race-watch');
      const conversationId = await group(alice, bob);
      for (let i = 0; i < 5; i++) {
        const message = await alice.client.ok('message.send', { conversationId, key: `race-${i}`, text: 'secret draft', meta: { draft: true } });
        // Both frames leave in the same turn, delete first: the server handles them concurrently.
        const [deleted, edited] = await Promise.all([
          alice.client.request('message.delete', { conversationId, seq: message.seq }),
          alice.client.request('message.edit', { conversationId, seq: message.seq, text: 'edited after delete', meta: { draft: false } }),
        ]);
        assert.ok(deleted.result, JSON.stringify(deleted));
        assert.equal(edited.error?.code, 'CONFLICT', `the edit after the delete is refused: ${JSON.stringify(edited)}`);
        const { messages } = await bob.client.ok('history.after', { conversationId, afterSeq: message.seq - 1, limit: 1 });
        assert.deepEqual([messages[0].deleted, messages[0].text, messages[0].meta], [true, '', undefined]);
        const last = await alice.client.ok('message.send', { conversationId, key: `race-marker-${i}`, text: 'marker' });
        await bob.client.waitFor('message.new', (m) => m.id === last.id);
        const updates = bob.client.eventsOf('message.updated').filter((m) => m.id === message.id);
        assert.deepEqual(updates.map((m) => [m.deleted, m.text]), [[true, '']], 'members only ever see the tombstone');
      }
    });
  });

  describe('metadata and size limits', () => {
    it('round-trips nested JSON metadata through the reply, the event, history and an edit', async () => {
      const alice = await seat('meta-a');
      const bob = await seat('meta-b');
      const conversationId = await group(alice, bob);
      const meta = {
        kind: 'attachment',
        files: [{ name: 'résumé.pdf', size: 12345, tags: ['cv', null, true] }, { name: '☃.png', size: 0, tags: [] }],
        nested: { deeper: { deepest: { n: -1.5, empty: {}, list: [[1, 2], [3]] } } },
        quote: 'he said "hi"\n',
      };
      const message = await alice.client.ok('message.send', { conversationId, key: 'meta', text: 'see attached', meta });
      assert.equal(message.meta, undefined, 'the receipt does not echo what the sender sent');
      const received = await bob.client.waitFor('message.new', (m) => m.id === message.id);
      assert.deepEqual(received.meta, meta);
      const { messages } = await bob.client.ok('history.after', { conversationId, afterSeq: 0 });
      assert.deepEqual(messages[0].meta, meta);

      const replaced = { kind: 'poll', options: [{ id: 1, votes: [] }] };
      const { message: edited } = await alice.client.ok('message.edit', { conversationId, seq: message.seq, text: 'vote', meta: replaced });
      assert.deepEqual(edited.meta, replaced);
      const { messages: after } = await bob.client.ok('history.after', { conversationId, afterSeq: 0 });
      assert.deepEqual(after[0].meta, replaced);

      await alice.client.ok('message.send', { conversationId, key: 'no-meta', text: 'no meta' });
      const { messages: plain } = await bob.client.ok('history.after', { conversationId, afterSeq: 1 });
      assert.equal('meta' in plain[0], false, 'no meta: the field is left out');
    });

    it('refuses text over 4096 UTF-8 bytes (MESSAGE_TOO_LARGE) even when it is under 4096 characters, and stores nothing', async () => {
      const alice = await seat('big-a');
      const bob = await seat('big-b');
      const conversationId = await group(alice, bob);
      await alice.client.ok('message.send', { conversationId, key: 'small', text: 'small' });
      const euros = '€'.repeat(1366); // 1366 characters, 4098 bytes
      const emoji = '😀'.repeat(1025); // 2050 UTF-16 code units, 4100 bytes
      for (const text of [euros, emoji]) {
        assert.ok(text.length < 4096 && Buffer.byteLength(text) > 4096);
        assert.equal(await alice.client.errorCode('message.send', { conversationId, key: `big-${text.length}`, text }), 'MESSAGE_TOO_LARGE');
      }
      assert.equal(await lastSeq(alice.client, conversationId), 1, 'lastSeq unchanged');
      const { messages } = await alice.client.ok('history.after', { conversationId, afterSeq: 0 });
      assert.equal(messages.length, 1);
      await settle(bob.client);
      assert.equal(newIn(bob.client, conversationId).length, 1, 'no event for a refused message');
      assert.equal(await alice.client.errorCode('message.edit', { conversationId, seq: 1, text: euros }), 'MESSAGE_TOO_LARGE');
      const { messages: still } = await alice.client.ok('history.after', { conversationId, afterSeq: 0 });
      assert.equal(still[0].text, 'small');
      assert.equal(still[0].editedAt, undefined);
    });

    it('accepts text of exactly 4096 UTF-8 bytes and returns it unchanged', async () => {
      const alice = await seat('exact-a');
      const bob = await seat('exact-b');
      const conversationId = await group(alice, bob);
      const texts = ['€'.repeat(1365) + 'a', '😀'.repeat(1024), 'x'.repeat(4096)];
      for (const [i, text] of texts.entries()) {
        assert.equal(Buffer.byteLength(text), 4096);
        const message = await alice.client.ok('message.send', { conversationId, key: `exact-${i}`, text });
        const received = await bob.client.waitFor('message.new', (m) => m.id === message.id);
        assert.equal(received.text, text);
      }
      const { messages } = await bob.client.ok('history.after', { conversationId, afterSeq: 0 });
      assert.deepEqual(messages.map((m: any) => m.text), texts);
    });
  });
});
