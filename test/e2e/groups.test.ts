import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Seats, settle, type User } from '../helpers/seats.js';
import { RawClient } from '../helpers/raw-client.js';
import { startServer, type TestServer } from '../helpers/server.js';

describe('groups', () => {
  let server: TestServer;
  const seats = new Seats(() => server, 'grp');

  before(async () => {
    server = await startServer();
  });
  after(async () => {
    seats.closeAll();
    await server.stop();
  });

  const user = (label: string): Promise<User> => seats.user(label);
  const connect = (u: User): Promise<RawClient> => seats.connect(u);
  const unique = (): string => randomUUID().replace(/-/g, '').slice(0, 10);

  /** A group of `owner` that every other given user has joined (public) or been invited into (private). */
  async function groupWith(owner: RawClient, others: RawClient[], visibility: 'public' | 'private' = 'public'): Promise<any> {
    const { conversation } = await owner.ok('conversation.create', { name: `team ${unique()}`, visibility });
    if (visibility === 'public') {
      for (const c of others) await c.ok('conversation.join', { conversationId: conversation.id });
    } else {
      const { invite } = await owner.ok('invite.create', { conversationId: conversation.id });
      for (const c of others) await c.ok('invite.accept', { token: invite.token });
    }
    return conversation;
  }

  describe('public groups', () => {
    it('makes the creator the owner of a new group, which appears in their conversation list', async () => {
      const alice = await user('alice');
      const a = await connect(alice);
      const name = `Book Club ${unique()}`;
      const { conversation } = await a.ok('conversation.create', { name, visibility: 'public' });
      assert.equal(conversation.kind, 'group');
      assert.equal(conversation.name, name);
      assert.equal(conversation.visibility, 'public');
      assert.equal(conversation.role, 'owner');
      assert.equal(conversation.createdBy, alice.id);
      assert.equal(conversation.memberCount, 1);
      assert.equal(conversation.lastSeq, 0);
      const updated = await a.waitFor('conversation.updated', (c) => c.id === conversation.id);
      assert.equal(updated.name, name);
      const { conversations } = await a.ok('conversation.list');
      const mine = conversations.find((c: any) => c.id === conversation.id);
      assert.ok(mine, 'the new group is in the creator’s list');
      assert.equal(mine.role, 'owner');
      const { members } = await a.ok('member.list', { conversationId: conversation.id });
      assert.deepEqual(members.map((m: any) => [m.userId, m.role]), [[alice.id, 'owner']]);
    });

    it('defaults to public visibility when none is given', async () => {
      const a = await connect(await user('default'));
      const { conversation } = await a.ok('conversation.create', { name: `Defaulted ${unique()}` });
      assert.equal(conversation.visibility, 'public');
    });

    it('is found by conversation.search with a case-insensitive substring of its name', async () => {
      const a = await connect(await user('searcher-owner'));
      const b = await connect(await user('searcher'));
      const tag = unique();
      const { conversation } = await a.ok('conversation.create', { name: `Hiking Friends ${tag.toUpperCase()} Weekly` });
      for (const query of [tag.toLowerCase(), `friends ${tag}`.toUpperCase(), `iking friends ${tag}`]) {
        const { conversations } = await b.ok('conversation.search', { query });
        assert.deepEqual(conversations.map((c: any) => c.id), [conversation.id], `query "${query}"`);
      }
      const { conversations: none } = await b.ok('conversation.search', { query: `${tag}-not-there` });
      assert.deepEqual(none, []);
    });

    it('treats % and _ in a search query literally, not as wildcards', async () => {
      const a = await connect(await user('wild'));
      const tag = unique();
      await a.ok('conversation.create', { name: `plain ${tag}` });
      const { conversations } = await a.ok('conversation.search', { query: `plain%${tag}` });
      assert.deepEqual(conversations, []);
      const { conversations: underscore } = await a.ok('conversation.search', { query: `plain_${tag}` });
      assert.deepEqual(underscore, []);
    });

    it('lets anyone join, announces member.joined to existing members, and lists the group for the joiner', async () => {
      const alice = await user('join-owner');
      const bob = await user('join-bob');
      const carol = await user('join-carol');
      const a = await connect(alice);
      const b = await connect(bob);
      const c = await connect(carol);
      const { conversation } = await a.ok('conversation.create', { name: `Open ${unique()}` });
      await b.ok('conversation.join', { conversationId: conversation.id });
      const joinedBob = await a.waitFor('member.joined', (e) => e.conversationId === conversation.id && e.member.userId === bob.id);
      assert.equal(joinedBob.member.role, 'member');
      assert.equal(joinedBob.member.name, bob.name);

      const { conversation: joined } = await c.ok('conversation.join', { conversationId: conversation.id });
      assert.equal(joined.id, conversation.id);
      assert.equal(joined.role, 'member');
      assert.equal(joined.memberCount, 3);
      assert.equal(joined.unread, 0);
      await a.waitFor('member.joined', (e) => e.conversationId === conversation.id && e.member.userId === carol.id);
      await b.waitFor('member.joined', (e) => e.conversationId === conversation.id && e.member.userId === carol.id);
      await c.waitFor('conversation.updated', (e) => e.id === conversation.id);

      const { conversations } = await c.ok('conversation.list');
      assert.ok(conversations.some((x: any) => x.id === conversation.id && x.role === 'member'), 'the joiner lists the group');
      assert.equal(await c.errorCode('conversation.join', { conversationId: conversation.id }), 'ALREADY_MEMBER');
    });

    it('refuses to join a group that does not exist (NOT_FOUND)', async () => {
      const a = await connect(await user('nojoin'));
      assert.equal(await a.errorCode('conversation.join', { conversationId: 'no-such-group' }), 'NOT_FOUND');
    });

    it("fans each message out to every connection of every member, the sender's other connections included, not the sending one", async () => {
      const alice = await user('fan-alice');
      const bob = await user('fan-bob');
      const carol = await user('fan-carol');
      const a = await connect(alice);
      const bPhone = await connect(bob);
      const bLaptop = await connect(bob);
      const c = await connect(carol);
      const conversation = await groupWith(a, [bPhone, c]);
      const message = await c.ok('message.send', { conversationId: conversation.id, key: 'fan-1', text: 'hello everyone' });
      assert.equal(message.seq, 1);
      for (const receiver of [a, bPhone, bLaptop]) {
        const got = await receiver.waitFor('message.new', (m) => m.id === message.id);
        assert.equal(got.text, 'hello everyone');
        assert.equal(got.senderId, carol.id);
      }
      const reply = await bLaptop.ok('message.send', { conversationId: conversation.id, key: 'fan-2', text: 'hi carol' });
      for (const receiver of [a, bPhone, c]) await receiver.waitFor('message.new', (m) => m.id === reply.id);
      // The sending connection has the receipt instead: each connection gets each message of the others once.
      for (const [receiver, expected] of [[a, 2], [bPhone, 2], [bLaptop, 1], [c, 1]] as const) {
        await settle(receiver);
        assert.equal(receiver.eventsOf('message.new').filter((m) => m.conversationId === conversation.id).length, expected, 'each message once');
      }
    });

    it('delivers to a member who joined on another connection without reconnecting', async () => {
      const a = await connect(await user('late-owner'));
      const bob = await user('late-bob');
      const bOther = await connect(bob);
      const bJoiner = await connect(bob);
      const { conversation } = await a.ok('conversation.create', { name: `Late ${unique()}` });
      await bJoiner.ok('conversation.join', { conversationId: conversation.id });
      await bOther.waitFor('conversation.updated', (e) => e.id === conversation.id);
      const message = await a.ok('message.send', { conversationId: conversation.id, key: 'late', text: 'welcome' });
      await bOther.waitFor('message.new', (m) => m.id === message.id);
      await bJoiner.waitFor('message.new', (m) => m.id === message.id);
    });

    it("gives a joiner the head as its join was stored (its readSeq) in conversation.updated, even while messages pour in", async () => {
      // An instance that starts listening to the conversation on this event recovers the messages after its lastSeq:
      // a head read after the join would skip a message stored in between (see docs/protocol.md, conversation.updated).
      const senders = await Promise.all(['pour-a', 'pour-b', 'pour-c', 'pour-d', 'pour-e'].map(async (n) => connect(await user(n))));
      const conversation = await groupWith(senders[0]!, senders.slice(1));
      let pouring = true;
      const pour = senders.map(async (c, i) => {
        for (let k = 0; pouring && k < 45; k++) await c.ok('message.send', { conversationId: conversation.id, key: `p${i}-${k}`, text: `${i}.${k}` });
      });
      try {
        for (let j = 0; j < 12; j++) {
          const joiner = await connect(await user(`pour-joiner-${j}`));
          await joiner.ok('conversation.join', { conversationId: conversation.id });
          const event = await joiner.waitFor('conversation.updated', (e) => e.id === conversation.id);
          const mine = (await joiner.ok('conversation.list', {})).conversations.find((c: { id: string }) => c.id === conversation.id);
          assert.equal(event.lastSeq, mine.readSeq, `joiner ${j}: the event's lastSeq is its readSeq (the head at its join)`);
        }
      } finally {
        pouring = false;
        await Promise.all(pour);
      }
    });
  });

  describe('private groups', () => {
    it('is not returned by search', async () => {
      const a = await connect(await user('priv-owner'));
      const b = await connect(await user('priv-searcher'));
      const tag = unique();
      await a.ok('conversation.create', { name: `Secret ${tag}`, visibility: 'private' });
      const { conversation: pub } = await a.ok('conversation.create', { name: `Public ${tag}`, visibility: 'public' });
      const { conversations } = await b.ok('conversation.search', { query: tag });
      assert.deepEqual(conversations.map((c: any) => c.id), [pub.id]);
      const { conversations: ownerView } = await a.ok('conversation.search', { query: `secret ${tag}` });
      assert.deepEqual(ownerView, [], 'not even for its owner');
    });

    it('refuses conversation.join with NOT_FOUND, as if it did not exist', async () => {
      const a = await connect(await user('priv-join-owner'));
      const b = await connect(await user('priv-joiner'));
      const { conversation } = await a.ok('conversation.create', { name: `Hidden ${unique()}`, visibility: 'private' });
      assert.equal(await b.errorCode('conversation.join', { conversationId: conversation.id }), 'NOT_FOUND');
      const { members } = await a.ok('member.list', { conversationId: conversation.id });
      assert.equal(members.length, 1, 'nobody was added');
    });

    it('refuses conversation.get, member.list, history and sends by a non-member with NOT_MEMBER', async () => {
      const a = await connect(await user('priv-get-owner'));
      const b = await connect(await user('priv-outsider'));
      const { conversation } = await a.ok('conversation.create', { name: `Closed ${unique()}`, visibility: 'private' });
      const conversationId = conversation.id;
      assert.equal(await b.errorCode('conversation.get', { conversationId }), 'NOT_MEMBER');
      assert.equal(await b.errorCode('member.list', { conversationId }), 'NOT_MEMBER');
      assert.equal(await b.errorCode('history.before', { conversationId }), 'NOT_MEMBER');
      assert.equal(await b.errorCode('message.send', { conversationId, key: 'x', text: 'let me in' }), 'NOT_MEMBER');
      const { conversation: mine } = await a.ok('conversation.get', { conversationId });
      assert.equal(mine.lastSeq, 0, 'the outsider’s send stored nothing');
    });
  });

  describe('leaving', () => {
    it('tells the others (member.left), tells the leaver (conversation.removed), and stops delivery to the leaver', async () => {
      const alice = await user('leave-alice');
      const bob = await user('leave-bob');
      const carol = await user('leave-carol');
      const a = await connect(alice);
      const b = await connect(bob);
      const c = await connect(carol);
      const conversation = await groupWith(a, [b, c]);
      const conversationId = conversation.id;

      assert.deepEqual(await b.ok('conversation.leave', { conversationId }), {});
      for (const other of [a, c]) {
        const left = await other.waitFor('member.left', (e) => e.conversationId === conversationId && e.userId === bob.id);
        assert.equal(left.by, null);
      }
      const removed = await b.waitFor('conversation.removed', (e) => e.conversationId === conversationId);
      assert.equal(removed.reason, 'left');

      const message = await a.ok('message.send', { conversationId, key: 'after-leave', text: 'bob is gone' });
      await c.waitFor('message.new', (m) => m.id === message.id);
      await settle(b);
      assert.equal(b.eventsOf('message.new').some((m) => m.id === message.id), false, 'the leaver no longer receives messages');

      assert.equal(await b.errorCode('conversation.get', { conversationId }), 'NOT_MEMBER');
      assert.equal(await b.errorCode('message.send', { conversationId, key: 'sneak', text: 'still here?' }), 'NOT_MEMBER');
      assert.equal(await b.errorCode('history.after', { conversationId, afterSeq: 0 }), 'NOT_MEMBER');
      assert.equal(await b.errorCode('read.mark', { conversationId, seq: 1 }), 'NOT_MEMBER');
      assert.equal(await b.errorCode('conversation.leave', { conversationId }), 'NOT_MEMBER');
      const { conversations } = await b.ok('conversation.list');
      assert.equal(conversations.some((x: any) => x.id === conversationId), false);
      const { members } = await a.ok('member.list', { conversationId });
      assert.deepEqual(members.map((m: any) => m.userId).sort(), [alice.id, carol.id].sort());
      const { conversation: now } = await a.ok('conversation.get', { conversationId });
      assert.equal(now.memberCount, 2);
    });

    it('lets a leaver of a public group join again and receive messages again', async () => {
      const a = await connect(await user('rejoin-owner'));
      const b = await connect(await user('rejoin-bob'));
      const conversation = await groupWith(a, [b]);
      await b.ok('conversation.leave', { conversationId: conversation.id });
      await b.waitFor('conversation.removed', (e) => e.conversationId === conversation.id);
      await b.ok('conversation.join', { conversationId: conversation.id });
      await b.waitFor('conversation.updated', (e) => e.id === conversation.id);
      const message = await a.ok('message.send', { conversationId: conversation.id, key: 'back', text: 'welcome back' });
      await b.waitFor('message.new', (m) => m.id === message.id);
    });

    it('refuses the owner leaving while other members remain (FORBIDDEN)', async () => {
      const a = await connect(await user('owner-stays'));
      const b = await connect(await user('owner-stays-bob'));
      const conversation = await groupWith(a, [b]);
      assert.equal(await a.errorCode('conversation.leave', { conversationId: conversation.id }), 'FORBIDDEN');
      const { conversation: still } = await a.ok('conversation.get', { conversationId: conversation.id });
      assert.equal(still.role, 'owner');
      assert.equal(still.memberCount, 2);
    });

    it('lets a lone owner leave, which removes the group', async () => {
      const owner = await user('lone-owner');
      const a = await connect(owner);
      const { conversation } = await a.ok('conversation.create', { name: `Alone ${unique()}` });
      await a.ok('conversation.leave', { conversationId: conversation.id });
      const removed = await a.waitFor('conversation.removed', (e) => e.conversationId === conversation.id);
      assert.equal(removed.reason, 'left');
      const b = await connect(await user('lone-visitor'));
      assert.equal(await b.errorCode('conversation.join', { conversationId: conversation.id }), 'NOT_FOUND');
    });
  });

  describe('renaming', () => {
    it('lets the owner and an admin rename, announcing conversation.updated to every member', async () => {
      const alice = await user('ren-owner');
      const bob = await user('ren-admin');
      const carol = await user('ren-member');
      const a = await connect(alice);
      const b = await connect(bob);
      const c = await connect(carol);
      const conversation = await groupWith(a, [b, c]);
      const conversationId = conversation.id;
      await a.ok('member.role', { conversationId, userId: bob.id, role: 'admin' });

      const byOwner = `Renamed by owner ${unique()}`;
      const { conversation: renamed } = await a.ok('conversation.rename', { conversationId, name: byOwner });
      assert.equal(renamed.name, byOwner);
      for (const x of [a, b, c]) await x.waitFor('conversation.updated', (e) => e.id === conversationId && e.name === byOwner);

      const byAdmin = `Renamed by admin ${unique()}`;
      await b.ok('conversation.rename', { conversationId, name: byAdmin });
      for (const x of [a, b, c]) await x.waitFor('conversation.updated', (e) => e.id === conversationId && e.name === byAdmin);

      const { conversation: seen } = await c.ok('conversation.get', { conversationId });
      assert.equal(seen.name, byAdmin);
      const { conversations } = await c.ok('conversation.search', { query: byAdmin });
      assert.deepEqual(conversations.map((x: any) => x.id), [conversationId], 'search finds the new name');
    });

    it('refuses a rename by a plain member (FORBIDDEN) and keeps the name', async () => {
      const a = await connect(await user('ren2-owner'));
      const c = await connect(await user('ren2-member'));
      const conversation = await groupWith(a, [c]);
      assert.equal(await c.errorCode('conversation.rename', { conversationId: conversation.id, name: 'hijacked' }), 'FORBIDDEN');
      const { conversation: same } = await a.ok('conversation.get', { conversationId: conversation.id });
      assert.equal(same.name, conversation.name);
    });
  });

  describe('deleting', () => {
    it('lets the owner delete: every member gets conversation.removed (deleted) and later requests get NOT_MEMBER', async () => {
      const alice = await user('del-owner');
      const bob = await user('del-bob');
      const carol = await user('del-carol');
      const a = await connect(alice);
      const b = await connect(bob);
      const c = await connect(carol);
      const conversation = await groupWith(a, [b, c], 'private');
      const conversationId = conversation.id;
      await a.ok('message.send', { conversationId, key: 'before-delete', text: 'last words' });

      assert.deepEqual(await a.ok('conversation.delete', { conversationId }), {});
      for (const x of [a, b, c]) {
        const removed = await x.waitFor('conversation.removed', (e) => e.conversationId === conversationId);
        assert.equal(removed.reason, 'deleted');
      }
      for (const x of [a, b, c]) {
        assert.equal(await x.errorCode('conversation.get', { conversationId }), 'NOT_MEMBER');
        assert.equal(await x.errorCode('message.send', { conversationId, key: 'after-delete', text: 'anyone?' }), 'NOT_MEMBER');
        assert.equal(await x.errorCode('history.before', { conversationId }), 'NOT_MEMBER');
        const { conversations } = await x.ok('conversation.list');
        assert.equal(conversations.some((y: any) => y.id === conversationId), false);
      }
    });

    it('refuses deletion by an admin or a member (FORBIDDEN)', async () => {
      const alice = await user('del2-owner');
      const bob = await user('del2-admin');
      const a = await connect(alice);
      const b = await connect(bob);
      const c = await connect(await user('del2-member'));
      const conversation = await groupWith(a, [b, c]);
      await a.ok('member.role', { conversationId: conversation.id, userId: bob.id, role: 'admin' });
      assert.equal(await b.errorCode('conversation.delete', { conversationId: conversation.id }), 'FORBIDDEN');
      assert.equal(await c.errorCode('conversation.delete', { conversationId: conversation.id }), 'FORBIDDEN');
      const { conversation: still } = await a.ok('conversation.get', { conversationId: conversation.id });
      assert.equal(still.memberCount, 3);
    });
  });

  it('lists members with their names and roles', async () => {
    const alice = await user('list-owner');
    const bob = await user('list-admin');
    const carol = await user('list-member');
    const a = await connect(alice);
    const b = await connect(bob);
    const c = await connect(carol);
    const conversation = await groupWith(a, [b, c]);
    await a.ok('member.role', { conversationId: conversation.id, userId: bob.id, role: 'admin' });
    for (const x of [a, b, c]) {
      const { members } = await x.ok('member.list', { conversationId: conversation.id });
      const byId = new Map(members.map((m: any) => [m.userId, m]));
      assert.equal(members.length, 3);
      assert.deepEqual(
        [alice, bob, carol].map((u) => [(byId.get(u.id) as any)?.name, (byId.get(u.id) as any)?.role]),
        [[alice.name, 'owner'], [bob.name, 'admin'], [carol.name, 'member']],
      );
      for (const m of members) assert.equal(typeof m.joinedAt, 'number');
    }
  });
});
