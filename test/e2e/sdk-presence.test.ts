/**
 * The SDK's presence subscriptions (packages/sdk subscribePresence / unsubscribePresence) against a real server process:
 * a member of a group above presence.maxGroupSize is pushed only when subscribed, and the SDK renews its subscriptions
 * on every new connection. A direct peer's presence needs nothing new.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ParleyClient } from '../../packages/sdk/src/index.js';
import { RawClient, until } from '../helpers/raw-client.js';
import { api, register, startServer, type TestServer } from '../helpers/server.js';

type PresenceEvent = { conversationId?: string; users: Array<{ userId: string; online: boolean }> };

describe('SDK presence subscriptions', () => {
  let server: TestServer;
  const closers: Array<() => void> = [];
  before(async () => {
    server = await startServer({ PARLEY_PRESENCE_MAX_GROUP_SIZE: '2' });
  });
  after(async () => {
    for (const close of closers.splice(0)) close();
    await server.stop();
  });

  /** An SDK client whose current socket a test can cut (TCP destroyed: the SDK sees 1006 and reconnects). */
  function client(token: string): { client: ParleyClient; presence: PresenceEvent[]; cut(): void } {
    const sockets: WebSocket[] = [];
    class Traced extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        sockets.push(this);
      }
    }
    const sdk = new ParleyClient({ url: server.wsUrl, token, WebSocket: Traced as any, backoff: { initialMs: 10, maxMs: 100 } });
    const presence: PresenceEvent[] = [];
    sdk.on('presence', (e) => presence.push(e));
    closers.push(() => sdk.close());
    return { client: sdk, presence, cut: () => sockets.at(-1)!.terminate() };
  }
  const saw = (events: PresenceEvent[], userId: string, online: boolean, from = 0): boolean =>
    events.slice(from).some((e) => e.users.some((u) => u.userId === userId && u.online === online));

  it('pushes a subscribed member of a large group, again after a reconnect; a direct peer without subscribing', async () => {
    const [alice, bob, carol, dave] = await Promise.all(['a', 'b', 'c', 'd'].map((l) => register(server, `sdkp-${l}-${randomUUID().slice(0, 6)}`)));
    const { body } = await api(server, alice!.token, 'POST', '/api/v1/conversations', { name: `sdkp ${randomUUID().slice(0, 6)}`, visibility: 'public' });
    for (const u of [bob!, carol!]) assert.equal((await api(server, u.token, 'POST', `/api/v1/conversations/${body.conversation.id}/join`)).status, 200);
    assert.equal((await api(server, alice!.token, 'POST', '/api/v1/direct', { userId: dave!.id })).status, 200);

    const a = client(alice!.token);
    await a.client.connect();
    const now = await a.client.subscribePresence([bob!.id]);
    assert.deepEqual(now.map((u) => [u.userId, u.online]), [[bob!.id, false]]);

    const b = await RawClient.connect(server.wsUrl, bob!.token);
    const c = await RawClient.connect(server.wsUrl, carol!.token);
    const d = await RawClient.connect(server.wsUrl, dave!.token);
    await until(() => saw(a.presence, bob!.id, true) && saw(a.presence, dave!.id, true), 'bob (subscribed) and dave (direct peer) online');
    assert.ok(a.presence.some((e) => e.conversationId !== undefined && e.users.some((u) => u.userId === dave!.id)), 'the direct peer comes with its conversation');

    // A new connection: the SDK subscribes again and reports what it answers.
    const mark = a.presence.length;
    a.cut();
    await until(() => a.client.state === 'open' && saw(a.presence, bob!.id, true, mark), 'the renewed subscription answered bob online');
    b.close();
    await until(() => saw(a.presence, bob!.id, false, mark), 'bob offline, pushed on the new connection');

    // carol was never subscribed: a group of 3 is above maxGroupSize 2, so nothing of her reached alice.
    assert.ok(!a.presence.some((e) => e.users.some((u) => u.userId === carol!.id)));
    await a.client.unsubscribePresence([bob!.id]);
    const unsubscribed = a.presence.length;
    const b2 = await RawClient.connect(server.wsUrl, bob!.token);
    d.close();
    await until(() => saw(a.presence, dave!.id, false, unsubscribed), 'dave offline (a later presence window)');
    assert.ok(!saw(a.presence, bob!.id, true, unsubscribed), 'no push for bob after unsubscribing');
    b2.close();
    c.close();
  });
});
