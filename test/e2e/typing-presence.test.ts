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
    before(async () => {
      [alice, bob, carol] = await Promise.all(['typing-alice', 'typing-bob', 'typing-carol'].map((n) => register(server, n)));
      phone = await RawClient.connect(server.wsUrl, alice.token);
      laptop = await RawClient.connect(server.wsUrl, alice.token);
      b = await RawClient.connect(server.wsUrl, bob.token);
      c = await RawClient.connect(server.wsUrl, carol.token);
      conversationId = (await phone.ok('conversation.create', { name: 'typing room' })).conversation.id;
      await b.ok('conversation.join', { conversationId });
      await c.ok('conversation.join', { conversationId });
      await sleep(50);
    });
    after(async () => {
      for (const client of [phone, laptop, b, c]) client.close();
      await sleep(TTL_MS + 100); // let every typing timer end before the next group
    });

    /** Wait until no typing of alice is active (after a test that may have left one running). */
    const settle = () => sleep(TTL_MS + 150);

    it("forwards typing: true to the other members, not to the typer's own connections, with expiresInMs", async () => {
      const marks = [b, c, phone, laptop].map((x) => x.events.length);
      assert.deepEqual(await phone.ok('typing', { conversationId, typing: true }), {});
      const seenByBob = await b.waitFor('typing', (d) => d.conversationId === conversationId && d.typing, 2000);
      assert.deepEqual(seenByBob, { conversationId, userId: alice.id, typing: true, expiresInMs: TTL_MS });
      await c.waitFor('typing', (d) => d.conversationId === conversationId && d.userId === alice.id && d.typing, 2000);
      await sleep(100);
      assert.deepEqual(typingSince(phone, marks[2], conversationId), [], 'not echoed to the typing device');
      assert.deepEqual(typingSince(laptop, marks[3], conversationId), [], "not sent to the typer's other devices");
      await settle();
    });

    it('does not forward a repeated typing: true within the throttle, but forwards one after it', async () => {
      const mark = b.events.length;
      await phone.ok('typing', { conversationId, typing: true });
      for (let i = 0; i < 4; i++) {
        await phone.ok('typing', { conversationId, typing: true });
        await sleep(20);
      }
      await sleep(50);
      assert.equal(typingSince(b, mark, conversationId).filter((d) => d.typing).length, 1, 'one start, however many refreshes');
      await sleep(THROTTLE_MS);
      await phone.ok('typing', { conversationId, typing: true });
      await sleep(100);
      assert.equal(typingSince(b, mark, conversationId).filter((d) => d.typing).length, 2, 'forwarded again after the throttle');
      assert.equal(typingSince(b, mark, conversationId).filter((d) => !d.typing).length, 0, 'refreshes kept it alive');
      await settle();
    });

    it('sends typing: false by itself about ttl after the last typing: true', async () => {
      const mark = b.events.length;
      const carolMark = c.events.length;
      const started = Date.now(); // before the request: the server's timer cannot start earlier
      await phone.ok('typing', { conversationId, typing: true });
      await b.waitFor('typing', (d) => d.conversationId === conversationId && d.typing, 2000);
      const stopped = await new Promise<any>((resolve, reject) => {
        const deadline = Date.now() + TTL_MS * 4;
        const poll = setInterval(() => {
          const found = typingSince(b, mark, conversationId).find((d) => !d.typing);
          if (found || Date.now() > deadline) {
            clearInterval(poll);
            if (found) resolve(found);
            else reject(new Error('no typing: false within 4 × ttl'));
          }
        }, 10);
      });
      const elapsed = Date.now() - started;
      assert.deepEqual(stopped, { conversationId, userId: alice.id, typing: false, expiresInMs: 0 });
      assert.ok(elapsed >= TTL_MS, `stopped after ${elapsed} ms, not before the ttl`);
      assert.ok(elapsed <= TTL_MS + 1000, `stopped after ${elapsed} ms`);
      assert.deepEqual(typingSince(c, carolMark, conversationId).map((d) => d.typing), [true, false], 'every other member gets the stop');
    });

    it('forwards an explicit typing: false at once, and only once', async () => {
      await phone.ok('typing', { conversationId, typing: true });
      await b.waitFor('typing', (d) => d.conversationId === conversationId && d.typing, 2000);
      const mark = b.events.length;
      const started = Date.now();
      await laptop.ok('typing', { conversationId, typing: false });
      await new Promise<void>((resolve, reject) => {
        const poll = setInterval(() => {
          if (typingSince(b, mark, conversationId).some((d) => !d.typing)) {
            clearInterval(poll);
            resolve();
          } else if (Date.now() - started > 2000) {
            clearInterval(poll);
            reject(new Error('no typing: false'));
          }
        }, 5);
      });
      assert.ok(Date.now() - started < TTL_MS - 100, 'well before the ttl');
      await sleep(TTL_MS + 150);
      assert.equal(typingSince(b, mark, conversationId).length, 1, 'no second stop when the ttl would have passed');
    });

    it('does not forward typing: false when the user was not typing', async () => {
      const mark = b.events.length;
      await phone.ok('typing', { conversationId, typing: false });
      await sleep(100);
      assert.deepEqual(typingSince(b, mark, conversationId), []);
    });

    it('stops typing when the typer sends a message', async () => {
      const typingSentAt = Date.now(); // a stop from the ttl cannot arrive before typingSentAt + ttl
      await phone.ok('typing', { conversationId, typing: true });
      await b.waitFor('typing', (d) => d.conversationId === conversationId && d.typing, 2000);
      const mark = b.events.length;
      const { message } = await phone.ok('message.send', { conversationId, key: 'typed-1', text: 'done typing' });
      await b.waitFor('message.new', (m) => m.id === message.id, 2000);
      const deadline = Date.now() + 2000;
      while (!typingSince(b, mark, conversationId).some((d) => !d.typing) && Date.now() < deadline) await sleep(5);
      const stoppedAfter = Date.now() - typingSentAt;
      assert.deepEqual(typingSince(b, mark, conversationId), [{ conversationId, userId: alice.id, typing: false, expiresInMs: 0 }]);
      assert.ok(stoppedAfter < TTL_MS, `stopped ${stoppedAfter} ms after typing began: by the send, not by the ttl`);
      await sleep(TTL_MS + 100);
      assert.equal(typingSince(b, mark, conversationId).length, 1, 'no later stop from the ttl');
    });
  });

  describe('presence', () => {
    let alice: User;
    let bob: User;
    before(async () => {
      [alice, bob] = await Promise.all(['presence-alice', 'presence-bob'].map((n) => register(server, n)));
      const a = await RawClient.connect(server.wsUrl, alice.token);
      await a.ok('direct.open', { userId: bob.id });
      a.close();
      await sleep(BATCH_MS * 4);
    });

    const aboutBob = (client: RawClient, mark = 0): any[] =>
      client.events.slice(mark).filter((e) => e.event === 'presence').flatMap((e) => e.data.users).filter((u: any) => u.userId === bob.id);

    it('tells a contact when a user comes online, once for all devices, and offline with lastSeen when all devices left', async () => {
      const a = await RawClient.connect(server.wsUrl, alice.token);
      await sleep(BATCH_MS * 3);
      const connectedAt = Date.now();
      const bobPhone = await RawClient.connect(server.wsUrl, bob.token);
      const online = await a.waitFor('presence', (d) => d.users.some((u: any) => u.userId === bob.id), 2000);
      const info = online.users.find((u: any) => u.userId === bob.id);
      assert.equal(info.online, true);

      const mark = a.events.length;
      const bobLaptop = await RawClient.connect(server.wsUrl, bob.token);
      await sleep(BATCH_MS * 5);
      assert.deepEqual(aboutBob(a, mark), [], 'a second device is no news');

      bobPhone.close();
      await bobPhone.waitClose();
      await sleep(BATCH_MS * 5);
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
