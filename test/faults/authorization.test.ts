import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RawClient } from '../helpers/raw-client.js';
import { api, register, startServer, type TestServer } from '../helpers/server.js';

type User = { id: string; name: string; token: string };

/** Every conversation-scoped request type, with the rest of its data (the conversation id is added per target). */
const scoped = (victimId: string): Array<[string, Record<string, unknown>]> => [
  ['conversation.get', {}],
  ['conversation.leave', {}],
  ['conversation.rename', { name: 'taken over' }],
  ['conversation.delete', {}],
  ['member.list', {}],
  ['member.kick', { userId: victimId }],
  ['member.role', { userId: victimId, role: 'admin' }],
  ['invite.create', {}],
  ['invite.list', {}],
  ['message.send', { key: 'outsider-key', text: 'let me in' }],
  ['message.edit', { seq: 1, text: 'rewritten by an outsider' }],
  ['message.delete', { seq: 1 }],
  ['history.after', { afterSeq: 0 }],
  ['history.before', {}],
  ['read.mark', { seq: 2 }],
  ['typing', { typing: true }],
];

describe('authorization: outsiders', () => {
  let server: TestServer;
  let alice: User; // owner of the private group, one side of the direct conversation
  let bob: User; // member of the group, other side of the direct conversation
  let eve: User; // outsider
  let carol: User; // former member
  let groupId: string;
  let directId: string;
  let inviteToken: string;

  /** Everything the members can see of both conversations. */
  async function snapshot(): Promise<unknown> {
    const a = await RawClient.connect(server.wsUrl, alice.token);
    const b = await RawClient.connect(server.wsUrl, bob.token);
    const view = {
      group: (await a.ok('conversation.get', { conversationId: groupId })).conversation,
      groupForBob: (await b.ok('conversation.get', { conversationId: groupId })).conversation,
      members: (await a.ok('member.list', { conversationId: groupId })).members,
      invites: (await a.ok('invite.list', { conversationId: groupId })).invites,
      groupHistory: (await a.ok('history.after', { conversationId: groupId, afterSeq: 0 })).messages,
      direct: (await a.ok('conversation.get', { conversationId: directId })).conversation,
      directForBob: (await b.ok('conversation.get', { conversationId: directId })).conversation,
      directMembers: (await b.ok('member.list', { conversationId: directId })).members,
      directHistory: (await b.ok('history.after', { conversationId: directId, afterSeq: 0 })).messages,
      aliceList: (await a.ok('conversation.list')).conversations,
    };
    a.close();
    b.close();
    return view;
  }

  before(async () => {
    server = await startServer();
    [alice, bob, eve, carol] = await Promise.all(['authz-alice', 'authz-bob', 'authz-eve', 'authz-carol'].map((n) => register(server, n)));
    const a = await RawClient.connect(server.wsUrl, alice.token);
    const b = await RawClient.connect(server.wsUrl, bob.token);
    const c = await RawClient.connect(server.wsUrl, carol.token);
    groupId = (await a.ok('conversation.create', { name: 'secret plans', visibility: 'private' })).conversation.id;
    inviteToken = (await a.ok('invite.create', { conversationId: groupId })).invite.token;
    await b.ok('invite.accept', { token: inviteToken });
    await c.ok('invite.accept', { token: inviteToken });
    await a.ok('message.send', { conversationId: groupId, key: 'g1', text: 'group secret one' });
    await b.ok('message.send', { conversationId: groupId, key: 'g2', text: 'group secret two' });
    await c.ok('conversation.leave', { conversationId: groupId });
    await a.ok('message.send', { conversationId: groupId, key: 'g3', text: 'group secret after carol left' });
    directId = (await a.ok('message.send', { to: bob.id, key: 'd1', text: 'direct secret one' })).conversationId;
    await b.ok('message.send', { conversationId: directId, key: 'd2', text: 'direct secret two' });
    for (const client of [a, b, c]) client.close();
  });
  after(async () => {
    await server.stop();
  });

  for (const target of ['a private group', "someone else's direct conversation"] as const) {
    it(`answers every conversation-scoped request of an outsider on ${target} with NOT_MEMBER, and nothing changes`, async () => {
      const conversationId = target === 'a private group' ? groupId : directId;
      const before = await snapshot();
      const a = await RawClient.connect(server.wsUrl, alice.token);
      const b = await RawClient.connect(server.wsUrl, bob.token);
      const e = await RawClient.connect(server.wsUrl, eve.token);
      for (const [type, data] of scoped(bob.id)) {
        const reply = await e.request(type, { ...data, conversationId });
        assert.equal(reply.error?.code, 'NOT_MEMBER', `${type}: ${JSON.stringify(reply)}`);
        assert.equal(reply.error.temporary, false);
      }
      assert.equal((await e.request('conversation.join', { conversationId })).error?.code, 'NOT_FOUND', 'not joinable, and not revealed as private');
      // Ordered barrier instead of a pause: alice and bob each start typing in the conversation. Their typing events
      // travel the conversation's fan-out after anything the outsider's requests could have caused there, so once each
      // has the other's, every leak would already be in their event lists. The ping does the same for eve's socket.
      await a.ok('typing', { conversationId, typing: true });
      await b.ok('typing', { conversationId, typing: true });
      const isBarrier = (ev: { event: string; data: any }) =>
        ev.event === 'typing' && ev.data.conversationId === conversationId && [alice.id, bob.id].includes(ev.data.userId);
      await Promise.all([
        a.waitFor('typing', (d) => d.conversationId === conversationId && d.userId === bob.id),
        b.waitFor('typing', (d) => d.conversationId === conversationId && d.userId === alice.id),
      ]);
      await e.ok('ping');
      const leaked = [...a.events, ...b.events].filter((ev) => !['welcome', 'presence'].includes(ev.event) && !isBarrier(ev));
      assert.deepEqual(leaked, [], 'the members received no event caused by the outsider');
      assert.deepEqual(e.events.filter((ev) => !['welcome', 'presence'].includes(ev.event)), [], 'the outsider received no event of the conversation');
      for (const client of [a, b, e]) client.close();
      assert.deepEqual(await snapshot(), before);
    });
  }

  it('answers a conversation that does not exist exactly like one the user is not in', async () => {
    const e = await RawClient.connect(server.wsUrl, eve.token);
    for (const [type, data] of scoped(bob.id)) {
      assert.equal(await e.errorCode(type, { ...data, conversationId: 'no-such-conversation' }), 'NOT_MEMBER', type);
    }
    e.close();
  });

  it('treats a former member as an outsider', async () => {
    const c = await RawClient.connect(server.wsUrl, carol.token);
    assert.equal(await c.errorCode('history.after', { conversationId: groupId, afterSeq: 0 }), 'NOT_MEMBER');
    assert.equal(await c.errorCode('history.before', { conversationId: groupId }), 'NOT_MEMBER');
    assert.equal(await c.errorCode('message.send', { conversationId: groupId, key: 'carol-back', text: 'still here?' }), 'NOT_MEMBER');
    assert.equal(await c.errorCode('read.mark', { conversationId: groupId, seq: 3 }), 'NOT_MEMBER');
    c.close();
  });

  it('does not let an outsider revoke an invite it learned of', async () => {
    const e = await RawClient.connect(server.wsUrl, eve.token);
    assert.equal(await e.errorCode('invite.revoke', { token: inviteToken }), 'INVITE_INVALID');
    const a = await RawClient.connect(server.wsUrl, alice.token);
    const { invites } = await a.ok('invite.list', { conversationId: groupId });
    assert.equal(invites.find((i: any) => i.token === inviteToken).revoked, false);
    a.close();
    e.close();
  });

  it('puts conversations an outsider names in sync into removed, and leaks no messages', async () => {
    const e = await RawClient.connect(server.wsUrl, eve.token);
    const result = await e.ok('sync', { conversations: [{ conversationId: groupId, afterSeq: 0 }, { conversationId: directId, afterSeq: 0 }] });
    assert.deepEqual(result.conversations, []);
    assert.deepEqual([...result.removed].sort(), [groupId, directId].sort());
    assert.ok(result.unknown.every((c: any) => c.id !== groupId && c.id !== directId));
    const text = JSON.stringify(result);
    assert.ok(!text.includes('secret'), `no message text in ${text}`);
    e.close();
  });

  it('answers the REST equivalents with 403 NOT_MEMBER, and nothing changes', async () => {
    const before = await snapshot();
    for (const conversationId of [groupId, directId]) {
      const base = `/api/v1/conversations/${conversationId}`;
      const calls: Array<[string, string, unknown?]> = [
        ['GET', base],
        ['PATCH', base, { name: 'taken over' }],
        ['DELETE', base],
        ['POST', `${base}/leave`],
        ['GET', `${base}/members`],
        ['DELETE', `${base}/members/${bob.id}`],
        ['PUT', `${base}/members/${bob.id}/role`, { role: 'admin' }],
        ['POST', `${base}/invites`, {}],
        ['GET', `${base}/invites`],
        ['GET', `${base}/messages?after=0`],
        ['GET', `${base}/messages`],
        ['GET', `${base}/messages?before=3&limit=10`],
        ['POST', `${base}/read`, { seq: 2 }],
      ];
      for (const [method, path, body] of calls) {
        const res = await api(server, eve.token, method, path, body);
        assert.equal(res.status, 403, `${method} ${path}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.error.code, 'NOT_MEMBER', `${method} ${path}`);
        assert.ok(!JSON.stringify(res.body).includes('secret'));
      }
    }
    assert.deepEqual(await snapshot(), before);
  });

  it('answers presence.get with nothing about users the asker shares no conversation with', async () => {
    const a = await RawClient.connect(server.wsUrl, alice.token);
    const e = await RawClient.connect(server.wsUrl, eve.token);
    const { users } = await e.ok('presence.get', { userIds: [alice.id, bob.id, carol.id] });
    assert.deepEqual(users, []);
    const rest = await api(server, eve.token, 'GET', `/api/v1/presence?userIds=${alice.id},${bob.id}`);
    assert.equal(rest.status, 200);
    assert.deepEqual(rest.body.users, []);
    const own = await e.ok('presence.get', { userIds: [eve.id, alice.id] });
    assert.deepEqual(own.users.map((u: any) => u.userId), [eve.id], 'only the asker herself is answered');
    const member = await a.ok('presence.get', { userIds: [bob.id, eve.id] });
    assert.deepEqual(member.users.map((u: any) => u.userId), [bob.id], 'members see each other, not the outsider');
    a.close();
    e.close();
  });
});
