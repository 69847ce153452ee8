/**
 * Three Parley instances on one real PostgreSQL and one real Redis (test/helpers/cluster.ts), with nginx in front
 * running deploy/nginx.conf: what one instance does reaches every other, through the SDK, exactly once and in `seq`
 * order; a kick whose bus event was lost still stops delivery; an instance killed mid-traffic, and a rolling restart
 * behind nginx, lose nothing acknowledged.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import pg from 'pg';
import WebSocket from 'ws';
import { ParleyClient, type Message } from '../../packages/sdk/src/index.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { RawClient, until } from '../helpers/raw-client.js';
import { ADMIN_TOKEN, api, register } from '../helpers/server.js';

interface Seat {
  id: string;
  token: string;
  client: ParleyClient;
  messages: Message[];
  disconnects: number;
  /** The last disconnects (time, code, reason), for the report of a stalled run. */
  closes: string[];
  /** Why its sender stopped early (a send rejected), for the same report. */
  failure?: string;
}

let cluster: TestCluster;
const seats: Seat[] = [];

function connectSdk(url: string, user: { id: string; token: string }): Seat {
  const client = new ParleyClient({ url, token: user.token, WebSocket, backoff: { initialMs: 20, maxMs: 200 }, requestTimeoutMs: 10_000 });
  const seat: Seat = { ...user, client, messages: [], disconnects: 0, closes: [] };
  client.on('message', (m) => seat.messages.push(m));
  client.on('disconnect', (d) => {
    seat.disconnects++;
    seat.closes = [...seat.closes.slice(-2), `${new Date().toISOString().slice(11, 23)} ${d.code} ${d.reason}`];
  });
  seats.push(seat);
  return seat;
}

/** The seqs a seat delivered for one conversation, in delivery order. */
const seqsIn = (seat: Seat, conversationId: string): number[] => seat.messages.filter((m) => m.conversationId === conversationId).map((m) => m.seq);
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

/** Six users in one public group, each connected through the SDK to `urlOf(i)`. */
async function groupOfSix(prefix: string, urlOf: (i: number) => string): Promise<{ members: Seat[]; conversationId: string }> {
  const users = await Promise.all(Array.from({ length: 6 }, (_, i) => register(cluster.instances[0]!, `${prefix}-${i}`)));
  const members = users.map((u, i) => connectSdk(urlOf(i), u));
  await Promise.all(members.map((m) => m.client.connect()));
  const group = await members[0]!.client.request('conversation.create', { name: prefix, visibility: 'public' });
  const conversationId = group.conversation.id;
  for (const m of members.slice(1)) await m.client.request('conversation.join', { conversationId });
  return { members, conversationId };
}

/** Sends that may begin beyond the last progress target: traffic keeps flowing while a fault is being made. */
const SEND_AHEAD = 60;

/**
 * Every member sends, one message at a time, while `faults` runs; `progress(n)` inside it waits until n more sends
 * were acknowledged. Bounded by progress, not by time: sends begin only while fewer than the last target plus
 * SEND_AHEAD have begun, so a slow phase (a restart on a loaded machine) cannot use up the senders before the next
 * `progress`, and the total is at most the sum of the targets plus SEND_AHEAD plus one per member. Resolves with every
 * acknowledged message once the senders stopped.
 */
async function sendDuring(members: Seat[], conversationId: string, faults: (progress: (more: number) => Promise<void>) => Promise<void>): Promise<Message[]> {
  let sending = true;
  let begun = 0;
  let allowed = SEND_AHEAD;
  let wake = (): void => {};
  let raised = new Promise<void>((resolve) => (wake = resolve));
  const raise = (): void => {
    const wakeAll = wake;
    raised = new Promise<void>((resolve) => (wake = resolve));
    wakeAll();
  };
  const acked: Message[] = [];
  const senders = members.map(async (m, i) => {
    try {
      for (let k = 0; ; k++) {
        while (sending && begun >= allowed) await raised;
        if (!sending) return;
        begun++;
        acked.push(await m.client.send(conversationId, `${i}-${k}`));
      }
    } catch (err) {
      m.failure = `${(err as { code?: string }).code ?? ''} ${(err as Error).message}`;
      throw err;
    }
  });
  const progress = async (more: number): Promise<void> => {
    const target = acked.length + more;
    allowed = Math.max(allowed, target + SEND_AHEAD);
    raise();
    await until(() => acked.length >= target, `${more} more sends acknowledged`, 60_000, 20).catch((err: unknown) => {
      failureNotes.push(() => [`sends begun ${begun}, allowed ${allowed}, acknowledged ${acked.length}`, ...clientsReport(members)].join('\n'));
      throw err;
    });
  };
  try {
    await faults(progress);
  } finally {
    sending = false;
    raise();
    await Promise.all(senders);
  }
  return acked;
}

/** What each client was doing when sends stopped being acknowledged. */
function clientsReport(members: Seat[]): string[] {
  return members.map((m, i) => {
    const sends = m.client.pendingSends().map((p) => `${p.state}×${p.attempts}`).join(' ');
    return `member ${i}: ${m.client.state}, ${m.disconnects} disconnects [${m.closes.join('; ')}], pending: ${sends || 'none'}${m.failure ? `, sender stopped: ${m.failure}` : ''}`;
  });
}

/**
 * The instances' last warnings and errors, their connection, error and backpressure metrics, and nginx's last log
 * lines: printed when a test of this file fails.
 */
async function servicesReport(): Promise<string[]> {
  const lines: string[] = [];
  const shown = /^parley_(connections|closes_total|errors_total|outgoing_bytes|paused_connections|backpressure_pauses_total|store_ready)\b/;
  for (const [i, s] of cluster.instances.entries()) {
    const notable = s.logs.filter((l) => typeof l.level === 'number' && l.level >= 40).slice(-8);
    const metrics = await fetch(`${s.url}/metrics`, { signal: AbortSignal.timeout(2000) }).then((r) => r.text()).catch((err: Error) => `(no metrics: ${err.message})`);
    lines.push(`instance ${i} (port ${s.port}, exit ${s.process.exitCode ?? s.process.signalCode ?? 'running'}):`, ...notable.map((l) => `  ${JSON.stringify(l)}`),
      `  metrics: ${metrics.split('\n').filter((l) => shown.test(l)).join(' | ')}`);
  }
  if (cluster.nginx) {
    for (const file of ['access.log', 'error.log']) {
      const text = existsSync(join(cluster.nginx.folder, file)) ? readFileSync(join(cluster.nginx.folder, file), 'utf8') : '';
      lines.push(`nginx ${file} (last lines):`, ...text.trimEnd().split('\n').slice(-15).map((l) => `  ${l}`));
    }
  }
  return lines;
}

/** More to print if the running test fails (what its raw clients received, say); emptied before each test. */
let failureNotes: Array<() => string> = [];

/** `it`, printing the services' report (and the test's own notes) before a failure. */
function itReported(name: string, fn: (t: TestContext) => Promise<void>): void {
  it(name, { timeout: 150_000 }, async (t) => {
    failureNotes = [];
    try {
      await fn(t);
    } catch (err) {
      const notes = failureNotes.map((note) => note());
      process.stderr.write(`report of the failed test "${name}" at ${new Date().toISOString()}\n${[...notes, ...(await servicesReport())].join('\n')}\n`);
      throw err;
    }
  });
}

/** Each member ends with seqs 1..total of the conversation, each once, in order. */
async function assertConverged(members: Seat[], conversationId: string, total: number, timeoutMs = 60_000): Promise<void> {
  for (const [i, m] of members.entries()) {
    await until(() => seqsIn(m, conversationId).length >= total, `member ${i} has every acknowledged message`, timeoutMs, 20);
    assert.deepEqual(seqsIn(m, conversationId), range(total), `member ${i} (instance ${i % 3} when direct): each seq once, in order`);
  }
}

before(async () => {
  cluster = await startCluster({
    size: 3,
    nginx: true,
    env: {
      PARLEY_LIMITS_USER_MESSAGE_RATE_PER_SECOND: '10000',
      PARLEY_LIMITS_USER_MESSAGE_RATE_BURST: '10000',
      PARLEY_PRESENCE_TTL_MS: '3000',
      PARLEY_HEARTBEAT_INTERVAL_MS: '1000',
      // Reconciliation rounds often enough to fall inside the PostgreSQL outage below.
      PARLEY_BUS_RECONCILE_MS: '500',
    },
  });
});
after(async () => {
  for (const seat of seats) seat.client.close();
  await cluster?.stop();
});

/** One statement on the cluster's database, as an operator's tool would run it (no event on the bus). */
async function sql(url: string, text: string, values: unknown[]): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(text, values);
  } finally {
    await client.end();
  }
}

describe('a cluster of three instances on PostgreSQL and Redis', () => {
  itReported('delivers a group burst sent from every instance to every member on every instance, exactly once, in seq order', async () => {
    const { members, conversationId } = await groupOfSix('cluster', (i) => cluster.instances[i % 3]!.wsUrl);
    const PER_MEMBER = 15;
    await Promise.all(members.map((m, i) => Promise.all(Array.from({ length: PER_MEMBER }, (_, k) => m.client.send(conversationId, `m${i}-${k}`)))));
    await assertConverged(members, conversationId, members.length * PER_MEMBER, 30_000);
  });

  itReported('opens a direct conversation across instances and delivers its first messages', async () => {
    const [a, , c] = cluster.instances;
    const [ann, bob] = await Promise.all([register(a!, 'cluster-dm-ann'), register(a!, 'cluster-dm-bob')]);
    const annSeat = connectSdk(a!.wsUrl, ann);
    const bobSeat = connectSdk(c!.wsUrl, bob);
    await Promise.all([annSeat.client.connect(), bobSeat.client.connect()]);
    const first = await annSeat.client.send({ to: bob.id }, 'first across');
    await annSeat.client.send(first.conversationId, 'second across');
    await until(() => seqsIn(bobSeat, first.conversationId).length >= 2, 'bob has both messages', 15_000, 20);
    assert.deepEqual(seqsIn(bobSeat, first.conversationId), [1, 2]);
  });

  itReported('carries edits, deletes, read receipts and typing from one instance to the others', async () => {
    const [a, b, c] = cluster.instances;
    const [ann, bob, cat] = await Promise.all(['cluster-ev-ann', 'cluster-ev-bob', 'cluster-ev-cat'].map((n) => register(a!, n)));
    const annWs = await RawClient.connect(a!.wsUrl, ann.token);
    const bobWs = await RawClient.connect(b!.wsUrl, bob.token);
    const catWs = await RawClient.connect(c!.wsUrl, cat.token);
    try {
      const { conversation } = await annWs.ok('conversation.create', { name: 'events across', visibility: 'public' });
      const conversationId = conversation.id;
      await bobWs.ok('conversation.join', { conversationId });
      await catWs.ok('conversation.join', { conversationId });
      const sent = await annWs.ok('message.send', { conversationId, key: 'ev-1', text: 'draft' });
      await annWs.ok('message.edit', { conversationId, seq: sent.seq, text: 'final' });
      const edited = await bobWs.waitFor('message.updated', (m) => m.seq === sent.seq && m.text === 'final', 10_000);
      assert.ok(edited.editedAt, 'the edit carries its time');
      await catWs.waitFor('message.updated', (m) => m.seq === sent.seq && m.text === 'final', 10_000);
      await bobWs.ok('read.mark', { conversationId, seq: sent.seq });
      await annWs.waitFor('read', (r) => r.userId === bob.id && r.seq === sent.seq, 10_000);
      await catWs.ok('typing', { conversationId, typing: true });
      await annWs.waitFor('typing', (t) => t.userId === cat.id && t.typing, 10_000);
      await bobWs.waitFor('typing', (t) => t.userId === cat.id && t.typing, 10_000);
      await annWs.ok('message.delete', { conversationId, seq: sent.seq });
      await catWs.waitFor('message.updated', (m) => m.seq === sent.seq && m.deleted === true, 10_000);
      await bobWs.waitFor('message.updated', (m) => m.seq === sent.seq && m.deleted === true, 10_000);
    } finally {
      annWs.close();
      bobWs.close();
      catWs.close();
    }
  });

  itReported('refuses removals of access while the bus is down; removals no event carried hold once the bus is back', async () => {
    const [a, b, c] = cluster.instances;
    const [owner, kept, kicked] = await Promise.all(['cluster-owner', 'cluster-kept', 'cluster-kicked'].map((n) => register(a!, n)));
    const ownerWs = await RawClient.connect(a!.wsUrl, owner.token);
    const keptWs = await RawClient.connect(b!.wsUrl, kept.token);
    const kickedWs = await RawClient.connect(c!.wsUrl, kicked.token);
    const received = (name: string, ws: RawClient) => () =>
      `${name} received: ${ws.events.map((e) => `${e.event}${e.data?.seq !== undefined ? `#${e.data.seq}` : ''}`).join(' ')}; closed ${JSON.stringify(ws.closed)}`;
    failureNotes.push(received('owner (instance 0)', ownerWs), received('kept (instance 1)', keptWs), received('kicked (instance 2)', kickedWs));
    try {
      const { conversation } = await ownerWs.ok('conversation.create', { name: 'kick across', visibility: 'public' });
      await keptWs.ok('conversation.join', { conversationId: conversation.id });
      await kickedWs.ok('conversation.join', { conversationId: conversation.id });
      const before = await ownerWs.ok('message.send', { conversationId: conversation.id, key: 'k-before', text: 'before' });
      await kickedWs.waitFor('message.new', (m) => m.id === before.id, 10_000);
      await cluster.redis.stop();
      // Through nginx, /readyz passes each instance's 503 on (with its reason), never nginx's own 502 for upstreams it
      // took out: a 503 is an answer, not a failure to reach the instance.
      const statuses: number[] = [];
      await until(async () => {
        statuses.push((await fetch(`${cluster.nginx!.url}/readyz`)).status);
        return statuses.filter((s) => s === 503).length >= 6;
      }, 'nginx passes on six 503s from /readyz', 20_000, 50);
      assert.deepEqual([...new Set(statuses)].filter((s) => s !== 200 && s !== 503), [], `statuses seen: ${statuses.join(',')}`);
      // Removals of access are refused while the bus does not take publishes (nothing stored): their event is what
      // stops delivery on instance c.
      for (const [what, call] of [
        ['kick', () => api(a!, owner.token, 'DELETE', `/api/v1/conversations/${conversation.id}/members/${kicked.id}`)],
        ['leave', () => api(a!, kicked.token, 'POST', `/api/v1/conversations/${conversation.id}/leave`)],
        ['account ban', () => api(a!, ADMIN_TOKEN, 'POST', `/api/v1/admin/users/${kicked.id}/ban`)],
      ] as const) {
        const refused = await call();
        assert.deepEqual([refused.status, refused.body.error?.code], [503, 'UNAVAILABLE'], `${what}: ${JSON.stringify(refused.body)}`);
      }
      // A removal whose event no instance ever carries (as when the instance that stored it dies before publishing):
      // written to the database directly while the bus is down. The reset after Redis is back finds it in the store.
      await sql(cluster.databaseUrl, `DELETE FROM members WHERE conversation_id = $1 AND user_id = $2`, [conversation.id, kicked.id]);
      await sql(cluster.databaseUrl, `UPDATE conversations SET member_count = member_count - 1 WHERE id = $1`, [conversation.id]);
      await cluster.redis.start();
      // Back: every instance re-reads its users' conversations and tells their connections to resync.
      await kickedWs.waitFor('resync', () => true, 30_000);
      await keptWs.waitFor('resync', () => true, 30_000);
      // Every instance publishing again (its publisher connection reconnects on its own schedule, after the subscriber
      // may have: an event it fails to publish before that is owed a resync, test/e2e/lost-publishes.test.ts), so the
      // message below is delivered live.
      await until(async () => (await Promise.all(cluster.instances.map((i) => fetch(`${i.url}/readyz`).then((r) => r.status)))).every((s) => s === 200),
        'every instance ready again', 30_000, 50);
      const afterKick = await ownerWs.ok('message.send', { conversationId: conversation.id, key: 'k-after', text: 'after the removal' });
      await keptWs.waitFor('message.new', (m) => m.id === afterKick.id, 10_000);
      // Ordered after the message on every instance's bus: a marker in a conversation the kicked user is still in.
      const marker = await ownerWs.ok('message.send', { to: kicked.id, key: 'k-marker', text: 'marker' });
      await kickedWs.waitFor('message.new', (m) => m.id === marker.id, 10_000);
      assert.equal(kickedWs.eventsOf('message.new').filter((m) => m.id === afterKick.id).length, 0, 'the removed member got nothing after its removal');
      assert.equal(kickedWs.closed, null, 'its connection stayed open through the reset');

      // An account ban no event carries (written directly while Redis is down): the reset finds the ban.
      await cluster.redis.stop();
      await sql(cluster.databaseUrl, `UPDATE users SET banned = true WHERE id = $1`, [kicked.id]);
      assert.equal(kickedWs.closed, null, 'not closed while the bus is down (its instance never heard of the ban)');
      await cluster.redis.start();
      assert.equal((await kickedWs.waitClose(30_000)).code, 4502, 'closed as banned once the bus is back');
    } finally {
      if (!cluster.redis.running) await cluster.redis.start();
      ownerWs.close();
      keptWs.close();
      kickedWs.close();
    }
  });

  itReported('converges every member after Redis restarts mid-traffic: nothing acknowledged lost or duplicated', async (test) => {
    const { members, conversationId } = await groupOfSix('cluster-redis', (i) => cluster.instances[i % 3]!.wsUrl);
    const acked = await sendDuring(members, conversationId, async (progress) => {
      await progress(30);
      await cluster.redis.stop();
      await progress(10); // stored and acknowledged while their events cannot be published
      await cluster.redis.start();
      await progress(30);
    });
    const total = acked.length;
    test.diagnostic(`${total} sends acknowledged across a Redis restart`);
    assert.deepEqual(acked.map((m) => m.seq).sort((x, y) => x - y), range(total));
    await assertConverged(members, conversationId, total);
  });

  itReported('answers sends with a retryable error while PostgreSQL restarts, and the SDK stores each exactly once', async (test) => {
    const [a, b] = cluster.instances;
    const [ann, bob] = await Promise.all([register(a!, 'cluster-pg-ann'), register(a!, 'cluster-pg-bob')]);
    const annSeat = connectSdk(a!.wsUrl, ann);
    const bobSeat = connectSdk(b!.wsUrl, bob);
    await Promise.all([annSeat.client.connect(), bobSeat.client.connect()]);
    const group = await annSeat.client.request('conversation.create', { name: 'pg restart', visibility: 'public' });
    const conversationId = group.conversation.id;
    await bobSeat.client.request('conversation.join', { conversationId });
    const failures: string[] = [];
    annSeat.client.on('error', (e: any) => failures.push(String(e?.code ?? e)));
    const COUNT = 60;
    // A connection set up before the outage (a new one cannot be: its setup reads the store, and is closed 4005).
    const raw = await RawClient.connect(b!.wsUrl, bob.token);
    const sends = Array.from({ length: COUNT }, (_, k) => annSeat.client.send(conversationId, `pg ${k}`));
    await cluster.postgres.stop();
    try {
      const refused = await raw.request('message.send', { conversationId, key: 'while-down', text: 'while down' }, 15_000);
      assert.equal(refused.error?.code, 'UNAVAILABLE', JSON.stringify(refused));
      assert.equal(refused.error?.temporary, true, 'documented as retryable');
      // A reconciliation round that cannot read the store keeps the connections it could not check.
      const since = b!.logs.length;
      await until(() => b!.logs.slice(since).some((l) => String(l.msg).startsWith('reconciliation could not read')), 'a round that could not read', 15_000, 20);
      assert.equal(raw.closed, null, 'an established connection stays open while the store is down');
    } finally {
      raw.close();
      await cluster.postgres.start();
    }
    const stored = await Promise.all(sends);
    assert.deepEqual(stored.map((m) => m.seq).sort((x, y) => x - y), range(COUNT), 'each send stored once, no gap');
    await until(() => seqsIn(bobSeat, conversationId).length >= COUNT, 'bob has every message', 30_000, 20);
    assert.deepEqual(seqsIn(bobSeat, conversationId), range(COUNT));
    test.diagnostic(`client errors reported meanwhile: ${failures.length}`);
  });

  itReported('loses nothing acknowledged when an instance is killed mid-traffic and the others restart one at a time behind nginx', async (test) => {
    const nginx = cluster.nginx!;
    const { members, conversationId } = await groupOfSix('cluster-roll', () => nginx.wsUrl);
    const acked = await sendDuring(members, conversationId, async (progress) => {
      await progress(30);
      await cluster.instances[1]!.kill('SIGKILL');
      await progress(30);
      await cluster.restart(1);
      for (const i of [0, 2, 1]) {
        await cluster.instances[i]!.stop(); // SIGTERM: drain, 4000 to its clients
        await progress(20);
        await cluster.restart(i);
        await progress(20);
      }
    });
    const total = acked.length;
    const disconnects = members.reduce((sum, m) => sum + m.disconnects, 0);
    test.diagnostic(`${total} sends acknowledged across a kill and three restarts; ${disconnects} client disconnects`);
    // Every instance went down at least once, so every client lost its instance and came back through nginx.
    for (const [i, m] of members.entries()) assert.ok(m.disconnects >= 1, `member ${i} was disconnected at least once`);
    assert.deepEqual(acked.map((m) => m.seq).sort((x, y) => x - y), range(total), 'every acknowledged send has its own seq, no gap');
    await assertConverged(members, conversationId, total);
  });
});
