import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import WebSocket from 'ws';
import { Database } from '../../src/store/sqlite/driver.js';
import { RawClient, until } from '../helpers/raw-client.js';
import { Seats, settle, type Seat } from '../helpers/seats.js';
import { ADMIN_TOKEN, EXTERNAL_SECRET, api, signToken, startServer, type TestServer } from '../helpers/server.js';

/**
 * Connection lifecycle races (issue 8, section 6): nothing a connection should receive is lost or reordered while it
 * is being set up, nothing is left behind when it closes during setup, and bans, token expiry, group deletion and
 * shutdown hold at every moment. Each race is driven many times in a bounded loop and the eventual state asserted.
 */

/** A raw socket that records the first frame; resolves once the connection is open. */
function openRaw(wsUrl: string, token: string): Promise<{ ws: WebSocket; first: Promise<any> }> {
  const ws = new WebSocket(wsUrl, ['parley.v1', `bearer.${token}`]);
  ws.on('error', () => {});
  const first = new Promise<any>((resolve) => {
    ws.once('message', (data) => resolve(JSON.parse(String(data))));
    ws.once('close', (code) => resolve({ closed: code }));
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, first }));
    ws.once('unexpected-response', () => reject(new Error('upgrade refused')));
  });
}

/** Open `count` connections one after another, `gapMs` apart, without waiting for them; `midway` runs halfway. */
async function openStaggered(wsUrl: string, token: string, count: number, midway: () => Promise<unknown>): Promise<{ clients: Array<RawClient | null>; midway: unknown }> {
  const opening: Array<Promise<RawClient | null>> = [];
  let during: Promise<unknown> = Promise.resolve();
  for (let i = 0; i < count; i++) {
    if (i === Math.floor(count / 2)) during = midway();
    opening.push(RawClient.connect(wsUrl, token, { waitWelcome: false }).catch(() => null));
    await new Promise((r) => setTimeout(r, i % 3));
  }
  return { clients: await Promise.all(opening), midway: await during };
}

describe('connection lifecycle', () => {
  let server: TestServer;
  let seats: Seats;
  before(async () => {
    server = await startServer({
      PARLEY_TYPING_THROTTLE_MS: '0',
      PARLEY_LIMITS_USER_MESSAGE_RATE_PER_SECOND: '10000',
      PARLEY_LIMITS_USER_MESSAGE_RATE_BURST: '10000',
      PARLEY_LIMITS_CONNECTION_RATE_PER_SECOND: '10000',
      PARLEY_LIMITS_CONNECTION_RATE_BURST: '10000',
    });
    seats = new Seats(() => server, 'life');
  });
  after(async () => {
    seats.closeAll();
    await server.stop();
  });

  it('sends welcome first on every reconnect while other members send and type', async () => {
    const owner = await seats.seat('owner');
    const member = await seats.seat('member');
    const conversationId = await seats.publicGroup(owner, [member]);
    let busy = true;
    const traffic = (async () => {
      for (let i = 0; busy && i < 20_000; i++) {
        await Promise.all([
          owner.client.ok('message.send', { conversationId, key: `w-${i}`, text: `m${i}` }),
          owner.client.ok('typing', { conversationId, typing: i % 2 === 0 }),
        ]);
      }
    })();
    try {
      const firsts: any[] = [];
      for (let round = 0; round < 15; round++) {
        const opened = await Promise.all(Array.from({ length: 10 }, () => openRaw(server.wsUrl, member.user.token)));
        for (const { ws, first } of opened) {
          firsts.push(await first);
          ws.terminate();
        }
      }
      const notWelcome = firsts.filter((f) => f.event !== 'welcome');
      assert.deepEqual(notWelcome.map((f) => f.event ?? f), [], `${notWelcome.length} of ${firsts.length} connections began with another frame`);
    } finally {
      busy = false;
      await traffic;
    }
  });

  it('keeps a join (group or new direct conversation) that happens while connections are being set up', async () => {
    const owner = await seats.seat('join-owner');
    const joiner = await seats.user('joiner');
    for (let round = 0; round < 8; round++) {
      let conversationId: string;
      let sender: RawClient;
      const opened = round % 2 === 0
        ? await (async () => {
          const { conversation } = await owner.client.ok('conversation.create', { name: `join race ${round}` });
          conversationId = conversation.id;
          sender = owner.client;
          return openStaggered(server.wsUrl, joiner.token, 16, () => api(server, joiner.token, 'POST', `/api/v1/conversations/${conversation.id}/join`));
        })()
        : await (async () => {
          const peer = await seats.seat(`peer-${round}`);
          sender = peer.client;
          return openStaggered(server.wsUrl, joiner.token, 16, async () => {
            conversationId = (await peer.client.ok('direct.open', { userId: joiner.id })).conversation.id;
          });
        })();
      const clients = opened.clients.filter((c): c is RawClient => c !== null);
      await Promise.all(clients.map((c) => c.waitFor('welcome')));
      const message = await sender!.ok('message.send', { conversationId: conversationId!, key: `j-${round}`, text: 'after the join' });
      const missed = await Promise.all(clients.map((c) => c.waitFor('message.new', (m) => m.id === message.id, 3000).then(() => false, () => true)));
      assert.equal(missed.filter(Boolean).length, 0, `round ${round}: connections set up during the join never receive its messages`);
      for (const c of clients) c.close();
    }
  });

  it('stops delivering a conversation whose kick happens while connections are being set up', async () => {
    const owner = await seats.seat('kick-owner');
    const kicked = await seats.user('kicked');
    for (let round = 0; round < 6; round++) {
      const { conversation } = await owner.client.ok('conversation.create', { name: `kick race ${round}` });
      assert.equal((await api(server, kicked.token, 'POST', `/api/v1/conversations/${conversation.id}/join`)).status, 200);
      const opened = await openStaggered(server.wsUrl, kicked.token, 16, () => owner.client.ok('member.kick', { conversationId: conversation.id, userId: kicked.id }));
      const clients = opened.clients.filter((c): c is RawClient => c !== null);
      await Promise.all(clients.map((c) => c.waitFor('welcome')));
      const message = await owner.client.ok('message.send', { conversationId: conversation.id, key: `k-${round}`, text: 'after the kick' });
      // The send is delivered to local connections before its reply; a round trip on each connection then shows it.
      await Promise.all(clients.map((c) => settle(c)));
      const leaked = clients.filter((c) => c.eventsOf('message.new').some((m) => m.id === message.id));
      assert.equal(leaked.length, 0, `round ${round}: ${leaked.length} connections still receive the group after the kick`);
      for (const c of clients) c.close();
    }
  });

  it('leaves a user offline, and no connection behind, when sockets close right after the upgrade', async () => {
    const watcher = await seats.seat('watcher');
    const ghost = await seats.seat('ghost');
    await seats.publicGroup(watcher, [ghost]);
    ghost.client.close();
    const offline = async () => (await watcher.client.ok('presence.get', { userIds: [ghost.user.id] })).users[0]?.online === false;
    await until(offline, 'the ghost goes offline after its one connection closed');
    const openConnections = async () => Number(/^parley_connections (\d+)$/m.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1]);
    const before = await openConnections();
    for (let round = 0; round < 10; round++) {
      await Promise.all(Array.from({ length: 10 }, () => new Promise<void>((resolve) => {
        const ws = new WebSocket(server.wsUrl, ['parley.v1', `bearer.${ghost.user.token}`]);
        ws.on('error', () => {});
        ws.once('upgrade', () => {
          ws.terminate();
          resolve();
        });
        ws.once('close', () => resolve());
      })));
    }
    // A complete connection after the aborted ones: its setup queued behind theirs, so they are done when it is welcomed.
    const last = await RawClient.connect(server.wsUrl, ghost.user.token);
    assert.ok(last.events[0]?.event === 'welcome');
    last.close();
    await until(offline, 'the ghost is offline again after every socket closed', 5000);
    await until(async () => (await openConnections()) === before, `the connection gauge returns to ${before}`);
  });

  it('refuses writes of a banned user on a connection that is still open (its close event lost)', async () => {
    const owner = await seats.seat('ban-owner');
    const banned = await seats.seat('ban-target');
    const conversationId = await seats.publicGroup(owner, [banned]);
    await banned.client.ok('message.send', { conversationId, key: 'before', text: 'before the ban' });
    // The ban is stored without its close event, as when the event is lost on its way to this instance.
    const db = new Database(join(server.dataDir, 'parley.db'));
    try {
      db.pragma('busy_timeout = 5000');
      db.prepare('UPDATE users SET banned = 1 WHERE id = ?').run(banned.user.id);
    } finally {
      db.close();
    }
    const c = banned.client;
    assert.equal(await c.errorCode('message.send', { conversationId, key: 'after', text: 'after the ban' }), 'BANNED');
    assert.equal(await c.errorCode('message.send', { to: owner.user.id, key: 'dm', text: 'dm after the ban' }), 'BANNED');
    assert.equal(await c.errorCode('conversation.create', { name: 'banned group' }), 'BANNED');
    assert.equal(await c.errorCode('typing', { conversationId, typing: true }), 'BANNED');
    assert.equal(await c.errorCode('read.mark', { conversationId, seq: 1 }), 'BANNED');
    assert.equal(await c.errorCode('conversation.leave', { conversationId }), 'BANNED');
    const rest = await api(server, banned.user.token, 'POST', `/api/v1/conversations`, { name: 'x' });
    assert.deepEqual([rest.status, rest.body.error.code], [403, 'BANNED']);
    const { messages } = await owner.client.ok('history.after', { conversationId, afterSeq: 0 });
    assert.deepEqual(messages.map((m: any) => m.text), ['before the ban']);
  });

  it('closes with 4502 every connection of a user banned while the connections are being set up', async () => {
    for (let round = 0; round < 6; round++) {
      const target = await seats.user(`ban-race-${round}`);
      const opened = await openStaggered(server.wsUrl, target.token, 30, () => api(server, ADMIN_TOKEN, 'POST', `/api/v1/admin/users/${target.id}/ban`));
      assert.equal((opened.midway as { status: number }).status, 200);
      const clients = opened.clients.filter((c): c is RawClient => c !== null);
      const closes = await Promise.all(clients.map((c) => c.waitClose(5000).catch(() => null)));
      assert.deepEqual(closes.filter((c) => c?.code !== 4502).map((c) => c?.code ?? 'still open'), [], `round ${round}`);
    }
  });

  /**
   * A group is deleted (by `remove`) while several users join it, spread over a few milliseconds so that some joins
   * land between the deleting side's checks and its delete. Every joiner whose join succeeded must either still be in
   * the group (then the delete was refused) or have been told that the group is gone.
   */
  async function raceJoinsAgainst(label: string, remove: (owner: Seat, conversationId: string) => Promise<any>, rounds: number): Promise<void> {
    const joiners = await Promise.all(Array.from({ length: 6 }, (_, i) => seats.seat(`${label}-joiner-${i}`)));
    for (let round = 0; round < rounds; round++) {
      const owner = await seats.seat(`${label}-owner-${round}`);
      const { conversation } = await owner.client.ok('conversation.create', { name: `${label} ${round}` });
      const conversationId = conversation.id;
      const joins: Array<Promise<any>> = [];
      let removal: Promise<any> = Promise.resolve();
      for (const [i, joiner] of joiners.entries()) {
        if (i === (round % 3) + 1) removal = remove(owner, conversationId);
        joins.push(joiner.client.request('conversation.join', { conversationId }));
        await new Promise((r) => setTimeout(r, (round + i) % 2));
      }
      const removed = await removal;
      const joined = await Promise.all(joins);
      for (const [i, reply] of joined.entries()) {
        if (reply.error) {
          assert.equal(reply.error.code, 'NOT_FOUND', JSON.stringify(reply.error));
          continue;
        }
        if (removed.error) continue; // refused because members remain: the joiner keeps the group
        await joiners[i].client.waitFor('conversation.removed', (d) => d.conversationId === conversationId, 3000)
          .catch(() => assert.fail(`round ${round}: joiner ${i} joined a group that was then deleted, and was never told`));
      }
      if (removed.error) {
        assert.equal(removed.error.code, 'FORBIDDEN');
        assert.ok(joined.some((r) => r.result), 'the delete was refused only because someone joined');
      }
      for (const [i, reply] of joined.entries()) if (reply.result && removed.error) await joiners[i].client.ok('conversation.leave', { conversationId });
      owner.client.close();
    }
  }

  it('lets users racing the last owner leaving either keep the group or be told it is gone', async () => {
    await raceJoinsAgainst('last', (owner, conversationId) => owner.client.request('conversation.leave', { conversationId }), 20);
  });

  it('tells users who join while a group is deleted that it is gone', async () => {
    await raceJoinsAgainst('deleted', (owner, conversationId) => owner.client.request('conversation.delete', { conversationId }), 20);
  });
});

describe('token expiry within the clock tolerance', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ PARLEY_AUTH_JWT_CLOCK_TOLERANCE_SECONDS: '3', PARLEY_HEARTBEAT_INTERVAL_MS: '200', PARLEY_HEARTBEAT_TIMEOUT_MS: '5000' });
  });
  after(async () => {
    await server.stop();
  });

  it('keeps a connection whose token is past exp but within the tolerance open until exp + tolerance, then closes with 4004', async () => {
    const token = await server.token(`tol-${randomUUID()}`, { expiresInSeconds: -1 });
    const exp = decodeJwt(token).exp! * 1000;
    const client = await RawClient.connect(server.wsUrl, token);
    assert.equal(client.events[0]?.event, 'welcome', 'a token within the tolerance is accepted');
    const closed = await client.waitClose(8000);
    const at = Date.now();
    assert.equal(closed.code, 4004);
    assert.ok(at >= exp + 3000 - 50, `closed ${exp + 3000 - at} ms before exp + tolerance, while a new connection with the token would still be accepted`);
  });
});

describe('the id alphabet', () => {
  let server: TestServer;
  let seats: Seats;
  before(async () => {
    server = await startServer();
    seats = new Seats(() => server, 'ids');
  });
  after(async () => {
    seats.closeAll();
    await server.stop();
  });

  const external = (sub: string) => signToken(EXTERNAL_SECRET, null, sub, { name: 'Ext' });

  it('refuses at the door a token whose sub is outside the alphabet (4500 on WebSocket, 401 on REST)', async () => {
    for (const sub of ['a\nb', 'with space', 'a/b', 'a,b', 'x'.repeat(129), 'tab\there', 'é']) {
      const token = await external(sub);
      const client = await RawClient.connect(server.wsUrl, token, { waitWelcome: false });
      assert.equal((await client.waitClose(5000)).code, 4500, JSON.stringify(sub));
      assert.equal(client.events.length, 0);
      const rest = await api(server, token, 'GET', '/api/v1/conversations');
      assert.deepEqual([rest.status, rest.body.error.code], [401, 'UNAUTHORIZED'], JSON.stringify(sub));
    }
  });

  it('serves users whose ids use every allowed punctuation, with typing kept from their own devices', async () => {
    const ids = [`auth0|${randomUUID()}`, `ann.lee+${randomUUID().slice(0, 8)}@example.com`, `tenant:42:${randomUUID().slice(0, 8)}`, `b64_${randomUUID().slice(0, 8)}-~=`];
    const [a, b] = [ids[0], ids[1]];
    const aPhone = await RawClient.connect(server.wsUrl, await external(a));
    const aLaptop = await RawClient.connect(server.wsUrl, await external(a));
    const bClient = await RawClient.connect(server.wsUrl, await external(b));
    for (const c of [aPhone, aLaptop, bClient]) assert.equal(c.events[0]?.event, 'welcome');
    const { conversation } = await aPhone.ok('direct.open', { userId: b });
    await aPhone.ok('typing', { conversationId: conversation.id, typing: true });
    assert.equal((await bClient.waitFor('typing', (d) => d.userId === a)).typing, true);
    await settle(aLaptop);
    assert.deepEqual(aLaptop.eventsOf('typing'), [], "a typing indicator is not sent to the typer's other devices");
    for (const id of ids.slice(2)) {
      const c = await RawClient.connect(server.wsUrl, await external(id));
      assert.equal((await c.waitFor('welcome')).user.id, id);
      c.close();
    }
    for (const c of [aPhone, aLaptop, bClient]) c.close();
  });

  it('answers INVALID_REQUEST to an id field outside the alphabet, on WebSocket, REST and the admin API', async () => {
    const seat = await seats.seat('checker');
    for (const bad of ['a b', 'a\nb', 'x'.repeat(129), 'a/b']) {
      assert.equal(await seat.client.errorCode('conversation.get', { conversationId: bad }), 'INVALID_REQUEST');
      assert.equal(await seat.client.errorCode('direct.open', { userId: bad }), 'INVALID_REQUEST');
      assert.equal(await seat.client.errorCode('presence.get', { userIds: ['ok', bad] }), 'INVALID_REQUEST');
      const path = encodeURIComponent(bad);
      const rest = await api(server, seat.user.token, 'GET', `/api/v1/conversations/${path}`);
      assert.deepEqual([rest.status, rest.body.error?.code], [400, 'INVALID_REQUEST'], JSON.stringify(bad));
      const ban = await api(server, ADMIN_TOKEN, 'POST', `/api/v1/admin/users/${path}/ban`);
      assert.deepEqual([ban.status, ban.body.error?.code], [400, 'INVALID_REQUEST'], JSON.stringify(bad));
    }
  });
});
