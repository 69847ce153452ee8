import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RawClient, sleep } from '../helpers/raw-client.js';
import { register, startServer, type TestServer } from '../helpers/server.js';

const TTL_MS = 500;
const THROTTLE_MS = 200;
const BATCH_MS = 50;

type User = { id: string; name: string; token: string };

/** Typing events a client received since a mark (an index into its events). */
const typingSince = (client: RawClient, mark: number, conversationId: string): any[] =>
  client.events.slice(mark).filter((e) => e.event === 'typing' && e.data.conversationId === conversationId).map((e) => e.data);

/**
 * Wait until `client` has received, since `mark`, an event that `match` accepts; bounded. Tests wait for what they
 * check: an assertion about events never runs before the events it is about could have arrived.
 */
async function eventSince(client: RawClient, mark: number, event: string, match: (data: any) => boolean, timeoutMs = 2000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = client.events.slice(mark).find((e) => e.event === event && match(e.data));
    if (found) return found.data;
    if (Date.now() > deadline) throw new Error(`no matching ${event} event within ${timeoutMs} ms`);
    await sleep(5);
  }
}

/** Resolve at the given Date.now() — for properties about time itself (a ttl, a throttle), never to let things settle. */
const until = (at: number): Promise<void> => sleep(Math.max(0, at - Date.now()));

describe('typing and presence', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({
      PARLEY_TYPING_TTL_MS: String(TTL_MS),
      PARLEY_TYPING_THROTTLE_MS: String(THROTTLE_MS),
      PARLEY_PRESENCE_BATCH_MS: String(BATCH_MS),
    });
  });
  after(async () => {
    await server.stop();
  });

  describe('typing', () => {
    let alice: User;
    let bob: User;
    let carol: User;
    let conversationId: string;
    let phone: RawClient; // alice
    let laptop: RawClient; // alice
    let b: RawClient;
    let c: RawClient;
    let barriers = 0;
    before(async () => {
      [alice, bob, carol] = await Promise.all(['typing-alice', 'typing-bob', 'typing-carol'].map((n) => register(server, n)));
      phone = await RawClient.connect(server.wsUrl, alice.token);
      laptop = await RawClient.connect(server.wsUrl, alice.token);
      b = await RawClient.connect(server.wsUrl, bob.token);
      c = await RawClient.connect(server.wsUrl, carol.token);
      conversationId = (await phone.ok('conversation.create', { name: 'typing room' })).conversation.id;
      await b.ok('conversation.join', { conversationId });
      await c.ok('conversation.join', { conversationId });
    });
    after(() => {
      for (const client of [phone, laptop, b, c]) client.close();
    });

    /** Alice's typing events a client received since a mark. */
    const alicesSince = (client: RawClient, mark: number): any[] => typingSince(client, mark, conversationId).filter((d) => d.userId === alice.id);

    /**
     * Carol sends a message and each observer waits for it. Events of a conversation reach a connection in the order
     * the server published them, so anything about alice published before it has arrived once the message has: only
     * then may a test assert that something did NOT arrive.
     */
    const barrier = async (...observers: RawClient[]): Promise<void> => {
      const message = await c.ok('message.send', { conversationId, key: `barrier-${++barriers}`, text: 'barrier' });
      // The sending connection gets the receipt, not the event: a round trip on it is its barrier.
      for (const observer of observers) await (observer === c ? observer.ok('ping') : observer.waitFor('message.new', (m) => m.id === message.id, 2000));
    };

    /**
     * Wait for alice's typing to stop by itself (after a test that left it running). Bob's copy arriving means carol's
     * was queued in the same fan-out; a barrier that carol observes then puts it behind her, so the next test's marks
     * on carol's stream start clean.
     */
    const stopped = async (mark: number): Promise<any> => {
      const stop = await eventSince(b, mark, 'typing', (d) => d.conversationId === conversationId && d.userId === alice.id && !d.typing, TTL_MS * 4);
      await barrier(c);
      return stop;
    };

    it("forwards typing: true to the other members, not to the typer's own connections, with expiresInMs", async () => {
      const marks = [b, c, phone, laptop].map((x) => x.events.length);
      assert.deepEqual(await phone.ok('typing', { conversationId, typing: true }), {});
      const seenByBob = await eventSince(b, marks[0], 'typing', (d) => d.conversationId === conversationId && d.typing);
      assert.deepEqual(seenByBob, { conversationId, userId: alice.id, typing: true, expiresInMs: TTL_MS });
      await eventSince(c, marks[1], 'typing', (d) => d.conversationId === conversationId && d.userId === alice.id && d.typing);
      await barrier(phone, laptop);
      assert.deepEqual(alicesSince(phone, marks[2]), [], 'not echoed to the typing device');
      assert.deepEqual(alicesSince(laptop, marks[3]), [], "not sent to the typer's other devices");
      await stopped(marks[0]);
    });

    it('does not forward a repeated typing: true within the throttle, but forwards one after it', async () => {
      const mark = b.events.length;
      await phone.ok('typing', { conversationId, typing: true });
      const firstAt = Date.now(); // after the reply: the server's throttle window cannot start later
      for (let i = 0; i < 4; i++) await phone.ok('typing', { conversationId, typing: true });
      await eventSince(b, mark, 'typing', (d) => d.userId === alice.id && d.typing);
      await barrier(b);
      assert.equal(alicesSince(b, mark).filter((d) => d.typing).length, 1, 'one start, however many refreshes');
      await until(firstAt + THROTTLE_MS + 20);
      const secondMark = b.events.length;
      await phone.ok('typing', { conversationId, typing: true });
      await eventSince(b, secondMark, 'typing', (d) => d.userId === alice.id && d.typing);
      await barrier(b);
      assert.equal(alicesSince(b, mark).filter((d) => d.typing).length, 2, 'forwarded again after the throttle');
      assert.equal(alicesSince(b, mark).filter((d) => !d.typing).length, 0, 'refreshes kept it alive');
      await stopped(secondMark);
    });

    it('forwards typing: true at once when it follows a stop within the throttle', async () => {
      const mark = b.events.length;
      await phone.ok('typing', { conversationId, typing: true });
      await phone.ok('typing', { conversationId, typing: false });
      await phone.ok('typing', { conversationId, typing: true });
      // Answered before the throttle could have passed again: the second start was forwarded because it is news.
      await eventSince(b, mark, 'typing', (d) => d.userId === alice.id && !d.typing);
      await barrier(b);
      const seen = alicesSince(b, mark).map((d) => d.typing);
      assert.deepEqual(seen, [true, false, true], 'start, stop, start again');
      const endMark = b.events.length;
      await phone.ok('typing', { conversationId, typing: false });
      await stopped(endMark);
    });

    it('sends typing: false by itself about ttl after the last typing: true, to every other member', async () => {
      const mark = b.events.length;
      const carolMark = c.events.length;
      const started = Date.now(); // before the request: the server's timer cannot start earlier
      await phone.ok('typing', { conversationId, typing: true });
      await eventSince(b, mark, 'typing', (d) => d.conversationId === conversationId && d.typing);
      const stop = await eventSince(b, mark, 'typing', (d) => d.conversationId === conversationId && d.userId === alice.id && !d.typing, TTL_MS * 4);
      const elapsed = Date.now() - started;
      assert.deepEqual(stop, { conversationId, userId: alice.id, typing: false, expiresInMs: 0 });
      assert.ok(elapsed >= TTL_MS, `stopped after ${elapsed} ms, not before the ttl`);
      assert.ok(elapsed <= TTL_MS + 1500, `stopped after ${elapsed} ms`);
      // Carol's connection is not bob's: wait for her copy of the stop before checking what she got.
      await eventSince(c, carolMark, 'typing', (d) => d.conversationId === conversationId && d.userId === alice.id && !d.typing);
      assert.deepEqual(alicesSince(c, carolMark).map((d) => d.typing), [true, false], 'every other member gets the stop');
    });

    it('forwards an explicit typing: false at once, and only once', async () => {
      const startMark = b.events.length;
      await phone.ok('typing', { conversationId, typing: true });
      const typingAt = Date.now(); // after the reply: the server's ttl timer cannot start later
      await eventSince(b, startMark, 'typing', (d) => d.conversationId === conversationId && d.typing);
      const mark = b.events.length;
      const started = Date.now();
      await laptop.ok('typing', { conversationId, typing: false });
      await eventSince(b, mark, 'typing', (d) => d.userId === alice.id && !d.typing);
      assert.ok(Date.now() - started < TTL_MS - 100, 'well before the ttl');
      await until(typingAt + TTL_MS + 100); // past the moment the ttl would have sent a stop
      await barrier(b);
      assert.equal(alicesSince(b, mark).length, 1, 'no second stop when the ttl would have passed');
    });

    it('does not forward typing: false when the user was not typing', async () => {
      const mark = b.events.length;
      await phone.ok('typing', { conversationId, typing: false });
      await barrier(b);
      assert.deepEqual(alicesSince(b, mark), []);
    });

    it('stops typing when the typer sends a message', async () => {
      const startMark = b.events.length;
      const typingSentAt = Date.now(); // a stop from the ttl cannot arrive before typingSentAt + ttl
      await phone.ok('typing', { conversationId, typing: true });
      const typingAckedAt = Date.now(); // the server's ttl timer cannot start later
      await eventSince(b, startMark, 'typing', (d) => d.conversationId === conversationId && d.typing);
      const mark = b.events.length;
      const message = await phone.ok('message.send', { conversationId, key: 'typed-1', text: 'done typing' });
      await b.waitFor('message.new', (m) => m.id === message.id, 2000);
      await eventSince(b, mark, 'typing', (d) => d.userId === alice.id && !d.typing);
      const stoppedAfter = Date.now() - typingSentAt;
      assert.deepEqual(alicesSince(b, mark), [{ conversationId, userId: alice.id, typing: false, expiresInMs: 0 }]);
      assert.ok(stoppedAfter < TTL_MS, `stopped ${stoppedAfter} ms after typing began: by the send, not by the ttl`);
      await until(typingAckedAt + TTL_MS + 100); // past the moment the ttl would have sent a stop
      await barrier(b);
      assert.equal(alicesSince(b, mark).length, 1, 'no later stop from the ttl');
    });
  });

  describe('presence', () => {
    let alice: User;
    let bob: User;
    let carol: User;
    let carolOnline: RawClient | null = null;
    let directWithBob: string;
    before(async () => {
      [alice, bob, carol] = await Promise.all(['presence-alice', 'presence-bob', 'presence-carol'].map((n) => register(server, n)));
      const a = await RawClient.connect(server.wsUrl, alice.token);
      directWithBob = (await a.ok('direct.open', { userId: bob.id })).conversation.id;
      await a.ok('direct.open', { userId: carol.id });
      a.close();
      await a.waitClose();
    });
    after(() => carolOnline?.close());

    /**
     * Carol (another contact of alice) comes online or goes offline, and `observer` waits for the news. Presence
     * batches are published in order, so a change of bob's before carol's has arrived by then: only then may a test
     * assert that no news about bob came.
     */
    const barrier = async (observer: RawClient): Promise<void> => {
      const mark = observer.events.length;
      const online = carolOnline === null;
      if (carolOnline) {
        carolOnline.close();
        await carolOnline.waitClose();
        carolOnline = null;
      } else {
        carolOnline = await RawClient.connect(server.wsUrl, carol.token);
      }
      await eventSince(observer, mark, 'presence', (d) => d.users.some((u: any) => u.userId === carol.id && u.online === online));
    };

    const aboutBob = (client: RawClient, mark = 0): any[] =>
      client.events.slice(mark).filter((e) => e.event === 'presence').flatMap((e) => e.data.users).filter((u: any) => u.userId === bob.id);

    it('tells a contact when a user comes online, once for all devices, and offline with lastSeen when all devices left', async () => {
      const a = await RawClient.connect(server.wsUrl, alice.token);
      const connectedAt = Date.now();
      const bobPhone = await RawClient.connect(server.wsUrl, bob.token);
      const online = await a.waitFor('presence', (d) => d.users.some((u: any) => u.userId === bob.id), 2000);
      const info = online.users.find((u: any) => u.userId === bob.id);
      assert.equal(info.online, true);
      assert.equal(online.conversationId, directWithBob, 'the event names the conversation whose member changed');

      const mark = a.events.length;
      const bobLaptop = await RawClient.connect(server.wsUrl, bob.token);
      await barrier(a);
      assert.deepEqual(aboutBob(a, mark), [], 'a second device is no news');

      bobPhone.close();
      await bobPhone.waitClose();
      await barrier(a);
      assert.deepEqual(aboutBob(a, mark), [], 'one device left: still online');

      const { users: stillOnline } = await a.ok('presence.get', { userIds: [bob.id] });
      assert.equal(stillOnline[0].online, true);

      bobLaptop.close();
      await bobLaptop.waitClose();
      const offline = await a.waitFor('presence', (d) => d.users.some((u: any) => u.userId === bob.id && !u.online), 2000);
      const gone = offline.users.find((u: any) => u.userId === bob.id);
      assert.equal(typeof gone.lastSeen, 'number');
      assert.ok(gone.lastSeen >= connectedAt && gone.lastSeen <= Date.now(), `lastSeen ${gone.lastSeen}`);
      assert.deepEqual(aboutBob(a, mark).map((u) => u.online), [false], 'exactly one change: offline');
      a.close();
    });

    it('answers presence.get with online and lastSeen', async () => {
      const a = await RawClient.connect(server.wsUrl, alice.token);
      const bobNow = await RawClient.connect(server.wsUrl, bob.token);
      await a.waitFor('presence', (d) => d.users.some((u: any) => u.userId === bob.id && u.online), 2000);
      const { users: whileOnline } = await a.ok('presence.get', { userIds: [bob.id, alice.id] });
      const byId = new Map(whileOnline.map((u: any) => [u.userId, u]));
      assert.equal(byId.size, 2);
      assert.equal((byId.get(bob.id) as any).online, true);
      assert.equal((byId.get(alice.id) as any).online, true);

      const before = Date.now();
      bobNow.close();
      await bobNow.waitClose();
      await a.waitFor('presence', (d) => d.users.some((u: any) => u.userId === bob.id && !u.online && u.lastSeen >= before), 2000);
      const { users } = await a.ok('presence.get', { userIds: [bob.id] });
      assert.equal(users.length, 1);
      assert.equal(users[0].online, false);
      assert.equal(typeof users[0].lastSeen, 'number');
      assert.ok(users[0].lastSeen >= before - 50 && users[0].lastSeen <= Date.now(), `lastSeen ${users[0].lastSeen}`);
      a.close();
    });
  });
});
