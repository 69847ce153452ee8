import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startLaggingProxy, type LaggingProxy } from '../helpers/lagging-proxy.js';
import { RawClient, sleep } from '../helpers/raw-client.js';
import { api, register, startServer, type TestServer } from '../helpers/server.js';
import { startRedis, type RedisService } from '../helpers/services/redis.js';

/** How late the instances get what their Redis subscriber connections receive (events, subscription acks). */
const LAG_MS = 500;

/**
 * A member who creates, joins or opens a conversation is listening on it when the reply arrives, on an instance whose
 * bus is slow: the instance subscribes to the conversation's topic before it answers, instead of when the member's
 * own `conversation.updated` comes back over the bus. Before, an event published in between (a member of another
 * instance joining at once) reached nobody on the slow instance: `member.joined` was lost (seen in CI, under load).
 * Two instances on one real Redis and one SQLite file, both through a proxy that delays their subscriber connections
 * by LAG_MS (instances of a cluster must name one Redis URL); their commands, publishes included, are not delayed.
 */
describe('joining on instances with a slow bus', () => {
  let redis: RedisService;
  let proxy: LaggingProxy;
  let one: TestServer;
  let two: TestServer;
  const folder = mkdtempSync(join(tmpdir(), 'parley-join-window-'));
  const clients: RawClient[] = [];
  const connect = async (server: TestServer, token: string): Promise<RawClient> => {
    const client = await RawClient.connect(server.wsUrl, token);
    clients.push(client);
    return client;
  };

  before(async () => {
    redis = await startRedis();
    proxy = await startLaggingProxy(redis.port, LAG_MS);
    const settings = {
      PARLEY_BUS_KIND: 'redis',
      PARLEY_PRESENCE_KIND: 'redis',
      PARLEY_RATELIMIT_KIND: 'redis',
      PARLEY_STORE_SQLITE_PATH: join(folder, 'parley.db'),
    };
    one = await startServer({ ...settings, PARLEY_REDIS_URL: proxy.url });
    two = await startServer({ ...settings, PARLEY_REDIS_URL: proxy.url });
  });
  after(async () => {
    for (const client of clients) client.close();
    await one?.stop();
    await two?.stop();
    await proxy?.close();
    await redis?.close();
    rmSync(folder, { recursive: true, force: true });
  });

  it('delivers the join of a member of another instance right after conversation.create', async () => {
    const erin = await register(one, `erin-${process.pid}`);
    const dave = await register(two, `dave-${process.pid}`);
    const e = await connect(one, erin.token);
    const d = await connect(two, dave.token);
    const { conversation } = await e.ok('conversation.create', { name: `window ${process.pid}` });
    await d.ok('conversation.join', { conversationId: conversation.id });
    await e.waitFor('member.joined', (x) => x.conversationId === conversation.id && x.member.userId === dave.id, 10_000);
  });

  it('delivers the next join after conversation.join and after invite.accept on another instance', async () => {
    const owner = await register(two, `owner-${process.pid}`);
    const kim = await register(two, `kim-${process.pid}`);
    const lee = await register(two, `lee-${process.pid}`);
    const joiner = await register(one, `joiner-${process.pid}`);
    const invited = await register(one, `invited-${process.pid}`);
    const [o, k, l] = [await connect(two, owner.token), await connect(two, kim.token), await connect(two, lee.token)];
    const [j, i] = [await connect(one, joiner.token), await connect(one, invited.token)];
    const { conversation: open } = await o.ok('conversation.create', { name: `open ${process.pid}`, visibility: 'public' });
    await j.ok('conversation.join', { conversationId: open.id });
    await k.ok('conversation.join', { conversationId: open.id });
    await j.waitFor('member.joined', (x) => x.conversationId === open.id && x.member.userId === kim.id, 10_000);
    const { conversation: closed } = await o.ok('conversation.create', { name: `closed ${process.pid}`, visibility: 'private' });
    const { invite } = await o.ok('invite.create', { conversationId: closed.id, maxUses: 2 });
    await i.ok('invite.accept', { token: invite.token });
    await l.ok('invite.accept', { token: invite.token });
    await i.waitFor('member.joined', (x) => x.conversationId === closed.id && x.member.userId === lee.id, 10_000);
  });

  it("makes a second joiner here wait for the subscription the first one started, not only the first", async () => {
    const owner = await register(two, `owner2-${process.pid}`);
    const other = await register(two, `other2-${process.pid}`);
    const [first, second] = [await register(one, `first-${process.pid}`), await register(one, `second-${process.pid}`)];
    const [o, x] = [await connect(two, owner.token), await connect(two, other.token)];
    const [f, s] = [await connect(one, first.token), await connect(one, second.token)];
    const { conversation: busy } = await o.ok('conversation.create', { name: `busy ${process.pid}`, visibility: 'public' });
    const { conversation } = await o.ok('conversation.create', { name: `two joiners ${process.pid}`, visibility: 'public' });
    // Preconditions, not waits for results: the bus sends one SUBSCRIBE at a time, and each is acknowledged LAG_MS late.
    // The first joiner's join of `busy` puts one on its way; its join of `conversation` then waits behind it, unsent.
    const joins = [f.request('conversation.join', { conversationId: busy.id })];
    await sleep(50);
    joins.push(f.request('conversation.join', { conversationId: conversation.id }));
    await sleep(50);
    // The second joiner adds no subscription of its own: its reply must wait for the one still unsent.
    await s.ok('conversation.join', { conversationId: conversation.id });
    await x.ok('conversation.join', { conversationId: conversation.id });
    await s.waitFor('member.joined', (e) => e.conversationId === conversation.id && e.member.userId === other.id, 10_000);
    for (const join of await Promise.all(joins)) assert.ok(join.result);
  });

  it('has the WebSocket connections of a user who joins over REST listen before the REST answer', async () => {
    const owner = await register(two, `owner4-${process.pid}`);
    const other = await register(two, `other4-${process.pid}`);
    const web = await register(one, `web-${process.pid}`);
    const [o, x] = [await connect(two, owner.token), await connect(two, other.token)];
    const w = await connect(one, web.token);
    const { conversation } = await o.ok('conversation.create', { name: `rest ${process.pid}`, visibility: 'public' });
    const joined = await api(one, web.token, 'POST', `/api/v1/conversations/${conversation.id}/join`);
    assert.equal(joined.status, 200);
    await x.ok('conversation.join', { conversationId: conversation.id });
    await w.waitFor('member.joined', (e) => e.conversationId === conversation.id && e.member.userId === other.id, 10_000);
  });
});
