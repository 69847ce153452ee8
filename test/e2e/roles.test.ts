import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Seats, settle, type Seat } from '../helpers/seats.js';
import { RawClient } from '../helpers/raw-client.js';
import { startServer, type TestServer } from '../helpers/server.js';

describe('roles and kicking', () => {
  let server: TestServer;
  const seats = new Seats(() => server, 'role');

  before(async () => {
    server = await startServer();
  });
  after(async () => {
    seats.closeAll();
    await server.stop();
  });

  const seat = (label: string): Promise<Seat> => seats.seat(label);

  /** A public group: an owner, `admins` promoted by the owner, and `members` who only joined. */
  async function team(admins: number, members: number): Promise<{ conversationId: string; owner: Seat; admins: Seat[]; members: Seat[] }> {
    const owner = await seat('owner');
    const { conversation } = await owner.client.ok('conversation.create', { name: `team ${randomUUID().slice(0, 8)}` });
    const conversationId: string = conversation.id;
    const adminSeats: Seat[] = [];
    const memberSeats: Seat[] = [];
    for (let i = 0; i < admins; i++) {
      const s = await seat('admin');
      await s.client.ok('conversation.join', { conversationId });
      await owner.client.ok('member.role', { conversationId, userId: s.user.id, role: 'admin' });
      adminSeats.push(s);
    }
    for (let i = 0; i < members; i++) {
      const s = await seat('member');
      await s.client.ok('conversation.join', { conversationId });
      memberSeats.push(s);
    }
    return { conversationId, owner, admins: adminSeats, members: memberSeats };
  }
  const roleOf = async (viewer: RawClient, conversationId: string, userId: string): Promise<string | undefined> => {
    const { members } = await viewer.ok('member.list', { conversationId });
    return members.find((m: any) => m.userId === userId)?.role;
  };

  it('lets the owner promote a member to admin, announcing member.role to every member', async () => {
    const { conversationId, owner, members: [bob, carol] } = await team(0, 2);
    const { member } = await owner.client.ok('member.role', { conversationId, userId: bob.user.id, role: 'admin' });
    assert.equal(member.userId, bob.user.id);
    assert.equal(member.role, 'admin');
    for (const x of [owner, bob, carol]) {
      const event = await x.client.waitFor('member.role', (e) => e.conversationId === conversationId && e.userId === bob.user.id);
      assert.equal(event.role, 'admin');
    }
    assert.equal(await roleOf(carol.client, conversationId, bob.user.id), 'admin');
    const { conversation } = await bob.client.ok('conversation.get', { conversationId });
    assert.equal(conversation.role, 'admin', 'the promoted member sees the role in their own view');
  });

  it('lets the owner demote an admin back to member, who then loses the admin powers', async () => {
    const { conversationId, owner, admins: [bob], members: [carol] } = await team(1, 1);
    await owner.client.ok('member.role', { conversationId, userId: bob.user.id, role: 'member' });
    await carol.client.waitFor('member.role', (e) => e.userId === bob.user.id && e.role === 'member');
    assert.equal(await roleOf(owner.client, conversationId, bob.user.id), 'member');
    assert.equal(await bob.client.errorCode('member.kick', { conversationId, userId: carol.user.id }), 'FORBIDDEN');
    assert.equal(await bob.client.errorCode('invite.create', { conversationId }), 'FORBIDDEN');
  });

  it('lets an admin kick a member', async () => {
    const { conversationId, owner, admins: [bob], members: [carol] } = await team(1, 1);
    assert.deepEqual(await bob.client.ok('member.kick', { conversationId, userId: carol.user.id }), {});
    const left = await owner.client.waitFor('member.left', (e) => e.conversationId === conversationId && e.userId === carol.user.id);
    assert.equal(left.by, bob.user.id);
    assert.equal(await roleOf(owner.client, conversationId, carol.user.id), undefined);
  });

  it('refuses an admin kicking the owner or another admin (FORBIDDEN)', async () => {
    const { conversationId, owner, admins: [bob, dave] } = await team(2, 0);
    assert.equal(await bob.client.errorCode('member.kick', { conversationId, userId: owner.user.id }), 'FORBIDDEN');
    assert.equal(await bob.client.errorCode('member.kick', { conversationId, userId: dave.user.id }), 'FORBIDDEN');
    const { members } = await owner.client.ok('member.list', { conversationId });
    assert.equal(members.length, 3, 'nobody was removed');
  });

  it('refuses a plain member kicking anyone (FORBIDDEN)', async () => {
    const { conversationId, owner, admins: [bob], members: [carol, erin] } = await team(1, 2);
    for (const target of [owner, bob, erin]) {
      assert.equal(await carol.client.errorCode('member.kick', { conversationId, userId: target.user.id }), 'FORBIDDEN');
    }
    const { members } = await owner.client.ok('member.list', { conversationId });
    assert.equal(members.length, 4);
  });

  it('lets the owner kick an admin', async () => {
    const { conversationId, owner, admins: [bob], members: [carol] } = await team(1, 1);
    await owner.client.ok('member.kick', { conversationId, userId: bob.user.id });
    const left = await carol.client.waitFor('member.left', (e) => e.conversationId === conversationId && e.userId === bob.user.id);
    assert.equal(left.by, owner.user.id);
    assert.equal(await roleOf(owner.client, conversationId, bob.user.id), undefined);
  });

  it('refuses kicking oneself or a non-member', async () => {
    const { conversationId, owner } = await team(0, 0);
    const stranger = await seat('stranger');
    assert.equal(await owner.client.errorCode('member.kick', { conversationId, userId: owner.user.id }), 'FORBIDDEN');
    assert.equal(await owner.client.errorCode('member.kick', { conversationId, userId: stranger.user.id }), 'NOT_FOUND');
  });

  it('tells a kicked user (conversation.removed, reason kicked) and stops delivering to them', async () => {
    const { conversationId, owner, members: [bob, carol] } = await team(0, 2);
    await owner.client.ok('member.kick', { conversationId, userId: bob.user.id });
    const removed = await bob.client.waitFor('conversation.removed', (e) => e.conversationId === conversationId);
    assert.equal(removed.reason, 'kicked');
    for (const x of [owner, carol]) {
      const left = await x.client.waitFor('member.left', (e) => e.conversationId === conversationId && e.userId === bob.user.id);
      assert.equal(left.by, owner.user.id);
    }
    const message = await owner.client.ok('message.send', { conversationId, key: 'after-kick', text: 'bob cannot read this' });
    await carol.client.waitFor('message.new', (m) => m.id === message.id);
    await settle(bob.client);
    assert.equal(bob.client.eventsOf('message.new').some((m) => m.id === message.id), false);
    assert.equal(await bob.client.errorCode('message.send', { conversationId, key: 'still?', text: 'hello?' }), 'NOT_MEMBER');
    assert.equal(await bob.client.errorCode('history.after', { conversationId, afterSeq: 0 }), 'NOT_MEMBER');
    const { conversations } = await bob.client.ok('conversation.list');
    assert.equal(conversations.some((c: any) => c.id === conversationId), false);
  });

  it('lets only the owner change roles: an admin or a member gets FORBIDDEN', async () => {
    const { conversationId, owner, admins: [bob], members: [carol, erin] } = await team(1, 2);
    assert.equal(await bob.client.errorCode('member.role', { conversationId, userId: carol.user.id, role: 'admin' }), 'FORBIDDEN');
    assert.equal(await carol.client.errorCode('member.role', { conversationId, userId: erin.user.id, role: 'admin' }), 'FORBIDDEN');
    assert.equal(await carol.client.errorCode('member.role', { conversationId, userId: carol.user.id, role: 'admin' }), 'FORBIDDEN');
    assert.equal(await bob.client.errorCode('member.role', { conversationId, userId: bob.user.id, role: 'member' }), 'FORBIDDEN');
    assert.equal(await roleOf(owner.client, conversationId, carol.user.id), 'member');
    assert.equal(await roleOf(owner.client, conversationId, bob.user.id), 'admin');
  });

  it("never changes the owner's role, nor makes anyone owner through member.role", async () => {
    const { conversationId, owner, members: [bob] } = await team(0, 1);
    assert.equal(await owner.client.errorCode('member.role', { conversationId, userId: owner.user.id, role: 'member' }), 'FORBIDDEN');
    assert.equal(await owner.client.errorCode('member.role', { conversationId, userId: owner.user.id, role: 'admin' }), 'FORBIDDEN');
    assert.equal(await owner.client.errorCode('member.role', { conversationId, userId: bob.user.id, role: 'owner' }), 'INVALID_REQUEST');
    assert.equal(await roleOf(bob.client, conversationId, owner.user.id), 'owner');
    assert.equal(await roleOf(bob.client, conversationId, bob.user.id), 'member');
  });

  it('refuses a role change for a user who is not a member (NOT_FOUND)', async () => {
    const { conversationId, owner } = await team(0, 0);
    const stranger = await seat('role-stranger');
    assert.equal(await owner.client.errorCode('member.role', { conversationId, userId: stranger.user.id, role: 'admin' }), 'NOT_FOUND');
  });
});
