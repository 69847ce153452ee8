/**
 * The SDK's typed wrappers of conversation, member and invite requests (ConversationRequests) against a real server
 * process, two users each on their own client.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ParleyClient, ParleyClientError, type WebSocketConstructor } from '../../packages/sdk/src/index.js';
import { register, startServer, type TestServer } from '../helpers/server.js';

describe('SDK conversation, member and invite wrappers', () => {
  let server: TestServer;
  let alice: ParleyClient;
  let bob: ParleyClient;
  let aliceId: string;
  let bobId: string;
  before(async () => {
    server = await startServer();
    const [a, b] = [await register(server, 'conv-alice'), await register(server, 'conv-bob')];
    aliceId = a.id;
    bobId = b.id;
    const open = (token: string) => new ParleyClient({ url: server.wsUrl, token, WebSocket: WebSocket as unknown as WebSocketConstructor });
    alice = open(a.token);
    bob = open(b.token);
    await Promise.all([alice.connect(), bob.connect()]);
  });
  after(async () => {
    alice.close();
    bob.close();
    await server.stop();
  });

  async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
    await assert.rejects(promise, (err: unknown) => err instanceof ParleyClientError && err.code === code);
  }

  it('creates, finds, joins, renames, lists members, sets roles, kicks, and leaves a public group', async () => {
    const group = await alice.createGroup('Lantern Makers');
    assert.equal(group.visibility, 'public');
    assert.equal(group.role, 'owner');
    assert.equal((await alice.conversation(group.id)).id, group.id);
    const found = await bob.searchGroups('lantern');
    assert.deepEqual(found.conversations.map((c) => c.id), [group.id]);
    assert.equal(found.more, false);
    assert.equal((await bob.join(group.id)).role, 'member');
    assert.deepEqual((await alice.members(group.id)).map((m) => m.userId).sort(), [aliceId, bobId].sort());
    assert.equal((await alice.setRole(group.id, bobId, 'admin')).role, 'admin');
    assert.equal((await bob.rename(group.id, 'Lantern Guild')).name, 'Lantern Guild');
    await rejectsWith(bob.deleteConversation(group.id), 'FORBIDDEN');
    await alice.setRole(group.id, bobId, 'member');
    await alice.kick(group.id, bobId);
    await rejectsWith(bob.conversation(group.id), 'NOT_MEMBER');
    await bob.join(group.id);
    await bob.leave(group.id);
    assert.deepEqual((await alice.members(group.id)).map((m) => m.userId), [aliceId]);
    await alice.deleteConversation(group.id);
    await rejectsWith(alice.conversation(group.id), 'NOT_MEMBER'); // a deleted group has no members
  });

  it('invites to a private group: create, list, accept, revoke; bans hold against invites', async () => {
    const group = await alice.createGroup('Back Room', 'private');
    assert.equal(group.visibility, 'private');
    assert.deepEqual((await bob.searchGroups('back room')).conversations, [], 'private groups are not found');
    const invite = await alice.createInvite(group.id, { maxUses: 5 });
    const second = await alice.createInvite(group.id);
    assert.deepEqual((await alice.invites(group.id)).map((i) => i.token).sort(), [invite.token, second.token].sort());
    assert.equal((await bob.acceptInvite(invite.token)).id, group.id);
    await alice.ban(group.id, bobId);
    assert.deepEqual((await alice.bans(group.id)).map((b) => b.userId), [bobId]);
    await rejectsWith(bob.acceptInvite(second.token), 'BANNED_FROM_GROUP');
    await alice.unban(group.id, bobId);
    await alice.revokeInvite(second.token);
    await rejectsWith(bob.acceptInvite(second.token), 'INVITE_REVOKED');
    assert.equal((await bob.acceptInvite(invite.token)).id, group.id);
  });

  it('opens the direct conversation once, whoever opens it', async () => {
    const fromAlice = await alice.openDirect(bobId);
    const fromBob = await bob.openDirect(aliceId);
    assert.equal(fromAlice.id, fromBob.id);
    assert.equal(fromAlice.kind, 'direct');
    assert.equal((await bob.findUser('conv-alice')).id, aliceId);
  });
});
