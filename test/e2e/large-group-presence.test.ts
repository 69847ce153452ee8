import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { RawClient, until } from '../helpers/raw-client.js';
import { settle } from '../helpers/seats.js';
import { api, EXTERNAL_SECRET, signToken, startServer, type TestServer } from '../helpers/server.js';

/**
 * Presence and membership traffic in a large group grow with what a connection shows, not with the group: presence is
 * pushed for direct conversations and groups up to presence.maxGroupSize, otherwise only to presence.subscribe
 * watchers; joins of a group above membership.summaryAbove arrive as member.summary per window. Sizes fit CI: a group
 * of MEMBERS with both thresholds at SMALL (the bench, `npm run bench:presence`, gives the 10,000-member figure).
 */
const MEMBERS = 200;
const SMALL = 5;
const MAX_SUBSCRIPTIONS = 4;
const MEMBERSHIP_BATCH_MS = 100;

interface Member {
  id: string;
  token: string;
}

/** The UTF-8 JSON size of the frames of these events a client received since `mark`. */
function bytesOf(client: RawClient, mark: number, match: (e: { event: string; data: any }) => boolean): { frames: number; bytes: number } {
  const matched = client.events.slice(mark).filter(match);
  return { frames: matched.length, bytes: matched.reduce((n, e) => n + Buffer.byteLength(JSON.stringify(e)), 0) };
}

const isMembership = (e: { event: string }): boolean => e.event.startsWith('member.');

describe('presence and membership in a large group', () => {
  let server: TestServer;
  const clients: RawClient[] = [];
  const connect = async (token: string): Promise<RawClient> => {
    const client = await RawClient.connect(server.wsUrl, token);
    clients.push(client);
    return client;
  };
  const member = async (label: string): Promise<Member> => {
    const id = `lg-${label}-${randomUUID().slice(0, 8)}`;
    return { id, token: await signToken(EXTERNAL_SECRET, null, id, { name: label }) };
  };

  before(async () => {
    server = await startServer({
      PARLEY_PRESENCE_MAX_GROUP_SIZE: String(SMALL),
      PARLEY_PRESENCE_MAX_SUBSCRIPTIONS: String(MAX_SUBSCRIPTIONS),
      PARLEY_MEMBERSHIP_SUMMARY_ABOVE: String(SMALL),
      PARLEY_MEMBERSHIP_BATCH_MS: String(MEMBERSHIP_BATCH_MS),
      PARLEY_LIMITS_CONNECTION_RATE_BURST: '1000',
    });
  });
  after(async () => {
    for (const client of clients.splice(0)) client.close();
    await server.stop();
  });

  it(`bounds the presence and membership bytes a watcher receives while ${MEMBERS} members join and connect`, async () => {
    const owner = await member('owner');
    const observer = await connect(owner.token);
    const { conversation } = await observer.ok('conversation.create', { name: `large ${randomUUID().slice(0, 8)}`, visibility: 'public' });
    const members = await Promise.all(Array.from({ length: MEMBERS }, (_, i) => member(`m${i}`)));

    // Joins over REST: N joins would be N member.joined frames to every member; above summaryAbove they are summed.
    const joinMark = observer.events.length;
    for (let i = 0; i < members.length; i += 20) {
      const statuses = await Promise.all(members.slice(i, i + 20).map((m) => api(server, m.token, 'POST', `/api/v1/conversations/${conversation.id}/join`)));
      assert.deepEqual(statuses.map((r) => r.status).filter((s) => s !== 200), [], 'every join succeeds');
    }
    // A join is announced by the group's size when it is announced: the first few (up to SMALL members) one by one,
    // the rest summed. A window's memberCount is read when it closes, so it may count joins the next window reports.
    const summariesSince = () => observer.events.slice(joinMark).filter((e) => e.event === 'member.summary').map((e) => e.data);
    const singles = () => observer.events.slice(joinMark).filter((e) => e.event === 'member.joined').length;
    await until(() => singles() + summariesSince().reduce((n, s) => n + s.joined, 0) >= MEMBERS, 'every join announced', 10_000);
    const summaries = summariesSince();
    assert.equal(singles() + summaries.reduce((n, s) => n + s.joined, 0), MEMBERS, 'every join announced once');
    assert.ok(singles() <= SMALL - 1, `member.joined only while the group had at most ${SMALL} members (${singles()})`);
    assert.equal(summaries.at(-1).memberCount, MEMBERS + 1);
    assert.ok(summaries.every((s) => s.conversationId === conversation.id && s.left === 0));
    const membership = bytesOf(observer, joinMark, isMembership);
    // Summaries are one frame per window (~100 B), not one per join (~200 B each, 40 KB for 200 joins).
    assert.ok(membership.bytes <= 150 * summaries.length + 300 * singles() && summaries.length <= MEMBERS / 4, `membership: ${membership.frames} frames, ${membership.bytes} B`);

    // The observer shows the last few members to connect: it subscribes to them, and to no one else.
    const watched = members.slice(-3).map((m) => m.id);
    const subscribed = await observer.ok('presence.subscribe', { userIds: watched });
    assert.equal(subscribed.subscribed, watched.length);
    assert.deepEqual(subscribed.users.map((u: any) => [u.userId, u.online]).sort(), watched.map((id) => [id, false]).sort());

    const presenceMark = observer.events.length;
    for (let i = 0; i < members.length; i += 20) await Promise.all(members.slice(i, i + 20).map((m) => connect(m.token)));
    // The watched members connect last: once all three are reported, every earlier presence window was flushed too.
    await until(() => {
      const online = new Set(observer.events.slice(presenceMark).filter((e) => e.event === 'presence').flatMap((e) => e.data.users).filter((u: any) => u.online).map((u: any) => u.userId));
      return watched.every((id) => online.has(id));
    }, 'presence of the watched members', 10_000);
    await settle(observer);
    const presence = observer.events.slice(presenceMark).filter((e) => e.event === 'presence');
    const reported = new Set(presence.flatMap((e) => e.data.users.map((u: any) => u.userId)));
    assert.deepEqual([...reported].sort(), [...watched].sort(), 'presence of the watched members only');
    assert.ok(presence.every((e) => e.data.conversationId === undefined), 'subscription events carry no conversationId');
    const presenceBytes = bytesOf(observer, presenceMark, (e) => e.event === 'presence');
    // Each watched member once (~110 B a frame); pushing to the group would be ~MEMBERS entries of ~70 B.
    assert.ok(presenceBytes.bytes <= 150 * watched.length, `presence: ${presenceBytes.frames} frames, ${presenceBytes.bytes} B`);

    // A member of the large group received no presence of the others either (nor member.joined of later joiners).
    const last = clients.at(-1)!;
    await settle(last);
    assert.equal(last.eventsOf('presence').length, 0);
  });

  it('pushes presence to members of a small group and of a direct conversation without a subscription', async () => {
    const [a, b, c] = await Promise.all(['sa', 'sb', 'sc'].map((l) => member(l)));
    const ca = await connect(a.token);
    const { conversation } = await ca.ok('conversation.create', { name: `small ${randomUUID().slice(0, 8)}`, visibility: 'public' });
    const cb = await connect(b.token);
    await cb.ok('conversation.join', { conversationId: conversation.id });
    await ca.waitFor('member.joined', (d) => d.member.userId === b.id, 2000);
    const cc = await connect(c.token); // a product user exists once it connected
    const { conversation: direct } = await ca.ok('direct.open', { userId: c.id });
    const mark = ca.events.length;
    cc.close();
    const dm = await ca.waitFor('presence', (d) => d.users.some((u: any) => u.userId === c.id && !u.online), 3000);
    assert.equal(dm.conversationId, direct.id, 'a direct peer is pushed with the conversation');
    cb.close();
    const small = await ca.waitFor('presence', (d) => d.conversationId === conversation.id && d.users.some((u: any) => u.userId === b.id && !u.online), 3000);
    assert.ok(small);
    assert.ok(ca.events.slice(mark).every((e) => e.event !== 'presence' || e.data.conversationId !== undefined));
  });

  it('refuses subscriptions past presence.maxSubscriptions (nothing subscribed), leaves out strangers, and unsubscribes', async () => {
    const owner = await member('sub-owner');
    const client = await connect(owner.token);
    const { conversation } = await client.ok('conversation.create', { name: `subs ${randomUUID().slice(0, 8)}`, visibility: 'public' });
    const peers = await Promise.all(Array.from({ length: MAX_SUBSCRIPTIONS + 1 }, (_, i) => member(`p${i}`)));
    for (const p of peers) assert.equal((await api(server, p.token, 'POST', `/api/v1/conversations/${conversation.id}/join`)).status, 200);
    const stranger = await member('stranger');

    const first = await client.ok('presence.subscribe', { userIds: [peers[0]!.id, stranger.id, peers[0]!.id] });
    assert.deepEqual(first.users.map((u: any) => u.userId), [peers[0]!.id], 'a stranger is left out, a repeat counted once');
    assert.equal(first.subscribed, 1);

    const over = await client.request('presence.subscribe', { userIds: peers.map((p) => p.id) });
    assert.equal(over.error?.code, 'LIMIT_EXCEEDED');
    assert.deepEqual(over.error.details, { max: MAX_SUBSCRIPTIONS, subscribed: 1 });
    const again = await client.ok('presence.subscribe', { userIds: [peers[0]!.id] });
    assert.equal(again.subscribed, 1, 'the refused request subscribed nothing');

    assert.equal((await client.request('presence.subscribe', { userIds: [] })).error?.code, 'INVALID_REQUEST');
    assert.equal((await client.request('presence.subscribe', { userIds: 'x' })).error?.code, 'INVALID_REQUEST');
    assert.equal((await client.request('presence.unsubscribe', { userIds: [42] })).error?.code, 'INVALID_REQUEST');

    assert.deepEqual(await client.ok('presence.unsubscribe', { userIds: [peers[0]!.id, stranger.id] }), { subscribed: 0 });
    // Unsubscribed: the peer's connecting is not pushed (a ping after the presence window shows nothing came).
    const mark = client.events.length;
    const peer = await connect(peers[0]!.token);
    const watched = await client.ok('presence.subscribe', { userIds: [peers[1]!.id] });
    assert.equal(watched.subscribed, 1);
    const p1 = await connect(peers[1]!.token);
    await client.waitFor('presence', (d) => d.users.some((u: any) => u.userId === peers[1]!.id && u.online), 3000);
    await settle(client);
    const reported = client.events.slice(mark).filter((e) => e.event === 'presence').flatMap((e) => e.data.users.map((u: any) => u.userId));
    assert.ok(!reported.includes(peers[0]!.id), 'an unsubscribed user is not pushed');
    peer.close();
    p1.close();
  });

  it('judges concurrent joins and leaves each by the size its own change left, as one at a time would', async () => {
    const owner = await member('race-owner');
    const client = await connect(owner.token);
    const { conversation } = await client.ok('conversation.create', { name: `race ${randomUUID().slice(0, 8)}`, visibility: 'public' });
    const joiners = await Promise.all(Array.from({ length: 30 }, (_, i) => member(`r${i}`)));
    const path = (action: string) => `/api/v1/conversations/${conversation.id}/${action}`;
    const count = (event: string, from = 0) => client.events.slice(from).filter((e) => e.event === event).length;
    const summed = (key: 'joined' | 'left', from = 0) =>
      client.events.slice(from).filter((e) => e.event === 'member.summary').reduce((n, e) => n + (e.data[key] as number), 0);
    // All at once: each join's size after it is 2..31 once, so the joins into a group of SMALL or fewer (sizes 2..SMALL)
    // are told one by one and the rest summarised. Judged by a count read after all of them, none was told (outside
    // check: 0 of 1,000 concurrent joins, and 80 concurrent leaves from 151 all told one by one).
    const joins = await Promise.all(joiners.map((j) => api(server, j.token, 'POST', path('join'))));
    assert.deepEqual(joins.map((r) => r.status), joiners.map(() => 200));
    await until(() => count('member.joined') + summed('joined') === joiners.length, 'every join told once', 10_000);
    assert.equal(count('member.joined'), SMALL - 1);
    const mark = client.events.length;
    const leaves = await Promise.all(joiners.map((j) => api(server, j.token, 'POST', path('leave'))));
    assert.deepEqual(leaves.map((r) => r.status), joiners.map(() => 200));
    // Sizes before the departures are 31..2: those from a group above SMALL are summarised, the last SMALL − 1 told.
    await until(() => count('member.left', mark) + summed('left', mark) === joiners.length, 'every departure told once', 10_000);
    assert.equal(count('member.left', mark), SMALL - 1);
  });

  it('summarises departures of a large group with member.summary (left count)', async () => {
    const owner = await member('leave-owner');
    const client = await connect(owner.token);
    const { conversation } = await client.ok('conversation.create', { name: `leave ${randomUUID().slice(0, 8)}`, visibility: 'public' });
    const joiners = await Promise.all(Array.from({ length: SMALL + 3 }, (_, i) => member(`l${i}`)));
    for (const j of joiners) assert.equal((await api(server, j.token, 'POST', `/api/v1/conversations/${conversation.id}/join`)).status, 200);
    // Joined one at a time: a join is summarised once the group is above SMALL members (the owner is one of them).
    await until(() => client.eventsOf('member.summary').reduce((n, s) => n + s.joined, 0) === joiners.length - (SMALL - 1), 'joins summarised', 5000);
    const mark = client.events.length;
    for (const j of joiners.slice(0, 2)) assert.equal((await api(server, j.token, 'POST', `/api/v1/conversations/${conversation.id}/leave`)).status, 200);
    await client.ok('member.kick', { conversationId: conversation.id, userId: joiners[2]!.id });
    // The size before a departure decides: SMALL + 1 → SMALL is summarised, SMALL → SMALL − 1 is announced.
    assert.equal((await api(server, joiners[3]!.token, 'POST', `/api/v1/conversations/${conversation.id}/leave`)).status, 200);
    await until(() => client.events.slice(mark).filter((e) => e.event === 'member.summary').reduce((n, e) => n + e.data.left, 0) === 4, 'four departures summarised', 5000);
    const events = client.events.slice(mark);
    assert.equal(events.filter((e) => e.event === 'member.left').length, 0);
    assert.equal(events.filter((e) => e.event === 'member.summary').at(-1)!.data.memberCount, SMALL);
    assert.equal((await api(server, joiners[4]!.token, 'POST', `/api/v1/conversations/${conversation.id}/leave`)).status, 200);
    const left = await client.waitFor('member.left', (d) => d.userId === joiners[4]!.id, 5000);
    assert.equal(left.conversationId, conversation.id);
    // Who joined and left is still in member.list.
    const { members } = await client.ok('member.list', { conversationId: conversation.id });
    assert.equal(members.length, SMALL - 1);
  });
});

describe('read positions in a large group', () => {
  let server: TestServer;
  const clients: RawClient[] = [];
  before(async () => {
    server = await startServer({ PARLEY_MEMBERSHIP_SUMMARY_ABOVE: '3' });
  });
  after(async () => {
    for (const client of clients.splice(0)) client.close();
    await server.stop();
  });
  const seat = async (label: string): Promise<{ id: string; client: RawClient; token: string }> => {
    const id = `rd-${label}-${randomUUID().slice(0, 8)}`;
    const token = await signToken(EXTERNAL_SECRET, null, id, { name: label });
    const client = await RawClient.connect(server.wsUrl, token);
    clients.push(client);
    return { id, client, token };
  };

  it('tells only the reader’s own devices in a group above summaryAbove; every member in a small group', async () => {
    const [owner, reader, other] = await Promise.all(['owner', 'reader', 'other'].map(seat));
    const { conversation } = await owner!.client.ok('conversation.create', { name: `reads ${randomUUID().slice(0, 8)}`, visibility: 'public' });
    for (const s of [reader!, other!]) await s.client.ok('conversation.join', { conversationId: conversation.id });
    const message = await owner!.client.ok('message.send', { conversationId: conversation.id, key: 'k1', text: 'hi' });
    // 3 members: not above 3, so every member is told.
    await reader!.client.ok('read.mark', { conversationId: conversation.id, seq: message.seq });
    await other!.client.waitFor('read', (d) => d.userId === reader!.id, 3000);

    const fourth = await seat('fourth');
    await fourth.client.ok('conversation.join', { conversationId: conversation.id }); // 4 members: above 3
    const secondDevice = await RawClient.connect(server.wsUrl, reader!.token);
    clients.push(secondDevice);
    const next = await owner!.client.ok('message.send', { conversationId: conversation.id, key: 'k2', text: 'again' });
    const mark = other!.client.events.length;
    const readerMark = reader!.client.events.length;
    await reader!.client.ok('read.mark', { conversationId: conversation.id, seq: next.seq });
    await secondDevice.waitFor('read', (d) => d.userId === reader!.id && d.seq === next.seq, 3000);
    await settle(other!.client);
    await settle(reader!.client);
    assert.equal(other!.client.events.slice(mark).filter((e) => e.event === 'read').length, 0, 'another member is not told');
    // The reading connection has its reply; an event besides would be a duplicate.
    assert.equal(reader!.client.events.slice(readerMark).filter((e) => e.event === 'read').length, 0, 'the reading connection is not told again');
    const { members } = await other!.client.ok('member.list', { conversationId: conversation.id });
    assert.equal(members.find((m: any) => m.userId === reader!.id).readSeq, next.seq, 'the position is in member.list');
  });
});
