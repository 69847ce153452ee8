import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Seats, settle, type User } from '../helpers/seats.js';
import { RawClient, sleep } from '../helpers/raw-client.js';
import { api, startServer, type TestServer } from '../helpers/server.js';

describe('invites', () => {
  let server: TestServer;
  const seats = new Seats(() => server, 'inv');

  before(async () => {
    server = await startServer();
  });
  after(async () => {
    seats.closeAll();
    await server.stop();
  });

  const user = (label: string): Promise<User> => seats.user(label);
  const connect = (u: User): Promise<RawClient> => seats.connect(u);
  const privateGroup = async (owner: RawClient): Promise<any> =>
    (await owner.ok('conversation.create', { name: `private ${randomUUID().slice(0, 8)}`, visibility: 'private' })).conversation;
  const usesOf = async (owner: RawClient, conversationId: string, token: string): Promise<number> => {
    const { invites } = await owner.ok('invite.list', { conversationId });
    const invite = invites.find((i: any) => i.token === token);
    assert.ok(invite, 'the invite is listed');
    return invite.uses;
  };

  describe('creating', () => {
    it('lets the owner and an admin create invites, and refuses a plain member (FORBIDDEN)', async () => {
      const alice = await user('owner');
      const bob = await user('admin');
      const carol = await user('member');
      const a = await connect(alice);
      const b = await connect(bob);
      const c = await connect(carol);
      const conversation = await privateGroup(a);
      const { invite: first } = await a.ok('invite.create', { conversationId: conversation.id });
      await b.ok('invite.accept', { token: first.token });
      await c.ok('invite.accept', { token: first.token });
      await a.ok('member.role', { conversationId: conversation.id, userId: bob.id, role: 'admin' });

      const { invite: byAdmin } = await b.ok('invite.create', { conversationId: conversation.id, maxUses: 3 });
      assert.equal(byAdmin.conversationId, conversation.id);
      assert.equal(byAdmin.createdBy, bob.id);
      assert.equal(byAdmin.maxUses, 3);
      assert.equal(byAdmin.uses, 0);
      assert.equal(byAdmin.revoked, false);
      assert.equal(byAdmin.expiresAt, null);

      assert.equal(await c.errorCode('invite.create', { conversationId: conversation.id }), 'FORBIDDEN');
      assert.equal(await c.errorCode('invite.list', { conversationId: conversation.id }), 'FORBIDDEN');
      assert.equal(await c.errorCode('invite.revoke', { token: byAdmin.token }), 'FORBIDDEN');
      const outsider = await connect(await user('outsider'));
      assert.equal(await outsider.errorCode('invite.create', { conversationId: conversation.id }), 'NOT_MEMBER');

      const { invites } = await a.ok('invite.list', { conversationId: conversation.id });
      assert.deepEqual(invites.map((i: any) => i.token).sort(), [first.token, byAdmin.token].sort());
    });

    it('makes tokens long, URL-safe and random: two invites of one group differ', async () => {
      const a = await connect(await user('tokens'));
      const conversation = await privateGroup(a);
      const now = Date.now();
      const { invite: one } = await a.ok('invite.create', { conversationId: conversation.id, expiresInSeconds: 60 });
      const { invite: two } = await a.ok('invite.create', { conversationId: conversation.id });
      for (const invite of [one, two]) {
        assert.ok(invite.token.length >= 32, `token of ${invite.token.length} chars`);
        assert.match(invite.token, /^[A-Za-z0-9_-]+$/);
      }
      assert.notEqual(one.token, two.token);
      assert.ok(Math.abs(one.expiresAt - (now + 60_000)) < 5_000, 'expiresAt is about 60 s ahead');
    });
  });

  describe('accepting', () => {
    it('joins the private group: the new member is announced and receives its messages', async () => {
      const alice = await user('acc-owner');
      const bob = await user('acc-bob');
      const a = await connect(alice);
      const b = await connect(bob);
      const conversation = await privateGroup(a);
      const { invite } = await a.ok('invite.create', { conversationId: conversation.id });
      const { conversation: joined } = await b.ok('invite.accept', { token: invite.token });
      assert.equal(joined.id, conversation.id);
      assert.equal(joined.role, 'member');
      assert.equal(joined.visibility, 'private');
      assert.equal(joined.memberCount, 2);
      const announced = await a.waitFor('member.joined', (e) => e.conversationId === conversation.id && e.member.userId === bob.id);
      assert.equal(announced.member.role, 'member');
      await b.waitFor('conversation.updated', (e) => e.id === conversation.id);

      const message = await a.ok('message.send', { conversationId: conversation.id, key: 'welcome', text: 'welcome bob' });
      const got = await b.waitFor('message.new', (m) => m.id === message.id);
      assert.equal(got.text, 'welcome bob');
      const answer = await b.ok('message.send', { conversationId: conversation.id, key: 'thanks', text: 'thanks' });
      await a.waitFor('message.new', (m) => m.id === answer.id);
      assert.equal(await usesOf(a, conversation.id, invite.token), 1);
    });

    it('refuses an expired invite (INVITE_EXPIRED) and adds nobody', async () => {
      const a = await connect(await user('exp-owner'));
      const b = await connect(await user('exp-bob'));
      const conversation = await privateGroup(a);
      const { invite } = await a.ok('invite.create', { conversationId: conversation.id, expiresInSeconds: 1 });
      await sleep(Math.max(0, invite.expiresAt + 50 - Date.now())); // until the moment under test: past expiresAt
      assert.equal(await b.errorCode('invite.accept', { token: invite.token }), 'INVITE_EXPIRED');
      assert.equal(await b.errorCode('conversation.get', { conversationId: conversation.id }), 'NOT_MEMBER');
      assert.equal(await usesOf(a, conversation.id, invite.token), 0);
    });

    it('refuses an exhausted invite (INVITE_EXHAUSTED) once maxUses users joined', async () => {
      const a = await connect(await user('exh-owner'));
      const b = await connect(await user('exh-bob'));
      const c = await connect(await user('exh-carol'));
      const conversation = await privateGroup(a);
      const { invite } = await a.ok('invite.create', { conversationId: conversation.id, maxUses: 1 });
      await b.ok('invite.accept', { token: invite.token });
      assert.equal(await c.errorCode('invite.accept', { token: invite.token }), 'INVITE_EXHAUSTED');
      assert.equal(await c.errorCode('conversation.get', { conversationId: conversation.id }), 'NOT_MEMBER');
      assert.equal(await usesOf(a, conversation.id, invite.token), 1);
    });

    it('refuses a revoked invite (INVITE_REVOKED)', async () => {
      const a = await connect(await user('rev-owner'));
      const b = await connect(await user('rev-bob'));
      const conversation = await privateGroup(a);
      const { invite } = await a.ok('invite.create', { conversationId: conversation.id });
      const { invite: revoked } = await a.ok('invite.revoke', { token: invite.token });
      assert.equal(revoked.revoked, true);
      assert.equal(await b.errorCode('invite.accept', { token: invite.token }), 'INVITE_REVOKED');
      assert.equal(await b.errorCode('conversation.get', { conversationId: conversation.id }), 'NOT_MEMBER');
      const { invites } = await a.ok('invite.list', { conversationId: conversation.id });
      assert.equal(invites.find((i: any) => i.token === invite.token).revoked, true);
    });

    it('refuses an unknown token (INVITE_INVALID), also for revocation by anyone', async () => {
      const b = await connect(await user('unknown'));
      assert.equal(await b.errorCode('invite.accept', { token: 'no-such-invite-token-0123456789abcdef' }), 'INVITE_INVALID');
      assert.equal(await b.errorCode('invite.revoke', { token: 'no-such-invite-token-0123456789abcdef' }), 'INVITE_INVALID');
    });

    it('answers ALREADY_MEMBER to a member, without counting a use', async () => {
      const a = await connect(await user('already-owner'));
      const b = await connect(await user('already-bob'));
      const c = await connect(await user('already-carol'));
      const conversation = await privateGroup(a);
      const { invite: open } = await a.ok('invite.create', { conversationId: conversation.id });
      await b.ok('invite.accept', { token: open.token });
      assert.equal(await b.errorCode('invite.accept', { token: open.token }), 'ALREADY_MEMBER');
      assert.equal(await a.errorCode('invite.accept', { token: open.token }), 'ALREADY_MEMBER');
      assert.equal(await usesOf(a, conversation.id, open.token), 1);

      // A one-use invite is not spent by a member who already belongs: a newcomer can still use it.
      const { invite: once } = await a.ok('invite.create', { conversationId: conversation.id, maxUses: 1 });
      assert.equal(await b.errorCode('invite.accept', { token: once.token }), 'ALREADY_MEMBER');
      assert.equal(await usesOf(a, conversation.id, once.token), 0);
      await c.ok('invite.accept', { token: once.token });
      assert.equal(await usesOf(a, conversation.id, once.token), 1);
      const { conversation: now } = await a.ok('conversation.get', { conversationId: conversation.id });
      assert.equal(now.memberCount, 3);
    });

    it('lets exactly one of two concurrent accepts of a one-use invite join', async () => {
      const a = await connect(await user('race-owner'));
      const bob = await user('race-bob');
      const carol = await user('race-carol');
      const b = await connect(bob);
      const c = await connect(carol);
      const conversation = await privateGroup(a);
      const { invite } = await a.ok('invite.create', { conversationId: conversation.id, maxUses: 1 });
      const replies = await Promise.all([
        b.request('invite.accept', { token: invite.token }),
        c.request('invite.accept', { token: invite.token }),
      ]);
      const winners = replies.filter((r) => r.result);
      const losers = replies.filter((r) => r.error);
      assert.equal(winners.length, 1, JSON.stringify(replies));
      assert.equal(losers.length, 1);
      assert.equal(losers[0].error.code, 'INVITE_EXHAUSTED');
      const { members } = await a.ok('member.list', { conversationId: conversation.id });
      assert.equal(members.length, 2);
      assert.equal(await usesOf(a, conversation.id, invite.token), 1);
    });

    it('accepts over REST: POST /api/v1/invites/:token/accept', async () => {
      const alice = await user('rest-owner');
      const bob = await user('rest-bob');
      const a = await connect(alice);
      const conversation = await privateGroup(a);
      const { invite } = await a.ok('invite.create', { conversationId: conversation.id, maxUses: 1 });
      const accepted = await api(server, bob.token, 'POST', `/api/v1/invites/${invite.token}/accept`);
      assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
      assert.equal(accepted.body.conversation.id, conversation.id);
      assert.equal(accepted.body.conversation.role, 'member');
      await a.waitFor('member.joined', (e) => e.conversationId === conversation.id && e.member.userId === bob.id);

      const again = await api(server, bob.token, 'POST', `/api/v1/invites/${invite.token}/accept`);
      assert.equal(again.status, 410);
      assert.equal(again.body.error.code, 'INVITE_EXHAUSTED');
      const unknown = await api(server, bob.token, 'POST', '/api/v1/invites/not-a-real-token/accept');
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.error.code, 'INVITE_INVALID');
      const anonymous = await api(server, null, 'POST', `/api/v1/invites/${invite.token}/accept`);
      assert.equal(anonymous.status, 401);

      // The REST joiner is a full member: a connection of theirs receives the group's messages.
      const b = await connect(bob);
      const message = await a.ok('message.send', { conversationId: conversation.id, key: 'rest-hi', text: 'hi from ws' });
      await b.waitFor('message.new', (m) => m.id === message.id);
    });
  });
});
