/**
 * Catch-up when replies are small (`limits.maxReplyBytes` at its minimum, 4096): a fresh client of a user in 120
 * groups learns every one of them. `sync`'s `unknown` gets only what the named conversations' entries leave of the
 * reply budget, so the SDK reads the rest with `conversation.list` instead of syncing again (which, naming more and
 * more conversations, learns fewer each round).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ParleyClient, type SyncedInfo, type WebSocketConstructor } from '../../packages/sdk/src/index.js';
import { RawClient } from '../helpers/raw-client.js';
import { register, startServer, type TestServer } from '../helpers/server.js';

const GROUPS = 120;

describe('SDK catch-up with small replies', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({
      PARLEY_LIMITS_MAX_REPLY_BYTES: '4096',
      PARLEY_LIMITS_CONNECTION_RATE_PER_SECOND: '100000',
      PARLEY_LIMITS_CONNECTION_RATE_BURST: '100000',
    });
  });
  after(async () => {
    await server.stop();
  });

  it(`learns all ${GROUPS} conversations of a user whose sync replies are cut (unknownMore)`, async () => {
    const [owner, member] = [await register(server, 'small-owner'), await register(server, 'small-member')];
    const ownerWs = await RawClient.connect(server.wsUrl, owner.token);
    const memberWs = await RawClient.connect(server.wsUrl, member.token);
    const ids: string[] = [];
    try {
      for (let i = 0; i < GROUPS; i++) {
        const { conversation } = await ownerWs.ok('conversation.create', { name: `small replies ${i}`, visibility: 'public' });
        await memberWs.ok('conversation.join', { conversationId: conversation.id });
        ids.push(conversation.id);
      }
    } finally {
      ownerWs.close();
      memberWs.close();
    }
    const requests: string[] = [];
    const client = new ParleyClient({ url: server.wsUrl, token: member.token, WebSocket: WebSocket as unknown as WebSocketConstructor });
    const sent = client.request.bind(client);
    client.request = ((type, data, options) => {
      requests.push(type);
      return sent(type, data, options);
    }) as typeof client.request;
    try {
      const synced = new Promise<SyncedInfo>((resolve) => client.once('synced', resolve));
      const welcome = await client.connect();
      assert.equal(welcome.conversationsMore, true, 'welcome could not list them all either');
      const info = await synced;
      assert.deepEqual(info.unknown.map((c) => c.id).sort(), [...ids].sort());
      assert.deepEqual(client.positions().map((p) => p.conversationId).sort(), [...ids].sort());
      // Pages of conversation.list hold ~10 conversations at this budget: a dozen pages, not a sync round per
      // conversation (syncing again learned one or two per round: ~100 requests).
      assert.ok(requests.length <= 30, `${requests.length} requests: ${requests.join(', ')}`);
    } finally {
      client.close();
    }
  });
});
