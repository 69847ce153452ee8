import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Seats, settle, type Seat } from '../helpers/seats.js';
import { RawClient } from '../helpers/raw-client.js';
import { api, startServer, type TestServer } from '../helpers/server.js';

describe('read state', () => {
  let server: TestServer;
  const seats = new Seats(() => server, 'read');

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
  /** Send messages in order; `senders[i]` writes seq i+1. */
  const sendAll = async (conversationId: string, senders: Seat[]): Promise<void> => {
    for (const [i, s] of senders.entries()) {
      const message = await s.client.ok('message.send', { conversationId, key: `r${i}`, text: `message ${i + 1}` });
      assert.equal(message.seq, i + 1);
    }
  };
  const listed = async (c: RawClient, conversationId: string): Promise<any> => {
    const { conversations } = await c.ok('conversation.list');
    const found = conversations.find((x: any) => x.id === conversationId);
    assert.ok(found, 'the conversation is listed');
    return found;
  };
  const readsIn = (c: RawClient, conversationId: string): any[] => c.eventsOf('read').filter((e) => e.conversationId === conversationId);

  it('counts as unread only messages from others: sending moves your own cursor to your message', async () => {
    const alice = await seat('count-a');
    const bob = await seat('count-b');
    const conversationId = await group(alice, bob);
    await sendAll(conversationId, [alice, alice, alice, bob, alice, alice]);
    const forBob = await listed(bob.client, conversationId);
    assert.equal(forBob.lastSeq, 6);
    assert.equal(forBob.readSeq, 4, 'bob replied at seq 4, so he has read up to it');
    assert.equal(forBob.unread, 2, "alice's two messages after bob's reply");
    const forAlice = await listed(alice.client, conversationId);
    assert.equal(forAlice.readSeq, 6);
    assert.equal(forAlice.unread, 0, "nothing after alice's last message");
    const { conversation } = await bob.client.ok('conversation.get', { conversationId });
    assert.equal(conversation.unread, 2);
  });

  it('moves the cursor forward with read.mark, answering readSeq and the remaining unread', async () => {
    const alice = await seat('mark-a');
    const bob = await seat('mark-b');
    const conversationId = await group(alice, bob);
    await sendAll(conversationId, [alice, alice, alice, alice, alice, alice]);
    const marked = await bob.client.ok('read.mark', { conversationId, seq: 3 });
    assert.deepEqual(marked, { conversationId, readSeq: 3, unread: 3 });
    const forBob = await listed(bob.client, conversationId);
    assert.equal(forBob.readSeq, 3);
    assert.equal(forBob.unread, 3);
    const { members } = await alice.client.ok('member.list', { conversationId });
    assert.equal(members.find((m: any) => m.userId === bob.user.id).readSeq, 3);
    assert.deepEqual(await bob.client.ok('read.mark', { conversationId, seq: 6 }), { conversationId, readSeq: 6, unread: 0 });
    assert.equal((await listed(bob.client, conversationId)).unread, 0);
  });

  it('never moves the cursor back for a lower seq', async () => {
    const alice = await seat('back-a');
    const bob = await seat('back-b');
    const conversationId = await group(alice, bob);
    await sendAll(conversationId, [alice, alice, alice, alice]);
    await bob.client.ok('read.mark', { conversationId, seq: 3 });
    assert.deepEqual(await bob.client.ok('read.mark', { conversationId, seq: 1 }), { conversationId, readSeq: 3, unread: 1 });
    assert.deepEqual(await bob.client.ok('read.mark', { conversationId, seq: 0 }), { conversationId, readSeq: 3, unread: 1 });
    assert.equal((await listed(bob.client, conversationId)).readSeq, 3);
  });

  it('clamps a seq beyond lastSeq to lastSeq, so later messages still count as unread', async () => {
    const alice = await seat('clamp-a');
    const bob = await seat('clamp-b');
    const conversationId = await group(alice, bob);
    await sendAll(conversationId, [alice, alice, alice]);
    assert.deepEqual(await bob.client.ok('read.mark', { conversationId, seq: 999 }), { conversationId, readSeq: 3, unread: 0 });
    await alice.client.ok('message.send', { conversationId, key: 'later', text: 'after the clamp' });
    const forBob = await listed(bob.client, conversationId);
    assert.equal(forBob.readSeq, 3);
    assert.equal(forBob.unread, 1, 'the new message is unread');
  });

  it("sends a read receipt (read event with userId and seq) to the other members, and to the reader's other devices", async () => {
    const alice = await seat('receipt-a');
    const bob = await seat('receipt-b');
    const carol = await seat('receipt-c');
    const bobTablet = await seats.connect(bob.user);
    const conversationId = await group(alice, bob, carol);
    await sendAll(conversationId, [alice, alice, carol]);
    await bob.client.ok('read.mark', { conversationId, seq: 2 });
    for (const c of [alice.client, carol.client, bobTablet]) {
      const receipt = await c.waitFor('read', (e) => e.conversationId === conversationId && e.userId === bob.user.id);
      assert.deepEqual(receipt, { conversationId, userId: bob.user.id, seq: 2 });
    }
  });

  it('sends no read event when the cursor did not move', async () => {
    const alice = await seat('quiet-a');
    const bob = await seat('quiet-b');
    const conversationId = await group(alice, bob);
    await sendAll(conversationId, [alice, alice, alice, alice, alice]);
    await bob.client.ok('read.mark', { conversationId, seq: 3 });
    await alice.client.waitFor('read', (e) => e.conversationId === conversationId && e.seq === 3);
    await bob.client.ok('read.mark', { conversationId, seq: 3 }); // same seq
    await bob.client.ok('read.mark', { conversationId, seq: 2 }); // lower
    // A later move is the marker: events reach alice in publish order, so anything from the two above would precede it.
    await bob.client.ok('read.mark', { conversationId, seq: 5 });
    await alice.client.waitFor('read', (e) => e.conversationId === conversationId && e.seq === 5);
    assert.deepEqual(readsIn(alice.client, conversationId).map((e) => e.seq), [3, 5]);
    await bob.client.ok('read.mark', { conversationId, seq: 50 }); // clamped to 5: no move either
    await alice.client.ok('message.send', { conversationId, key: 'marker', text: 'marker' });
    await bob.client.ok('read.mark', { conversationId, seq: 6 });
    await alice.client.waitFor('read', (e) => e.conversationId === conversationId && e.seq === 6);
    assert.deepEqual(readsIn(alice.client, conversationId).map((e) => e.seq), [3, 5, 6]);
  });

  it('starts a new member with unread 0 even when the group has history', async () => {
    const alice = await seat('new-a');
    const bob = await seat('new-b');
    const carol = await seat('new-c');
    const conversationId = await group(alice, bob);
    await sendAll(conversationId, [alice, bob, alice, bob, alice]);
    const { conversation: joined } = await carol.client.ok('conversation.join', { conversationId });
    assert.equal(joined.unread, 0);
    assert.equal(joined.readSeq, 5);
    const forCarol = await listed(carol.client, conversationId);
    assert.equal(forCarol.unread, 0);
    assert.equal(forCarol.lastSeq, 5);
    await alice.client.ok('message.send', { conversationId, key: 'hello-carol', text: 'hello carol' });
    assert.equal((await listed(carol.client, conversationId)).unread, 1, 'messages after joining count');
  });

  it('starts a member who joined by invite with unread 0 as well', async () => {
    const alice = await seat('inv-a');
    const dave = await seat('inv-d');
    const { conversation } = await alice.client.ok('conversation.create', { name: `hidden ${randomUUID().slice(0, 8)}`, visibility: 'private' });
    await sendAll(conversation.id, [alice, alice, alice]);
    const { invite } = await alice.client.ok('invite.create', { conversationId: conversation.id });
    const { conversation: joined } = await dave.client.ok('invite.accept', { token: invite.token });
    assert.equal(joined.unread, 0);
    assert.equal((await listed(dave.client, conversation.id)).unread, 0);
  });

  it('marks read over REST too, and refuses a non-member', async () => {
    const alice = await seat('rest-a');
    const bob = await seat('rest-b');
    const mallory = await seat('rest-m');
    const conversationId = await group(alice, bob);
    await sendAll(conversationId, [alice, alice, alice]);
    const res = await api(server, bob.user.token, 'POST', `/api/v1/conversations/${conversationId}/read`, { seq: 2 });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body, { conversationId, readSeq: 2, unread: 1 });
    await alice.client.waitFor('read', (e) => e.conversationId === conversationId && e.userId === bob.user.id && e.seq === 2);
    assert.equal(await mallory.client.errorCode('read.mark', { conversationId, seq: 1 }), 'NOT_MEMBER');
    const refused = await api(server, mallory.user.token, 'POST', `/api/v1/conversations/${conversationId}/read`, { seq: 1 });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, 'NOT_MEMBER');
  });
});
