import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isParleyError, type ErrorCode } from '../../src/protocol/errors.js';
import type { Conversation, MyConversation } from '../../src/protocol/types.js';
import type { NewMessage, Store } from '../../src/store/store.js';

/**
 * The store contract (the guarantees in src/store/store.ts), run against every engine. `createStore` returns a
 * fresh store on an empty database (engines on a shared server must isolate it, e.g. with a schema per call); the
 * suite migrates it, uses it for one test and closes it. Members are always existing users (Member carries the name). Only the `Store` interface is used, so every engine runs the
 * same suite, and every time is a `now` argument.
 */

/** A base time far from zero, so an engine that treats 0 or small numbers specially is caught. */
const T0 = 1_700_000_000_000;
const BIG = 1_000_000;

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isParleyError(err), `expected a ParleyError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  });
}

async function addUsers(store: Store, ...ids: string[]): Promise<void> {
  for (const id of ids) await store.createUser({ id, name: `name-${id}`, passwordHash: null, now: T0 });
}

async function addGroup(store: Store, id: string, owner: string, extra: string[] = [], name = `group ${id}`): Promise<Conversation> {
  const group = await store.createGroup({ id, name, visibility: 'private', createdBy: owner, now: T0 });
  for (const userId of extra) {
    const added = await store.addMember({ conversationId: id, userId, role: 'member', now: T0, maxMembers: BIG });
    assert.equal(added.status, 'added');
  }
  return group;
}

let messageCounter = 0;
function newMessage(conversationId: string, senderId: string, key: string, extra: Partial<NewMessage> = {}): NewMessage {
  return {
    id: `msg-${++messageCounter}`, conversationId, senderId, key, text: `text ${key}`, meta: null, now: T0, ...extra,
  };
}

async function send(store: Store, conversationId: string, senderId: string, count: number, at = (i: number) => T0 + i): Promise<number[]> {
  const seqs: number[] = [];
  for (let i = 0; i < count; i++) {
    const key = `k-${++messageCounter}`;
    const { message } = await store.appendMessage(newMessage(conversationId, senderId, key, { now: at(seqs.length) }));
    seqs.push(message.seq);
  }
  return seqs;
}

const seqsOf = (messages: { seq: number }[]): number[] => messages.map((m) => m.seq);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** What an engine offers beyond one handle. */
export interface StoreContractOptions {
  /**
   * Open a second handle on the same database as `first` (not yet migrated), as a second instance would: the
   * many-instance cases run their concurrency across both. Without it those cases are skipped, saying so.
   */
  secondHandle?: (first: Store) => Promise<Store>;
}

export function runStoreContract(engineName: string, createStore: () => Promise<Store>, options: StoreContractOptions = {}): void {
  describe(`store contract: ${engineName}`, () => {
    /** One fresh, migrated store per test, closed afterwards whatever happens. */
    function test(name: string, fn: (store: Store) => Promise<void>): void {
      it(name, async () => {
        const store = await createStore();
        try {
          await store.migrate();
          await fn(store);
        } finally {
          await store.close();
        }
      });
    }

    /**
     * Two handles on one database, as two instances: both migrate at once (as two instances starting together), then
     * the case runs its concurrent calls across both; both are closed afterwards whatever happens.
     */
    function testTwoHandles(name: string, fn: (a: Store, b: Store) => Promise<void>): void {
      const secondHandle = options.secondHandle;
      if (!secondHandle) {
        it.skip(`${name} (this engine offers no second handle)`);
        return;
      }
      it(name, async () => {
        const a = await createStore();
        let b: Store | null = null;
        try {
          b = await secondHandle(a);
          await Promise.all([a.migrate(), b.migrate()]);
          await fn(a, b);
        } finally {
          await Promise.allSettled([a.close(), b?.close()]);
        }
      });
    }

    describe('many instances: two handles on one database', () => {
      /** Calls alternating between the handles, all started at once. */
      const across = <T>(a: Store, b: Store, count: number, call: (store: Store, i: number) => Promise<T>): Promise<T[]> =>
        Promise.all(Array.from({ length: count }, (_, i) => call(i % 2 === 0 ? a : b, i)));

      testTwoHandles('a sole instance excludes every other, and is excluded by any other', async (a, b) => {
        await a.claimInstance({ sole: true, description: 'instance A' });
        await assert.rejects(b.claimInstance({ sole: false, description: 'instance B' }), (err: unknown) => {
          assert.ok(isParleyError(err) && err.code === 'CONFLICT', String(err));
          assert.match(JSON.stringify(err.details), /instance A/, 'the refusal names the other instance');
          return true;
        });
        await assert.rejects(b.claimInstance({ sole: true, description: 'instance B' }), (err: unknown) => isParleyError(err) && err.code === 'CONFLICT');
      });

      testTwoHandles('a sole instance is refused beside another until that one closes', async (a, b) => {
        await a.claimInstance({ sole: false, description: 'instance A' });
        await assert.rejects(b.claimInstance({ sole: true, description: 'instance B' }), (err: unknown) => {
          assert.ok(isParleyError(err) && err.code === 'CONFLICT', String(err));
          assert.match(JSON.stringify(err.details), /instance A/);
          return true;
        });
        await a.close();
        await b.claimInstance({ sole: true, description: 'instance B' });
      });

      testTwoHandles('instances that are not sole coexist', async (a, b) => {
        await a.claimInstance({ sole: false, description: 'instance A' });
        await b.claimInstance({ sole: false, description: 'instance B' });
      });

      testTwoHandles('an instance with other settings is refused beside a registered one; the same settings coexist', async (a, b) => {
        await a.claimInstance({ sole: false, description: 'instance A', settings: 'abc123' });
        await assert.rejects(b.claimInstance({ sole: false, description: 'instance B', settings: 'def456' }), (err: unknown) => {
          assert.ok(isParleyError(err) && err.code === 'CONFLICT', String(err));
          assert.equal((err.details as { settingsDiffer?: boolean }).settingsDiffer, true);
          assert.deepEqual((err.details as { otherSettings?: string[] }).otherSettings, ['abc123'], 'the fingerprints that differ, once each');
          assert.match(JSON.stringify(err.details), /instance A/, 'the refusal names the other instance');
          return true;
        });
        await b.claimInstance({ sole: false, description: 'instance B', settings: 'abc123' });
      });

      testTwoHandles('storeId: one id per database, the same from every handle and every call', async (a, b) => {
        const [first, second] = await Promise.all([a.storeId(), b.storeId()]);
        assert.match(first, /^[0-9a-f-]{36}$/);
        assert.equal(second, first);
        assert.equal(await a.storeId(), first);
      });

      testTwoHandles('other settings are allowed once the instance that had them is gone', async (a, b) => {
        await a.claimInstance({ sole: false, description: 'instance A', settings: 'abc123' });
        await a.close();
        await b.claimInstance({ sole: false, description: 'instance B', settings: 'def456' });
      });

      testTwoHandles('both migrate at once, and each sees what the other wrote', async (a, b) => {
        await addUsers(a, 'u1');
        assert.equal((await b.getUser('u1'))?.name, 'name-u1');
        await Promise.all([a.migrate(), b.migrate()]);
        await b.ping();
      });

      testTwoHandles('concurrent appends to one conversation from both get seq 1..n, no gap, no duplicate', async (a, b) => {
        await addUsers(a, 's1', 's2');
        await addGroup(a, 'g', 's1', ['s2']);
        const results = await across(a, b, 300, (store, i) => store.appendMessage(newMessage('g', i % 4 < 2 ? 's1' : 's2', `both-${i}`, { text: `both ${i}` })));
        assert.ok(results.every((r) => !r.duplicate));
        assert.deepEqual(results.map((r) => r.message.seq).sort((x, y) => x - y), range(1, 300));
        const stored = await b.messagesAfter('g', 0, 1000);
        assert.deepEqual(seqsOf(stored), range(1, 300));
        const textBySeq = new Map(results.map((r) => [r.message.seq, r.message.text]));
        assert.ok(stored.every((m) => textBySeq.get(m.seq) === m.text));
        assert.equal((await a.getConversation('g'))?.lastSeq, 300);
      });

      testTwoHandles('concurrent retries of one key on both: one original, the rest duplicates of it, never CONFLICT', async (a, b) => {
        await addUsers(a, 'u1');
        await addGroup(a, 'g', 'u1');
        for (let round = 0; round < 5; round++) {
          const results = await across(a, b, 10, (store) => store.appendMessage(newMessage('g', 'u1', `retry-${round}`)));
          assert.equal(results.filter((r) => !r.duplicate).length, 1, `round ${round}: one original`);
          assert.equal(new Set(results.map((r) => r.message.id)).size, 1, `round ${round}: every retry answered with the original`);
          assert.ok(results.every((r) => r.message.seq === round + 1));
        }
        assert.equal((await b.getConversation('g'))?.lastSeq, 5);
      });

      testTwoHandles('a product user\'s first connection on both at once: every ensureUser resolves, one user', async (a, b) => {
        for (let round = 0; round < 5; round++) {
          const id = `product-${round}`;
          const users = await across(a, b, 10, (store, i) => store.ensureUser(id, i === 0 ? null : 'Pat', T0 + i));
          assert.ok(users.every((u) => u.id === id && u.origin === 'product'));
          assert.equal((await a.getUser(id))?.name, 'Pat', 'a named call names the user, whichever came first');
        }
        assert.equal((await b.listUsers({ limit: 100 })).length, 5);
      });

      testTwoHandles('concurrent joins, then leaves, on both report each its own member count (the size right after it)', async (a, b) => {
        const joiners = Array.from({ length: 20 }, (_, i) => `c${i}`);
        await addUsers(a, 'owner', ...joiners);
        await addGroup(a, 'g', 'owner');
        // What decides whether members hear of a change one by one or in a summary: read in the change's own
        // transaction, every count from 2 to 21 is reported once; a count read afterwards repeats the final one.
        const joined = await across(a, b, joiners.length, (store, i) =>
          store.addMember({ conversationId: 'g', userId: joiners[i], role: 'member', now: T0, maxMembers: 100 }));
        const afterJoins = joined.map((r) => (r.status === 'added' ? r.memberCount : -1)).sort((x, y) => x - y);
        assert.deepEqual(afterJoins, Array.from({ length: 20 }, (_, i) => i + 2));
        const left = await across(a, b, joiners.length, (store, i) => (i % 4 === 3
          ? store.banMember({ conversationId: 'g', userId: joiners[i], by: 'owner', now: T0 })
          : store.removeMember('g', joiners[i])));
        const afterLeaves = left.map((r) => (r.removed ? r.memberCount : -1)).sort((x, y) => x - y);
        assert.deepEqual(afterLeaves, Array.from({ length: 20 }, (_, i) => i + 1));
        assert.equal((await b.getConversation('g'))?.memberCount, 1);
      });

      testTwoHandles('concurrent joins on both never exceed maxMembers', async (a, b) => {
        const joiners = Array.from({ length: 20 }, (_, i) => `j${i}`);
        await addUsers(a, 'owner', ...joiners);
        await addGroup(a, 'g', 'owner');
        const results = await across(a, b, joiners.length, (store, i) =>
          store.addMember({ conversationId: 'g', userId: joiners[i], role: 'member', now: T0, maxMembers: 5 }));
        assert.equal(results.filter((r) => r.status === 'added').length, 4);
        assert.equal(results.filter((r) => r.status === 'full').length, 16);
        assert.equal((await b.getConversation('g'))?.memberCount, 5);
        assert.equal((await a.listMemberIds('g')).length, 5);
      });

      testTwoHandles('concurrent joins of one user on both never take them past the conversation limit', async (a, b) => {
        const groups = Array.from({ length: 10 }, (_, i) => `o${i}`);
        await addUsers(a, 'me', 'owner');
        for (const id of groups) await addGroup(a, id, 'owner');
        const results = await Promise.allSettled(groups.map((conversationId, i) =>
          (i % 2 === 0 ? a : b).addMember({ conversationId, userId: 'me', role: 'member', now: T0, maxMembers: BIG, maxConversations: 3 })));
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 3);
        for (const r of results) if (r.status === 'rejected') assert.ok(isParleyError(r.reason) && r.reason.code === 'LIMIT_EXCEEDED', String(r.reason));
        assert.equal(await b.countMemberships('me'), 3);
      });

      testTwoHandles('a one-use invite redeemed on both at once: exactly one joins', async (a, b) => {
        const users = Array.from({ length: 10 }, (_, i) => `r${i}`);
        await addUsers(a, 'owner', ...users);
        await addGroup(a, 'g', 'owner');
        await a.createInvite({ token: 'tok', conversationId: 'g', createdBy: 'owner', createdAt: T0, expiresAt: null, maxUses: 1 });
        const results = await across(a, b, users.length, (store, i) => store.redeemInvite({ token: 'tok', userId: users[i], now: T0, maxMembers: BIG }));
        assert.equal(results.filter((r) => r.status === 'joined').length, 1);
        assert.equal(results.filter((r) => r.status === 'exhausted').length, users.length - 1);
        assert.equal((await b.getInvite('tok'))?.uses, 1);
        assert.equal((await a.getConversation('g'))?.memberCount, 2);
      });

      testTwoHandles('listPositions on one sees every append the other acknowledged before it', async (a, b) => {
        await addUsers(a, 'u1', 'u2');
        await addGroup(a, 'g', 'u1', ['u2']);
        await addGroup(a, 'h', 'u1', ['u2']);
        for (let i = 1; i <= 5; i++) {
          const target = i % 2 === 0 ? 'g' : 'h';
          const { message } = await b.appendMessage(newMessage(target, 'u1', `two-${i}`, { now: T0 + i }));
          const [first] = await a.listPositions('u2');
          assert.deepEqual({ id: first?.id, lastSeq: first?.lastSeq }, { id: target, lastSeq: message.seq });
        }
      });

      testTwoHandles('concurrent markRead on both never moves a cursor back', async (a, b) => {
        await addUsers(a, 'u1', 'u2');
        await addGroup(a, 'g', 'u1', ['u2']);
        await send(a, 'g', 'u1', 40);
        // Targets in a scrambled order, so late calls often ask for less than earlier ones got.
        const targets = Array.from({ length: 40 }, (_, i) => ((i * 17) % 40) + 1);
        const results = await across(a, b, targets.length, (store, i) => store.markRead('g', 'u2', targets[i]));
        results.forEach((r, i) => {
          assert.ok(r !== null);
          assert.ok(r.readSeq >= targets[i], `a call for ${targets[i]} answered a cursor at ${r.readSeq}`);
          assert.equal(r.unread, 40 - r.readSeq);
        });
        assert.equal((await b.getMember('g', 'u2'))?.readSeq, 40);
        // A move goes strictly up, so no two calls can both have moved the cursor to one place.
        const movedTo = results.filter((r) => r?.moved).map((r) => r?.readSeq);
        assert.equal(new Set(movedTo).size, movedTo.length, `moves: ${movedTo.join(', ')}`);
        assert.deepEqual(await a.markRead('g', 'u2', 1), { readSeq: 40, unread: 0, moved: false });
      });
    });

    describe('engine', () => {
      test('ping resolves and migrate is idempotent, keeping the data', async (store) => {
        await store.ping();
        await addUsers(store, 'u1');
        await store.migrate();
        assert.equal((await store.getUser('u1'))?.name, 'name-u1');
      });

      test('after close every call rejects UNAVAILABLE', async (store) => {
        await addUsers(store, 'u1');
        await addGroup(store, 'g', 'u1');
        await store.close();
        await rejectsWith(store.ping(), 'UNAVAILABLE');
        await rejectsWith(store.getUser('u1'), 'UNAVAILABLE');
        await rejectsWith(store.setBanned('u1', true), 'UNAVAILABLE');
        await rejectsWith(store.appendMessage(newMessage('g', 'u1', 'k')), 'UNAVAILABLE');
      });
    });

    describe('users', () => {
      test('createUser stores the user, found by id and by name in any case', async (store) => {
        const created = await store.createUser({ id: 'u1', name: 'Alice', passwordHash: 'hash', isAdmin: true, now: T0 });
        const expected = {
          id: 'u1', name: 'Alice', passwordHash: 'hash', isAdmin: true, banned: false, createdAt: T0, lastSeen: null,
          origin: 'builtin', metadata: null, tokenGeneration: 0,
        };
        assert.deepEqual(created, expected);
        assert.deepEqual(await store.getUser('u1'), expected);
        assert.deepEqual(await store.getUserByName('alice'), expected);
        assert.equal(await store.getUser('nobody'), null);
        assert.equal(await store.getUserByName('nobody'), null);
      });

      test('a taken name with a password hash rejects ACCOUNT_EXISTS and stores nothing', async (store) => {
        await store.createUser({ id: 'u1', name: 'Alice', passwordHash: 'hash', now: T0 });
        await rejectsWith(store.createUser({ id: 'u2', name: 'ALICE', passwordHash: 'other', now: T0 }), 'ACCOUNT_EXISTS');
        assert.equal(await store.getUser('u2'), null);
        assert.equal((await store.getUserByName('alice'))?.id, 'u1');
      });

      test('account names compare by NFKC + full case folding, and a confusable name rejects ACCOUNT_EXISTS', async (store) => {
        await store.createUser({ id: 'u1', name: 'Иван', passwordHash: 'hash', now: T0 });
        await store.createUser({ id: 'u2', name: 'Straße', passwordHash: 'hash', now: T0 });
        await store.createUser({ id: 'u3', name: 'bob', passwordHash: 'hash', now: T0 });
        for (const [id, name] of [['x1', 'иван'], ['x2', 'STRASSE'], ['x3', 'ｂｏｂ'], ['x4', 'bоb']]) {
          await rejectsWith(store.createUser({ id, name, passwordHash: 'other', now: T0 }), 'ACCOUNT_EXISTS');
          assert.equal(await store.getUser(id), null, name);
        }
        assert.equal((await store.getUserByName('ИВАН'))?.id, 'u1');
        assert.equal((await store.getUserByName('strasse'))?.id, 'u2');
        assert.equal((await store.getUserByName('ＢＯＢ'))?.id, 'u3');
        assert.equal(await store.getUserByName('bоb'), null, 'a look-alike is another name');
      });

      test('a taken id rejects CONFLICT and stores nothing', async (store) => {
        await store.createUser({ id: 'u1', name: 'Alice', passwordHash: 'hash', now: T0 });
        await rejectsWith(store.createUser({ id: 'u1', name: 'Bob', passwordHash: 'hash', now: T0 }), 'CONFLICT');
        assert.equal(await store.getUserByName('Bob'), null);
      });

      test('token users (no password) may share a display name with each other and with an account', async (store) => {
        await store.createUser({ id: 'u1', name: 'Alice', passwordHash: 'hash', now: T0 });
        await store.createUser({ id: 'u2', name: 'alice', passwordHash: null, now: T0 });
        const renamed = await store.ensureUser('u3', 'ALICE', T0);
        assert.equal(renamed.name, 'ALICE');
        assert.equal((await store.getUser('u2'))?.name, 'alice');
        assert.equal((await store.getUserByName('alice'))?.id, 'u1', 'login by name finds the account, never a token user');
      });

      test('ensureUser inserts a missing user, keeps an existing one and renames only when given a name', async (store) => {
        const first = await store.ensureUser('j1', 'Jay', T0);
        assert.deepEqual(first, {
          id: 'j1', name: 'Jay', passwordHash: null, isAdmin: false, banned: false, createdAt: T0, lastSeen: null,
          origin: 'product', metadata: null, tokenGeneration: 0,
        });
        assert.deepEqual(await store.ensureUser('j1', null, T0 + 5), first);
        assert.deepEqual(await store.ensureUser('j1', 'Jay', T0 + 5), first);
        const renamed = await store.ensureUser('j1', 'Jules', T0 + 9);
        assert.deepEqual(renamed, { ...first, name: 'Jules' });
        assert.deepEqual(await store.getUser('j1'), renamed);
        const nameless = await store.ensureUser('j2', null, T0);
        assert.equal(nameless.id, 'j2');
        assert.equal(typeof nameless.name, 'string');
      });

      test('ensureUser never renames a built-in account; upsertProductUser refuses one with CONFLICT', async (store) => {
        await store.createUser({ id: 'u1', name: 'Alice', passwordHash: 'hash', now: T0 });
        assert.equal((await store.ensureUser('u1', 'Mallory', T0)).name, 'Alice');
        await rejectsWith(store.upsertProductUser({ id: 'u1', name: 'Mallory', metadata: { x: 1 }, now: T0 }), 'CONFLICT');
        assert.deepEqual([(await store.getUser('u1'))?.name, (await store.getUser('u1'))?.metadata], ['Alice', null]);
      });

      test('upsertProductUser creates, renames, keeps metadata when undefined and clears it with null', async (store) => {
        const made = await store.upsertProductUser({ id: 'p1', name: 'Pat', metadata: { plan: 'pro' }, now: T0 });
        assert.equal(made.created, true);
        assert.deepEqual([made.user.origin, made.user.name, made.user.metadata, made.user.passwordHash], ['product', 'Pat', { plan: 'pro' }, null]);
        const renamed = await store.upsertProductUser({ id: 'p1', name: 'Patty', metadata: undefined, now: T0 + 1 });
        assert.deepEqual([renamed.created, renamed.user.name, renamed.user.metadata, renamed.user.createdAt], [false, 'Patty', { plan: 'pro' }, T0]);
        assert.equal((await store.upsertProductUser({ id: 'p1', name: 'Patty', metadata: null, now: T0 })).user.metadata, null);
      });

      test('token generations and revoked sessions', async (store) => {
        await addUsers(store, 'u1');
        assert.equal(await store.bumpTokenGeneration('u1'), 1);
        assert.equal(await store.bumpTokenGeneration('u1'), 2);
        assert.equal((await store.getUser('u1'))?.tokenGeneration, 2);
        assert.equal(await store.bumpTokenGeneration('nobody'), null);
        assert.equal(await store.isSessionRevoked('s1'), false);
        await store.revokeSession('s1', T0 + 1000, T0);
        await store.revokeSession('s1', T0 + 1000, T0);
        assert.equal(await store.isSessionRevoked('s1'), true);
        // Revocations past their token's expiry are forgotten on the next revocation.
        await store.revokeSession('s2', T0 + 5000, T0 + 2000);
        assert.equal(await store.isSessionRevoked('s1'), false);
        assert.equal(await store.isSessionRevoked('s2'), true);
      });

      test('setBanned bans and unbans; false for an unknown user', async (store) => {
        await addUsers(store, 'u1');
        assert.equal(await store.setBanned('u1', true), true);
        assert.equal((await store.getUser('u1'))?.banned, true);
        assert.equal(await store.setBanned('u1', false), true);
        assert.equal((await store.getUser('u1'))?.banned, false);
        assert.equal(await store.setBanned('nobody', true), false);
      });

      test('setLastSeen records the time', async (store) => {
        await addUsers(store, 'u1');
        await store.setLastSeen('u1', T0 + 42);
        assert.equal((await store.getUser('u1'))?.lastSeen, T0 + 42);
        await store.setLastSeen('nobody', T0);
      });

      test('setLastSeenMany records each user\'s time in one call; unknown users and an empty list are no-ops', async (store) => {
        await addUsers(store, 'u1', 'u2', 'u3');
        await store.setLastSeenMany([{ userId: 'u1', at: T0 + 1 }, { userId: 'nobody', at: T0 + 2 }, { userId: 'u3', at: T0 + 3 }]);
        await store.setLastSeenMany([]);
        assert.deepEqual(await Promise.all(['u1', 'u2', 'u3'].map(async (id) => (await store.getUser(id))?.lastSeen ?? null)), [T0 + 1, null, T0 + 3]);
      });

      test('listUsers pages in id order', async (store) => {
        await addUsers(store, 'u3', 'u1', 'u5', 'u2', 'u4');
        const page1 = await store.listUsers({ limit: 2 });
        assert.deepEqual(page1.map((u) => u.id), ['u1', 'u2']);
        const page2 = await store.listUsers({ limit: 2, afterId: 'u2' });
        assert.deepEqual(page2.map((u) => u.id), ['u3', 'u4']);
        const page3 = await store.listUsers({ limit: 2, afterId: 'u4' });
        assert.deepEqual(page3.map((u) => u.id), ['u5']);
        assert.deepEqual(await store.listUsers({ limit: 2, afterId: 'u5' }), []);
      });
    });

    describe('conversations', () => {
      test('getMembership: the conversation with the member record in one call, null when either is missing', async (store) => {
        await addUsers(store, 'u1', 'u2', 'u3');
        await addGroup(store, 'g', 'u1', ['u2'], 'Team');
        const membership = await store.getMembership('g', 'u2');
        assert.deepEqual(membership, { conversation: await store.getConversation('g'), member: await store.getMember('g', 'u2') });
        assert.equal(membership?.conversation.name, 'Team');
        assert.equal(membership?.member.name, 'name-u2', "the member's name, not the conversation's");
        assert.equal(await store.getMembership('g', 'u3'), null);
        assert.equal(await store.getMembership('nowhere', 'u1'), null);
      });

      test('listPresenceConversations: per user, in the order asked, its direct conversations and groups up to the size', async (store) => {
        await addUsers(store, 'a', 'b', 'c', 'd', 'loner');
        await store.openDirect({ id: 'dm-ab', a: 'a', b: 'b', now: T0 });
        await addGroup(store, 'small', 'a', ['c']);
        await addGroup(store, 'big', 'a', ['b', 'c', 'd']);
        await addGroup(store, 'alone', 'a');
        assert.deepEqual(await store.listPresenceConversations(['c', 'loner', 'a', 'nobody', 'b'], 3), [['small'], [], ['dm-ab', 'small'], [], ['dm-ab']]);
        assert.deepEqual(await store.listPresenceConversations(['a'], 4), [['big', 'dm-ab', 'small']]);
        assert.deepEqual(await store.listPresenceConversations(['a'], 1), [['dm-ab']], 'a direct conversation at any size');
        assert.deepEqual(await store.listPresenceConversations(['a'], 100), [['big', 'dm-ab', 'small']], 'not a group of one: nobody to tell');
        assert.deepEqual(await store.listPresenceConversations([], 3), []);
      });

      test('createGroup makes the creator its owner', async (store) => {
        await addUsers(store, 'u1');
        const group = await store.createGroup({ id: 'g', name: 'Team', visibility: 'public', createdBy: 'u1', now: T0 });
        const expected: Conversation = {
          id: 'g', kind: 'group', name: 'Team', visibility: 'public', createdAt: T0, createdBy: 'u1', lastSeq: 0, memberCount: 1, rev: 0,
        };
        assert.deepEqual(group, expected);
        assert.deepEqual(await store.getConversation('g'), expected);
        assert.deepEqual(await store.getMember('g', 'u1'), { userId: 'u1', name: 'name-u1', role: 'owner', joinedAt: T0, readSeq: 0 });
        assert.equal(await store.getConversation('nope'), null);
      });

      test('createGroup with a taken id rejects CONFLICT and changes nothing', async (store) => {
        await addUsers(store, 'u1', 'u2');
        const group = await addGroup(store, 'g', 'u1');
        await rejectsWith(store.createGroup({ id: 'g', name: 'Other', visibility: 'public', createdBy: 'u2', now: T0 }), 'CONFLICT');
        assert.deepEqual(await store.getConversation('g'), group);
        assert.equal(await store.getMember('g', 'u2'), null);
        assert.equal(await store.countMemberships('u2'), 0);
      });

      test('renameConversation renames; null for an unknown conversation', async (store) => {
        await addUsers(store, 'u1');
        await addGroup(store, 'g', 'u1');
        assert.equal((await store.renameConversation('g', 'New name'))?.name, 'New name');
        assert.equal((await store.getConversation('g'))?.name, 'New name');
        assert.equal(await store.renameConversation('nope', 'x'), null);
      });

      test('searchPublic finds public groups by case-insensitive substring, ordered by name', async (store) => {
        await addUsers(store, 'u1', 'u2');
        for (const [id, name, visibility] of [
          ['g1', 'Rust lovers', 'public'], ['g2', 'TRUSTED', 'public'], ['g3', 'rusty secret', 'private'],
          ['g4', 'Gardening', 'public'], ['g5', 'Arts and rust', 'public'],
        ] as const) {
          await store.createGroup({ id, name, visibility, createdBy: 'u1', now: T0 });
        }
        await store.openDirect({ id: 'd', a: 'u1', b: 'u2', now: T0 });
        assert.deepEqual((await store.searchPublic('rUsT', 10)).map((c) => c.name), ['Arts and rust', 'Rust lovers', 'TRUSTED']);
        assert.deepEqual((await store.searchPublic('rust', 2)).map((c) => c.id), ['g5', 'g1']);
        assert.deepEqual(await store.searchPublic('%', 10), []);
        assert.deepEqual(await store.searchPublic('nothing like it', 10), []);
      });

      test('searchPublic folds Unicode case and compatibility forms, in names and queries', async (store) => {
        await addUsers(store, 'u1');
        for (const [id, name] of [['m', 'Москва'], ['w', 'ＴＥＡＭ Ｗｉｄｅ'], ['s', 'Straße Art'], ['o', 'ΟΔΥΣΣΕΥΣ']] as const) {
          await store.createGroup({ id, name, visibility: 'public', createdBy: 'u1', now: T0 });
        }
        const ids = async (query: string) => (await store.searchPublic(query, 10)).map((c) => c.id);
        assert.deepEqual(await ids('москва'), ['m']);
        assert.deepEqual(await ids('МОСК'), ['m']);
        assert.deepEqual(await ids('сква'), ['m']);
        assert.deepEqual(await ids('team wide'), ['w']);
        assert.deepEqual(await ids('STRASSE'), ['s']);
        assert.deepEqual(await ids('straße'), ['s']);
        assert.deepEqual(await ids('οδυσσευς'), ['o'], 'final sigma folds like sigma');
      });

      test('searchPublic: queries of one or two characters match the start of names; the empty query lists by name', async (store) => {
        await addUsers(store, 'u1');
        for (const [id, name] of [['a', 'Bee keepers'], ['b', 'bees'], ['c', 'Honey bee'], ['d', 'Ant farm']] as const) {
          await store.createGroup({ id, name, visibility: 'public', createdBy: 'u1', now: T0 });
        }
        await store.createGroup({ id: 'p', name: 'Be private', visibility: 'private', createdBy: 'u1', now: T0 });
        assert.deepEqual((await store.searchPublic('BE', 10)).map((c) => c.id), ['a', 'b']);
        assert.deepEqual((await store.searchPublic('h', 10)).map((c) => c.id), ['c']);
        assert.deepEqual((await store.searchPublic('', 3)).map((c) => c.id), ['d', 'a', 'b']);
        assert.deepEqual((await store.searchPublic('bee', 10)).map((c) => c.id), ['a', 'b', 'c']);
      });

      test('searchPublic follows renames and deletes, and treats query syntax literally', async (store) => {
        await addUsers(store, 'u1');
        await store.createGroup({ id: 'g', name: 'Chess club', visibility: 'public', createdBy: 'u1', now: T0 });
        await store.createGroup({ id: 'q', name: 'say "hi" OR bye*', visibility: 'public', createdBy: 'u1', now: T0 });
        await store.renameConversation('g', 'Go club');
        assert.deepEqual(await store.searchPublic('chess', 10), []);
        assert.deepEqual((await store.searchPublic('go cl', 10)).map((c) => c.id), ['g']);
        assert.deepEqual((await store.searchPublic('"hi" or', 10)).map((c) => c.id), ['q']);
        assert.deepEqual(await store.searchPublic('hi OR chess', 10), []);
        assert.deepEqual(await store.searchPublic('bye**', 10), []);
        assert.deepEqual((await store.searchPublic('\u0000go\u0000 c', 10)).map((c) => c.id), ['g'], 'NUL is ignored, not an engine error');
        await store.deleteConversation('g');
        assert.deepEqual(await store.searchPublic('club', 10), []);
      });

      test('searchPublic answers a query matching thousands of groups with one ordered page', async (store) => {
        await addUsers(store, 'u1');
        for (let i = 0; i < 1500; i++) {
          await store.createGroup({ id: `g${String(i).padStart(4, '0')}`, name: `common ${String(i).padStart(4, '0')}`, visibility: 'public', createdBy: 'u1', now: T0 });
        }
        const page = await store.searchPublic('common', 20);
        assert.equal(page.length, 20);
        const names = page.map((c) => c.name as string);
        assert.deepEqual(names, [...names].sort(), 'ordered by name');
        assert.equal((await store.searchPublic('co', 20)).length, 20);
      });

      test('listConversations pages in id order', async (store) => {
        await addUsers(store, 'u1');
        for (const id of ['c3', 'c1', 'c2']) await addGroup(store, id, 'u1');
        assert.deepEqual((await store.listConversations({ limit: 2 })).map((c) => c.id), ['c1', 'c2']);
        assert.deepEqual((await store.listConversations({ limit: 2, afterId: 'c2' })).map((c) => c.id), ['c3']);
      });
    });

    describe('direct conversations', () => {
      test('openDirect creates one conversation per pair, whatever the argument order', async (store) => {
        await addUsers(store, 'a', 'b', 'c');
        const first = await store.openDirect({ id: 'd1', a: 'a', b: 'b', now: T0 });
        assert.equal(first.created, true);
        assert.deepEqual(first.conversation, {
          id: 'd1', kind: 'direct', name: null, visibility: 'private', createdAt: T0, createdBy: 'a', lastSeq: 0, memberCount: 2, rev: 0,
        });
        assert.deepEqual((await store.listMemberIds('d1')).sort(), ['a', 'b']);
        assert.equal((await store.getMember('d1', 'a'))?.role, 'member');
        assert.equal((await store.getMember('d1', 'b'))?.role, 'member');
        const again = await store.openDirect({ id: 'd2', a: 'b', b: 'a', now: T0 + 1 });
        assert.deepEqual(again, { conversation: first.conversation, created: false });
        assert.equal(await store.getConversation('d2'), null);
        const other = await store.openDirect({ id: 'd3', a: 'a', b: 'c', now: T0 });
        assert.equal(other.created, true);
        assert.equal(other.conversation.id, 'd3');
      });

      test('concurrent openDirect calls for a pair return the same conversation', async (store) => {
        await addUsers(store, 'a', 'b');
        const results = await Promise.all(Array.from({ length: 20 }, (_, i) =>
          store.openDirect({ id: `d${i}`, a: i % 2 ? 'a' : 'b', b: i % 2 ? 'b' : 'a', now: T0 + i })));
        assert.equal(new Set(results.map((r) => r.conversation.id)).size, 1);
        assert.equal(results.filter((r) => r.created).length, 1);
        assert.deepEqual(await store.listConversationIds('a'), [results[0].conversation.id]);
        assert.equal((await store.getConversation(results[0].conversation.id))?.memberCount, 2);
      });
    });

    describe('members', () => {
      test('addMember adds, reports an existing member unchanged, and reports a missing conversation', async (store) => {
        await addUsers(store, 'u1', 'u2');
        await addGroup(store, 'g', 'u1');
        const added = await store.addMember({ conversationId: 'g', userId: 'u2', role: 'admin', now: T0 + 1, maxMembers: 10 });
        const member = { userId: 'u2', name: 'name-u2', role: 'admin', joinedAt: T0 + 1, readSeq: 0 };
        assert.deepEqual(added, { status: 'added', member, memberCount: 2 });
        const again = await store.addMember({ conversationId: 'g', userId: 'u2', role: 'member', now: T0 + 2, maxMembers: 10 });
        assert.deepEqual(again, { status: 'exists', member });
        assert.equal((await store.getConversation('g'))?.memberCount, 2);
        const missing = await store.addMember({ conversationId: 'nope', userId: 'u2', role: 'member', now: T0, maxMembers: 10 });
        assert.deepEqual(missing, { status: 'no_conversation' });
      });

      test('addMember refuses at maxMembers', async (store) => {
        await addUsers(store, 'u1', 'u2', 'u3');
        await addGroup(store, 'g', 'u1');
        assert.equal((await store.addMember({ conversationId: 'g', userId: 'u2', role: 'member', now: T0, maxMembers: 2 })).status, 'added');
        assert.deepEqual(await store.addMember({ conversationId: 'g', userId: 'u3', role: 'member', now: T0, maxMembers: 2 }), { status: 'full' });
        assert.equal(await store.getMember('g', 'u3'), null);
        assert.equal((await store.getConversation('g'))?.memberCount, 2);
      });

      test('concurrent addMember calls never exceed maxMembers', async (store) => {
        const joiners = Array.from({ length: 20 }, (_, i) => `j${i}`);
        await addUsers(store, 'owner', ...joiners);
        await addGroup(store, 'g', 'owner');
        const results = await Promise.all(joiners.map((userId) =>
          store.addMember({ conversationId: 'g', userId, role: 'member', now: T0, maxMembers: 5 })));
        assert.equal(results.filter((r) => r.status === 'added').length, 4);
        assert.equal(results.filter((r) => r.status === 'full').length, 16);
        assert.equal((await store.getConversation('g'))?.memberCount, 5);
        assert.equal((await store.listMemberIds('g')).length, 5);
      });

      test('the conversation limit holds on every path that adds a membership, and a refusal changes nothing', async (store) => {
        await addUsers(store, 'me', 'peer', 'owner');
        await store.createGroup({ id: 'g1', name: 'one', visibility: 'public', createdBy: 'me', now: T0, maxConversations: 2 });
        await addGroup(store, 'open', 'owner');
        await addGroup(store, 'invited', 'owner');
        await store.createInvite({ token: 'tok', conversationId: 'invited', createdBy: 'owner', createdAt: T0, expiresAt: null, maxUses: null });
        assert.equal((await store.addMember({ conversationId: 'open', userId: 'me', role: 'member', now: T0, maxMembers: BIG, maxConversations: 2 })).status, 'added');
        // 'me' is now in two conversations: every path to a third is refused.
        await rejectsWith(store.createGroup({ id: 'g2', name: 'two', visibility: 'public', createdBy: 'me', now: T0, maxConversations: 2 }), 'LIMIT_EXCEEDED');
        await rejectsWith(store.openDirect({ id: 'd1', a: 'me', b: 'peer', now: T0, maxConversations: 2 }), 'LIMIT_EXCEEDED');
        await rejectsWith(store.openDirect({ id: 'd2', a: 'peer', b: 'me', now: T0, maxConversations: 2 }), 'LIMIT_EXCEEDED');
        await rejectsWith(store.redeemInvite({ token: 'tok', userId: 'me', now: T0, maxMembers: BIG, maxConversations: 2 }), 'LIMIT_EXCEEDED');
        await store.removeMember('open', 'me');
        await rejectsWith(store.addMember({ conversationId: 'open', userId: 'peer', role: 'member', now: T0, maxMembers: BIG, maxConversations: 0 }), 'LIMIT_EXCEEDED');
        assert.deepEqual(await store.listConversationIds('me'), ['g1']);
        assert.deepEqual(await store.listConversationIds('peer'), []);
        assert.equal(await store.getConversation('g2'), null);
        assert.equal((await store.getInvite('tok'))?.uses, 0);
        assert.equal((await store.getConversation('invited'))?.memberCount, 1);
        // An existing membership is reported as such even at the limit; an existing direct conversation still opens.
        await store.openDirect({ id: 'd3', a: 'me', b: 'peer', now: T0, maxConversations: 2 });
        assert.equal((await store.openDirect({ id: 'd4', a: 'peer', b: 'me', now: T0, maxConversations: 1 })).created, false);
        assert.equal((await store.addMember({ conversationId: 'g1', userId: 'me', role: 'member', now: T0, maxMembers: BIG, maxConversations: 1 })).status, 'exists');
      });

      test('concurrent creates, joins, invite redemptions and direct opens never take a user past the conversation limit', async (store) => {
        const peers = Array.from({ length: 10 }, (_, i) => `p${i}`);
        await addUsers(store, 'me', 'owner', ...peers);
        const groups = Array.from({ length: 10 }, (_, i) => `o${i}`);
        for (const id of groups) await addGroup(store, id, 'owner');
        for (const id of groups) {
          await store.createInvite({ token: `t-${id}`, conversationId: id, createdBy: 'owner', createdAt: T0, expiresAt: null, maxUses: null });
        }
        const max = 5;
        const calls: Promise<unknown>[] = [
          ...Array.from({ length: 10 }, (_, i) => store.createGroup({ id: `c${i}`, name: `c${i}`, visibility: 'public', createdBy: 'me', now: T0, maxConversations: max })),
          ...groups.slice(0, 5).map((id) => store.addMember({ conversationId: id, userId: 'me', role: 'member', now: T0, maxMembers: BIG, maxConversations: max })),
          ...groups.slice(5).map((id) => store.redeemInvite({ token: `t-${id}`, userId: 'me', now: T0, maxMembers: BIG, maxConversations: max })),
          ...peers.map((p, i) => store.openDirect({ id: `d${i}`, a: i % 2 ? 'me' : p, b: i % 2 ? p : 'me', now: T0, maxConversations: max })),
        ];
        const results = await Promise.allSettled(calls);
        const fulfilled = results.filter((r) => r.status === 'fulfilled').length;
        const refused = results.filter((r) => r.status === 'rejected' && isParleyError(r.reason) && r.reason.code === 'LIMIT_EXCEEDED').length;
        assert.equal(fulfilled, max);
        assert.equal(refused, calls.length - max);
        assert.equal(await store.countMemberships('me'), max);
      });

      test('members must be existing users: an unknown user rejects NOT_FOUND and changes nothing', async (store) => {
        await addUsers(store, 'u1');
        await addGroup(store, 'g', 'u1');
        await rejectsWith(store.createGroup({ id: 'h', name: 'x', visibility: 'public', createdBy: 'ghost', now: T0 }), 'NOT_FOUND');
        await rejectsWith(store.openDirect({ id: 'd', a: 'u1', b: 'ghost', now: T0 }), 'NOT_FOUND');
        await rejectsWith(store.addMember({ conversationId: 'g', userId: 'ghost', role: 'member', now: T0, maxMembers: BIG }), 'NOT_FOUND');
        assert.equal(await store.getConversation('h'), null);
        assert.equal(await store.getConversation('d'), null);
        assert.deepEqual(await store.listConversationIds('u1'), ['g']);
        assert.equal((await store.getConversation('g'))?.memberCount, 1);
      });

      test('removeMember removes once and keeps memberCount right', async (store) => {
        await addUsers(store, 'u1', 'u2');
        await addGroup(store, 'g', 'u1', ['u2']);
        assert.deepEqual(await store.removeMember('g', 'u2'), { removed: true, memberCount: 1 });
        assert.deepEqual(await store.removeMember('g', 'u2'), { removed: false });
        assert.deepEqual(await store.removeMember('nope', 'u2'), { removed: false });
        assert.equal(await store.getMember('g', 'u2'), null);
        assert.equal((await store.getConversation('g'))?.memberCount, 1);
        assert.deepEqual(await store.listConversationIds('u2'), []);
      });

      test('setRole changes the role; null for a non-member', async (store) => {
        await addUsers(store, 'u1', 'u2', 'u3');
        await addGroup(store, 'g', 'u1', ['u2']);
        assert.equal((await store.setRole('g', 'u2', 'admin'))?.role, 'admin');
        assert.equal((await store.getMember('g', 'u2'))?.role, 'admin');
        assert.equal(await store.setRole('g', 'u3', 'admin'), null);
        assert.equal(await store.getMember('g', 'u3'), null);
      });

      test('member listings and counts agree', async (store) => {
        await addUsers(store, 'u1', 'u2', 'u3');
        await addGroup(store, 'g1', 'u1', ['u2', 'u3']);
        await addGroup(store, 'g2', 'u2');
        assert.deepEqual((await store.listMembers('g1')).map((m) => [m.userId, m.name, m.role]).sort(),
          [['u1', 'name-u1', 'owner'], ['u2', 'name-u2', 'member'], ['u3', 'name-u3', 'member']]);
        assert.deepEqual((await store.listMemberIds('g1')).sort(), ['u1', 'u2', 'u3']);
        assert.deepEqual((await store.listConversationIds('u2')).sort(), ['g1', 'g2']);
        assert.equal(await store.countMemberships('u2'), 2);
        assert.equal(await store.countMemberships('u3'), 1);
        assert.equal(await store.countMemberships('nobody'), 0);
        assert.deepEqual(await store.listMembers('nope'), []);
      });

      test('listContacts lists everyone sharing a conversation, once, without the user', async (store) => {
        await addUsers(store, 'me', 'a', 'b', 'c', 'stranger', 'x');
        await addGroup(store, 'g1', 'me', ['a', 'b']);
        await addGroup(store, 'g2', 'a', ['me']);
        await store.openDirect({ id: 'd', a: 'c', b: 'me', now: T0 });
        await addGroup(store, 'g3', 'stranger', ['x']);
        assert.deepEqual((await store.listContacts('me')).sort(), ['a', 'b', 'c']);
        assert.deepEqual((await store.listContacts('b')).sort(), ['a', 'me']);
        await store.removeMember('g1', 'b');
        assert.deepEqual((await store.listContacts('me')).sort(), ['a', 'c']);
        assert.deepEqual(await store.listContacts('nobody'), []);
      });
    });

    describe('bans', () => {
      test('banMember removes a member in the same transaction and keeps them out of addMember and redeemInvite', async (store) => {
        await addUsers(store, 'u1', 'u2');
        await addGroup(store, 'g', 'u1');
        await store.addMember({ conversationId: 'g', userId: 'u2', role: 'member', now: T0, maxMembers: 10 });
        assert.deepEqual(await store.banMember({ conversationId: 'g', userId: 'u2', by: 'u1', now: T0 + 1 }), { removed: true, memberCount: 1 });
        assert.equal(await store.getMember('g', 'u2'), null);
        assert.equal((await store.getConversation('g'))?.memberCount, 1);
        assert.deepEqual(await store.addMember({ conversationId: 'g', userId: 'u2', role: 'member', now: T0, maxMembers: 10 }), { status: 'banned' });
        await store.createInvite({ token: 'bt', conversationId: 'g', createdBy: 'u1', createdAt: T0, expiresAt: null, maxUses: 1 });
        assert.deepEqual(await store.redeemInvite({ token: 'bt', userId: 'u2', now: T0, maxMembers: 10 }), { status: 'banned' });
        assert.equal((await store.getInvite('bt'))?.uses, 0, 'a refused redemption spends no use');
        assert.deepEqual(await store.listBans('g'), [{ userId: 'u2', name: 'name-u2', bannedBy: 'u1', bannedAt: T0 + 1 }]);
        assert.deepEqual(await store.banMember({ conversationId: 'g', userId: 'u2', by: 'u1', now: T0 + 9 }), { removed: false });
        assert.equal((await store.listBans('g'))[0].bannedAt, T0 + 1, 'banning again keeps the first ban');
        assert.equal(await store.unbanMember('g', 'u2'), true);
        assert.equal(await store.unbanMember('g', 'u2'), false);
        assert.equal((await store.addMember({ conversationId: 'g', userId: 'u2', role: 'member', now: T0, maxMembers: 10 })).status, 'added');
      });

      test('bans go with their conversation', async (store) => {
        await addUsers(store, 'u1', 'u2');
        await addGroup(store, 'g', 'u1');
        await store.banMember({ conversationId: 'g', userId: 'u2', by: 'u1', now: T0 });
        await store.deleteConversation('g');
        await addGroup(store, 'g', 'u1');
        assert.deepEqual(await store.listBans('g'), []);
      });
    });

    describe('invites', () => {
      async function setup(store: Store, invite: { expiresAt?: number | null; maxUses?: number | null } = {}) {
        await addUsers(store, 'owner', 'u1', 'u2', 'u3');
        await addGroup(store, 'g', 'owner');
        return store.createInvite({
          token: 'tok', conversationId: 'g', createdBy: 'owner', createdAt: T0,
          expiresAt: invite.expiresAt ?? null, maxUses: invite.maxUses ?? null,
        });
      }
      const redeem = (store: Store, userId: string, now = T0, maxMembers = BIG) =>
        store.redeemInvite({ token: 'tok', userId, now, maxMembers });

      test('createInvite stores it; getInvite and listInvites read it back', async (store) => {
        const invite = await setup(store, { expiresAt: T0 + 1000, maxUses: 3 });
        const expected = { token: 'tok', conversationId: 'g', createdBy: 'owner', createdAt: T0, expiresAt: T0 + 1000, maxUses: 3, uses: 0, revoked: false };
        assert.deepEqual(invite, expected);
        assert.deepEqual(await store.getInvite('tok'), expected);
        assert.deepEqual(await store.listInvites('g'), [expected]);
        assert.equal(await store.getInvite('nope'), null);
        assert.deepEqual(await store.listInvites('nope'), []);
      });

      test('redeeming joins the user as a member and counts a use', async (store) => {
        await setup(store);
        await send(store, 'g', 'owner', 3);
        const result = await redeem(store, 'u1', T0 + 7);
        assert.deepEqual(result, {
          status: 'joined', conversationId: 'g', member: { userId: 'u1', name: 'name-u1', role: 'member', joinedAt: T0 + 7, readSeq: 3 }, memberCount: 2,
        });
        assert.equal((await store.getInvite('tok'))?.uses, 1);
        assert.equal((await store.getConversation('g'))?.memberCount, 2);
      });

      test('an existing member gets already_member and no use is counted', async (store) => {
        await setup(store, { maxUses: 5 });
        await redeem(store, 'u1');
        const again = await redeem(store, 'u1');
        assert.equal(again.status, 'already_member');
        assert.ok(again.status === 'already_member' && again.member.userId === 'u1' && again.conversationId === 'g');
        assert.equal((await store.getInvite('tok'))?.uses, 1);
        assert.equal((await redeem(store, 'owner')).status, 'already_member');
        assert.equal((await store.getInvite('tok'))?.uses, 1);
      });

      test('an invite expires at expiresAt', async (store) => {
        await setup(store, { expiresAt: T0 + 100 });
        assert.deepEqual(await redeem(store, 'u1', T0 + 100), { status: 'expired' });
        assert.deepEqual(await redeem(store, 'u1', T0 + 500), { status: 'expired' });
        assert.equal(await store.getMember('g', 'u1'), null);
        assert.equal((await redeem(store, 'u1', T0 + 99)).status, 'joined');
      });

      test('an invite is exhausted after maxUses', async (store) => {
        await setup(store, { maxUses: 2 });
        assert.equal((await redeem(store, 'u1')).status, 'joined');
        assert.equal((await redeem(store, 'u2')).status, 'joined');
        assert.deepEqual(await redeem(store, 'u3'), { status: 'exhausted' });
        assert.equal(await store.getMember('g', 'u3'), null);
        assert.equal((await store.getInvite('tok'))?.uses, 2);
      });

      test('a revoked invite is refused; revoking an unknown token returns null', async (store) => {
        await setup(store);
        assert.equal((await store.revokeInvite('tok'))?.revoked, true);
        assert.equal((await store.getInvite('tok'))?.revoked, true);
        assert.deepEqual(await redeem(store, 'u1'), { status: 'revoked' });
        assert.equal(await store.getMember('g', 'u1'), null);
        assert.equal(await store.revokeInvite('nope'), null);
      });

      test('an unknown token is invalid', async (store) => {
        await setup(store);
        assert.deepEqual(await store.redeemInvite({ token: 'nope', userId: 'u1', now: T0, maxMembers: BIG }), { status: 'invalid' });
      });

      test('a full group refuses the redemption and counts no use', async (store) => {
        await setup(store);
        assert.deepEqual(await redeem(store, 'u1', T0, 1), { status: 'full' });
        assert.equal(await store.getMember('g', 'u1'), null);
        assert.equal((await store.getInvite('tok'))?.uses, 0);
      });

      test('a one-use invite redeemed concurrently by two users: exactly one joins', async (store) => {
        await setup(store, { maxUses: 1 });
        const results = await Promise.all([redeem(store, 'u1'), redeem(store, 'u2')]);
        assert.deepEqual(results.map((r) => r.status).sort(), ['exhausted', 'joined']);
        assert.equal((await store.getInvite('tok'))?.uses, 1);
        assert.equal((await store.getConversation('g'))?.memberCount, 2);
      });
    });

    describe('messages', () => {
      test('appendMessage assigns seq 1, 2, 3 and stores every field', async (store) => {
        await addUsers(store, 'u1', 'u2');
        await addGroup(store, 'g', 'u1', ['u2']);
        const meta = { reply: 1, tags: ['a', 'b'], nested: { ok: true, none: null } };
        const first = await store.appendMessage({ id: 'm1', conversationId: 'g', senderId: 'u1', key: 'k1', text: 'hello', meta, now: T0 + 10 });
        const expected = {
          id: 'm1', conversationId: 'g', seq: 1, senderId: 'u1', text: 'hello', meta, key: 'k1', createdAt: T0 + 10, editedAt: null, deleted: false,
        };
        assert.deepEqual(first, { message: expected, duplicate: false });
        assert.deepEqual(await store.getMessage('g', 1), expected);
        const second = await store.appendMessage(newMessage('g', 'u2', 'k1', { now: T0 + 20 }));
        const third = await store.appendMessage(newMessage('g', 'u1', 'k2', { now: T0 + 30 }));
        assert.deepEqual([second.message.seq, third.message.seq], [2, 3]);
        assert.equal((await store.getMessage('g', 2))?.meta, null);
        assert.equal((await store.getConversation('g'))?.lastSeq, 3);
        assert.equal((await store.getMyConversation('g', 'u1'))?.lastMessageAt, T0 + 30);
      });

      test('500 concurrent appends from several senders get seq 1..500, gap-free', async (store) => {
        const senders = ['s1', 's2', 's3', 's4', 's5'];
        await addUsers(store, ...senders);
        await addGroup(store, 'busy', 's1', senders.slice(1));
        await addGroup(store, 'other', 's1');
        const appends = Array.from({ length: 500 }, (_, i) =>
          store.appendMessage(newMessage('busy', senders[i % senders.length], `busy-${i}`, { text: `busy ${i}` })));
        const interleaved = Array.from({ length: 100 }, (_, i) =>
          store.appendMessage(newMessage('other', 's1', `other-${i}`)));
        const results = await Promise.all(appends);
        await Promise.all(interleaved);
        assert.ok(results.every((r) => !r.duplicate));
        assert.deepEqual(results.map((r) => r.message.seq).sort((a, b) => a - b), range(1, 500));
        const stored = await store.messagesAfter('busy', 0, 1000);
        assert.deepEqual(seqsOf(stored), range(1, 500));
        const textBySeq = new Map(results.map((r) => [r.message.seq, r.message.text]));
        assert.ok(stored.every((m) => textBySeq.get(m.seq) === m.text));
        assert.equal((await store.getConversation('busy'))?.lastSeq, 500);
        assert.deepEqual(seqsOf(await store.messagesAfter('other', 0, 1000)), range(1, 100));
      });

      test('messagesAfterMany answers each request in request order, as messagesAfter would', async (store) => {
        await addUsers(store, 'u1');
        await addGroup(store, 'a', 'u1');
        await addGroup(store, 'b', 'u1');
        for (let i = 0; i < 5; i++) await store.appendMessage(newMessage('a', 'u1', `a-${i}`));
        for (let i = 0; i < 3; i++) await store.appendMessage(newMessage('b', 'u1', `b-${i}`));
        const pages = await store.messagesAfterMany([
          { conversationId: 'b', afterSeq: 1 },
          { conversationId: 'nowhere', afterSeq: 0 },
          { conversationId: 'a', afterSeq: 0 },
          { conversationId: 'a', afterSeq: 5 },
        ], 3);
        assert.deepEqual(pages.map(seqsOf), [[2, 3], [], [1, 2, 3], []]);
        assert.deepEqual(pages[2], await store.messagesAfter('a', 0, 3), 'the same messages, field for field');
        assert.deepEqual(await store.messagesAfterMany([], 3), []);
      });

      test('a repeated (conversation, sender, key) returns the original as a duplicate and stores nothing', async (store) => {
        await addUsers(store, 'u1');
        await addGroup(store, 'g', 'u1');
        const original = await store.appendMessage(newMessage('g', 'u1', 'same', { text: 'first' }));
        const repeat = await store.appendMessage(newMessage('g', 'u1', 'same', { text: 'second', now: T0 + 99 }));
        assert.deepEqual(repeat, { message: original.message, duplicate: true });
        assert.equal((await store.getConversation('g'))?.lastSeq, 1);
        assert.equal((await store.messagesAfter('g', 0, 10)).length, 1);
      });

      test('concurrent repeats of one key store one message', async (store) => {
        await addUsers(store, 'u1');
        await addGroup(store, 'g', 'u1');
        const results = await Promise.all(Array.from({ length: 10 }, () => store.appendMessage(newMessage('g', 'u1', 'same'))));
        assert.equal(results.filter((r) => !r.duplicate).length, 1);
        assert.equal(new Set(results.map((r) => r.message.id)).size, 1);
        assert.ok(results.every((r) => r.message.seq === 1));
        assert.equal((await store.getConversation('g'))?.lastSeq, 1);
      });

      test('the same key from another sender, or in another conversation, is a distinct message', async (store) => {
        await addUsers(store, 'u1', 'u2');
        await addGroup(store, 'g', 'u1', ['u2']);
        await addGroup(store, 'h', 'u1');
        const a = await store.appendMessage(newMessage('g', 'u1', 'k'));
        const b = await store.appendMessage(newMessage('g', 'u2', 'k'));
        const c = await store.appendMessage(newMessage('h', 'u1', 'k'));
        assert.deepEqual([a.duplicate, b.duplicate, c.duplicate], [false, false, false]);
        assert.deepEqual([a.message.seq, b.message.seq, c.message.seq], [1, 2, 1]);
      });

      test('an append to a missing conversation rejects NOT_MEMBER alone; concurrent appends still succeed', async (store) => {
        await addUsers(store, 'u1');
        await addGroup(store, 'g', 'u1');
        const results = await Promise.allSettled([
          store.appendMessage(newMessage('g', 'u1', 'a')),
          store.appendMessage(newMessage('nope', 'u1', 'b')),
          store.appendMessage(newMessage('g', 'u1', 'c')),
        ]);
        assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
        await rejectsWith(store.appendMessage(newMessage('nope', 'u1', 'b')), 'NOT_MEMBER');
        assert.deepEqual(seqsOf(await store.messagesAfter('g', 0, 10)), [1, 2]);
        assert.equal(await store.getConversation('nope'), null);
      });

      test('keys compare exactly: canonically equal spellings and case variants are different keys', async (store) => {
        await addUsers(store, 'u1');
        await addGroup(store, 'g', 'u1');
        const keys = ['\u00e9', 'e\u0301', 'K1', 'k1', 'k1 ', '\ud83d\ude00'];
        for (const key of keys) assert.equal((await store.appendMessage(newMessage('g', 'u1', key))).duplicate, false, JSON.stringify(key));
        for (const key of keys) assert.equal((await store.appendMessage(newMessage('g', 'u1', key))).duplicate, true, JSON.stringify(key));
        assert.deepEqual((await store.messagesAfter('g', 0, 10)).map((m) => m.key), keys);
      });

      test('a text or key with U+0000 is kept exactly or refused INVALID_REQUEST, and only that append is affected', async (store) => {
        // Requests never carry U+0000 (the request checks refuse it); an engine must still not turn one into anything
        // but its own refusal (PostgreSQL text cannot hold it), nor fail the other appends of its group commit.
        await addUsers(store, 'u1');
        await addGroup(store, 'g', 'u1');
        const bad = [newMessage('g', 'u1', 'nul-text', { text: 'a\u0000b' }), newMessage('g', 'u1', 'nul\u0000key')];
        const results = await Promise.allSettled([
          store.appendMessage(newMessage('g', 'u1', 'a')), store.appendMessage(bad[0]!),
          store.appendMessage(newMessage('g', 'u1', 'b')), store.appendMessage(bad[1]!),
          store.appendMessage(newMessage('g', 'u1', 'c')),
        ]);
        assert.deepEqual([0, 2, 4].map((i) => results[i]!.status), ['fulfilled', 'fulfilled', 'fulfilled']);
        for (const i of [1, 3]) {
          const result = results[i]!;
          if (result.status === 'rejected') {
            assert.ok(isParleyError(result.reason), `a ParleyError, not ${String(result.reason)}`);
            assert.equal(result.reason.code, 'INVALID_REQUEST');
          }
        }
        const stored = await store.messagesAfter('g', 0, 10);
        assert.deepEqual(seqsOf(stored), stored.map((_, i) => i + 1), 'no gap');
        for (const [i, m] of [[1, bad[0]!], [3, bad[1]!]] as const) {
          const kept = stored.find((s) => s.id === m.id);
          assert.equal(kept !== undefined, results[i]!.status === 'fulfilled', 'stored exactly when accepted');
          if (kept) assert.deepEqual([kept.text, kept.key], [m.text, m.key]);
        }
      });

      test('an append by a non-member rejects NOT_MEMBER and stores nothing, even racing the removal', async (store) => {
        await addUsers(store, 'u1', 'u2');
        await addGroup(store, 'g', 'u1', ['u2']);
        await rejectsWith(store.appendMessage(newMessage('g', 'u3-unknown', 'x')), 'NOT_MEMBER');
        const removal = store.removeMember('g', 'u2');
        const racing = await Promise.allSettled([store.appendMessage(newMessage('g', 'u2', 'late'))]);
        await removal;
        const stored = await store.messagesAfter('g', 0, 10);
        // Either order is allowed; what is not allowed is a stored message from someone who is no longer a member
        // and was refused, or a gap.
        if (racing[0].status === 'fulfilled') assert.deepEqual(seqsOf(stored), [1]);
        else assert.deepEqual(stored, []);
        await rejectsWith(store.appendMessage(newMessage('g', 'u2', 'after')), 'NOT_MEMBER');
        assert.equal((await store.getConversation('g'))?.lastSeq, stored.length);
      });

      test('a retry by a member who left or was removed rejects NOT_MEMBER (not its duplicate); back as a member, it is again', async (store) => {
        await addUsers(store, 'u1', 'u2');
        await addGroup(store, 'g', 'u1', ['u2']);
        const first = await store.appendMessage(newMessage('g', 'u2', 'before'));
        assert.equal((await store.removeMember('g', 'u2')).removed, true);
        await rejectsWith(store.appendMessage(newMessage('g', 'u2', 'before')), 'NOT_MEMBER');
        await store.banMember({ conversationId: 'g', userId: 'u2', by: 'u1', now: T0 });
        await rejectsWith(store.appendMessage(newMessage('g', 'u2', 'before')), 'NOT_MEMBER');
        await store.unbanMember('g', 'u2');
        assert.equal((await store.addMember({ conversationId: 'g', userId: 'u2', role: 'member', now: T0, maxMembers: BIG })).status, 'added');
        const retry = await store.appendMessage(newMessage('g', 'u2', 'before'));
        assert.deepEqual([retry.duplicate, retry.message.seq], [true, first.message.seq]);
        assert.deepEqual(seqsOf(await store.messagesAfter('g', 0, 10)), [1]);
      });

      test('an append by a banned sender rejects BANNED and stores nothing; a retry of a stored one is still a duplicate', async (store) => {
        await addUsers(store, 'u1', 'u2');
        await addGroup(store, 'g', 'u1', ['u2']);
        const first = await store.appendMessage(newMessage('g', 'u2', 'before'));
        await store.setBanned('u2', true);
        await rejectsWith(store.appendMessage(newMessage('g', 'u2', 'after')), 'BANNED');
        const retry = await store.appendMessage(newMessage('g', 'u2', 'before'));
        assert.deepEqual([retry.duplicate, retry.message.seq], [true, first.message.seq]);
        assert.deepEqual(seqsOf(await store.messagesAfter('g', 0, 10)), [1]);
        await store.setBanned('u2', false);
        assert.equal((await store.appendMessage(newMessage('g', 'u2', 'unbanned'))).message.seq, 2);
      });

      test('editMessage replaces text and meta and sets editedAt; null when missing', async (store) => {
        await addUsers(store, 'u1');
        await addGroup(store, 'g', 'u1');
        const { message } = await store.appendMessage(newMessage('g', 'u1', 'k', { meta: { v: 1 } }));
        const edited = await store.editMessage({ conversationId: 'g', seq: 1, text: 'fixed', meta: { v: 2 }, now: T0 + 50 });
        const expected = { ...message, text: 'fixed', meta: { v: 2 }, editedAt: T0 + 50 };
        assert.deepEqual(edited, expected);
        assert.deepEqual(await store.getMessage('g', 1), expected);
        assert.equal((await store.editMessage({ conversationId: 'g', seq: 1, text: 'plain', meta: null, now: T0 + 60 }))?.meta, null);
        assert.equal(await store.editMessage({ conversationId: 'g', seq: 2, text: 'x', meta: null, now: T0 }), null);
        assert.equal(await store.getMessage('g', 2), null);
        assert.equal(await store.getMessage('nope', 1), null);
      });

      test('deleteMessage leaves a tombstone that keeps its seq', async (store) => {
        await addUsers(store, 'u1');
        await addGroup(store, 'g', 'u1');
        await send(store, 'g', 'u1', 3);
        const tombstone = await store.deleteMessage({ conversationId: 'g', seq: 2, now: T0 + 90 });
        assert.ok(tombstone);
        assert.equal(tombstone.seq, 2);
        assert.equal(tombstone.deleted, true);
        assert.equal(tombstone.text, '');
        assert.equal(tombstone.meta, null);
        assert.deepEqual(await store.getMessage('g', 2), tombstone);
        assert.deepEqual(seqsOf(await store.messagesAfter('g', 0, 10)), [1, 2, 3]);
        assert.equal((await store.getConversation('g'))?.lastSeq, 3);
        assert.equal((await store.appendMessage(newMessage('g', 'u1', 'next'))).message.seq, 4);
        assert.equal(await store.deleteMessage({ conversationId: 'g', seq: 9, now: T0 }), null);
      });

      test('messagesAfter pages forward in ascending order', async (store) => {
        await addUsers(store, 'u1');
        await addGroup(store, 'g', 'u1');
        await send(store, 'g', 'u1', 10);
        assert.deepEqual(seqsOf(await store.messagesAfter('g', 0, 4)), [1, 2, 3, 4]);
        assert.deepEqual(seqsOf(await store.messagesAfter('g', 4, 4)), [5, 6, 7, 8]);
        assert.deepEqual(seqsOf(await store.messagesAfter('g', 8, 4)), [9, 10]);
        assert.deepEqual(await store.messagesAfter('g', 10, 4), []);
        assert.deepEqual(await store.messagesAfter('nope', 0, 4), []);
      });

      test('messagesBefore returns the newest below a seq, ascending', async (store) => {
        await addUsers(store, 'u1');
        await addGroup(store, 'g', 'u1');
        await send(store, 'g', 'u1', 10);
        assert.deepEqual(seqsOf(await store.messagesBefore('g', null, 3)), [8, 9, 10]);
        assert.deepEqual(seqsOf(await store.messagesBefore('g', 8, 3)), [5, 6, 7]);
        assert.deepEqual(seqsOf(await store.messagesBefore('g', 3, 3)), [1, 2]);
        assert.deepEqual(await store.messagesBefore('g', 1, 3), []);
        assert.deepEqual(seqsOf(await store.messagesBefore('g', null, 50)), range(1, 10));
      });

      test('messagesBeforeTime returns the newest created strictly before a time, ascending', async (store) => {
        await addUsers(store, 'u1');
        await addGroup(store, 'g', 'u1');
        await send(store, 'g', 'u1', 10, (i) => T0 + (i + 1) * 1000);
        assert.deepEqual(seqsOf(await store.messagesBeforeTime('g', T0 + 5000, 2)), [3, 4]);
        assert.deepEqual(seqsOf(await store.messagesBeforeTime('g', T0 + 5001, 2)), [4, 5]);
        assert.deepEqual(seqsOf(await store.messagesBeforeTime('g', T0 + 99_000, 3)), [8, 9, 10]);
        assert.deepEqual(await store.messagesBeforeTime('g', T0 + 1000, 3), []);
      });
      test('createdAt never decreases along seq, even when the clock goes back; history by time follows it', async (store) => {
        await addUsers(store, 'u1');
        await addGroup(store, 'g', 'u1');
        const times = [T0 + 5000, T0 + 3000, T0 + 7000, T0 + 6000];
        await send(store, 'g', 'u1', times.length, (i) => times[i]);
        const createdAt = (await store.messagesAfter('g', 0, 10)).map((m) => m.createdAt);
        assert.deepEqual(createdAt, [T0 + 5000, T0 + 5000, T0 + 7000, T0 + 7000]);
        assert.deepEqual(seqsOf(await store.messagesBeforeTime('g', T0 + 7000, 10)), [1, 2]);
        assert.deepEqual(seqsOf(await store.messagesBeforeTime('g', T0 + 7001, 10)), [1, 2, 3, 4]);
        assert.deepEqual(await store.messagesBeforeTime('g', T0 + 5000, 10), []);
        assert.deepEqual(await store.messagesBeforeTime('nope', T0 + 9000, 10), []);
      });
    });

    describe('read state', () => {
      test('markRead moves forward only and clamps to lastSeq', async (store) => {
        await addUsers(store, 'u1', 'u2');
        await addGroup(store, 'g', 'u1', ['u2']);
        await send(store, 'g', 'u1', 5);
        assert.deepEqual(await store.markRead('g', 'u2', 3), { readSeq: 3, unread: 2, moved: true });
        assert.deepEqual(await store.markRead('g', 'u2', 1), { readSeq: 3, unread: 2, moved: false });
        assert.deepEqual(await store.markRead('g', 'u2', 3), { readSeq: 3, unread: 2, moved: false });
        assert.deepEqual(await store.markRead('g', 'u2', 99), { readSeq: 5, unread: 0, moved: true });
        assert.equal((await store.getMember('g', 'u2'))?.readSeq, 5);
        await send(store, 'g', 'u1', 1);
        assert.deepEqual(await store.markRead('g', 'u2', 99), { readSeq: 6, unread: 0, moved: true });
      });

      test('sending moves the sender\'s cursor to the message, so unread counts only others\' messages', async (store) => {
        await addUsers(store, 'u1', 'u2');
        await addGroup(store, 'g', 'u1', ['u2']);
        await send(store, 'g', 'u1', 3);
        assert.equal((await store.getMember('g', 'u1'))?.readSeq, 3);
        assert.equal((await store.getMyConversation('g', 'u2'))?.unread, 3);
        await send(store, 'g', 'u2', 2);
        assert.equal((await store.getMember('g', 'u2'))?.readSeq, 5, 'replying implies having read what came before');
        await send(store, 'g', 'u1', 1);
        assert.deepEqual(await store.markRead('g', 'u2', 0), { readSeq: 5, unread: 1, moved: false });
        assert.deepEqual(await store.markRead('g', 'u1', 0), { readSeq: 6, unread: 0, moved: false });
        assert.equal((await store.getMyConversation('g', 'u2'))?.unread, 1);
        assert.equal((await store.getMyConversation('g', 'u1'))?.unread, 0);
        assert.equal((await store.listMyConversations('u2'))[0].unread, 1);
      });

      test('markRead for a non-member returns null', async (store) => {
        await addUsers(store, 'u1', 'u2');
        await addGroup(store, 'g', 'u1');
        assert.equal(await store.markRead('g', 'u2', 1), null);
        assert.equal(await store.markRead('nope', 'u1', 1), null);
      });

      test('a new member starts reading at the current lastSeq', async (store) => {
        await addUsers(store, 'u1', 'late');
        await addGroup(store, 'g', 'u1');
        await send(store, 'g', 'u1', 7);
        const added = await store.addMember({ conversationId: 'g', userId: 'late', role: 'member', now: T0, maxMembers: BIG });
        assert.ok(added.status === 'added');
        assert.equal(added.member.readSeq, 7);
        assert.equal((await store.getMyConversation('g', 'late'))?.unread, 0);
        await send(store, 'g', 'u1', 1);
        assert.equal((await store.getMyConversation('g', 'late'))?.unread, 1);
      });
    });

    describe('keyset pages of lists', () => {
      test('listMembers with a page returns join order after the cursor, at most limit; members joining meanwhile do not shift it', async (store) => {
        await addUsers(store, 'u1', 'u2', 'u3', 'u4', 'u5');
        await store.createGroup({ id: 'g', name: 'Team', visibility: 'public', createdBy: 'u1', now: T0 });
        for (const [i, userId] of ['u3', 'u2', 'u4'].entries()) {
          await store.addMember({ conversationId: 'g', userId, role: 'member', now: T0 + 1 + (i === 2 ? 1 : 0), maxMembers: BIG });
        }
        const all = await store.listMembers('g');
        assert.deepEqual(all.map((m) => m.userId), ['u1', 'u2', 'u3', 'u4']);
        const first = await store.listMembers('g', { limit: 2 });
        assert.deepEqual(first.map((m) => m.userId), ['u1', 'u2']);
        await store.addMember({ conversationId: 'g', userId: 'u5', role: 'member', now: T0 - 5, maxMembers: BIG });
        const last = first[1];
        const next = await store.listMembers('g', { after: { joinedAt: last.joinedAt, userId: last.userId }, limit: 10 });
        assert.deepEqual(next.map((m) => m.userId), ['u3', 'u4']);
      });

      test('listMyConversations with a page follows activity order after the cursor, at most limit', async (store) => {
        await addUsers(store, 'me');
        for (const [i, id] of ['c1', 'c2', 'c3', 'c4'].entries()) {
          await store.createGroup({ id, name: id, visibility: 'private', createdBy: 'me', now: T0 + (i < 2 ? 0 : i) });
        }
        await send(store, 'c1', 'me', 1, () => T0 + 10);
        const all = (await store.listMyConversations('me')).map((c) => c.id);
        assert.deepEqual(all, ['c1', 'c4', 'c3', 'c2']);
        const first = await store.listMyConversations('me', { limit: 3 });
        assert.deepEqual(first.map((c) => c.id), ['c1', 'c4', 'c3']);
        const last = first[2];
        const rest = await store.listMyConversations('me', { after: { activityAt: last.lastMessageAt ?? last.createdAt, id: last.id }, limit: 3 });
        assert.deepEqual(rest.map((c) => c.id), ['c2']);
        // Two with the same activity time are ordered by id and split cleanly.
        await store.createGroup({ id: 'c0', name: 'c0', visibility: 'private', createdBy: 'me', now: T0 });
        const tail = await store.listMyConversations('me', { after: { activityAt: T0, id: 'c0' }, limit: 10 });
        assert.deepEqual(tail.map((c) => c.id), ['c2']);
      });

      test('listInvites with a page returns creation order after the cursor, at most limit', async (store) => {
        await addUsers(store, 'u1');
        await addGroup(store, 'g', 'u1');
        for (const [i, token] of ['t3', 't1', 't2'].entries()) {
          await store.createInvite({ token, conversationId: 'g', createdBy: 'u1', createdAt: T0 + (i === 0 ? 0 : 1), expiresAt: null, maxUses: null });
        }
        assert.deepEqual((await store.listInvites('g', { limit: 2 })).map((i) => i.token), ['t3', 't1']);
        assert.deepEqual((await store.listInvites('g', { after: { createdAt: T0 + 1, token: 't1' }, limit: 2 })).map((i) => i.token), ['t2']);
        assert.deepEqual((await store.listInvites('g')).map((i) => i.token), ['t3', 't1', 't2']);
      });

      test('listBans with a page returns ban order after the cursor, at most limit, each ban once', async (store) => {
        await addUsers(store, 'u1', 'b3', 'b1', 'b2', 'b4');
        await addGroup(store, 'g', 'u1');
        // b3 first; b1 and b2 at the same moment (ordered by id); b4 last. None of them is a member: banned ahead.
        for (const [userId, at] of [['b3', T0], ['b1', T0 + 1], ['b2', T0 + 1], ['b4', T0 + 2]] as const) {
          await store.banMember({ conversationId: 'g', userId, by: 'u1', now: at });
        }
        assert.deepEqual((await store.listBans('g', { limit: 2 })).map((b) => b.userId), ['b3', 'b1']);
        assert.deepEqual((await store.listBans('g', { after: { bannedAt: T0 + 1, userId: 'b1' }, limit: 2 })).map((b) => b.userId), ['b2', 'b4']);
        assert.deepEqual((await store.listBans('g', { after: { bannedAt: T0 + 2, userId: 'b4' }, limit: 2 })), []);
        assert.deepEqual((await store.listBans('g', { after: { bannedAt: T0, userId: 'b3' }, limit: 10 }))[0], { userId: 'b1', name: 'name-b1', bannedBy: 'u1', bannedAt: T0 + 1 });
        assert.deepEqual((await store.listBans('g')).map((b) => b.userId), ['b3', 'b1', 'b2', 'b4']);
        assert.deepEqual(await store.listBans('other', { limit: 5 }), []);
      });
    });

    describe('change catch-up (rev)', () => {
      test('appends bump no rev; each edit, delete, read move, join, role, leave and rename bumps it by one', async (store) => {
        await addUsers(store, 'u1', 'u2', 'u3');
        await addGroup(store, 'g', 'u1', ['u2']);
        const joined = (await store.getConversation('g'))?.rev ?? -1;
        assert.equal(joined, 1, 'the join of u2');
        await send(store, 'g', 'u1', 3);
        assert.equal((await store.getConversation('g'))?.rev, 1, 'appends leave rev alone');
        assert.deepEqual(await store.changesSince('g', 1, 10), []);

        await store.editMessage({ conversationId: 'g', seq: 1, text: 'edited', meta: null, now: T0 + 10 });
        await store.deleteMessage({ conversationId: 'g', seq: 2, now: T0 + 11 });
        await store.markRead('g', 'u2', 3);
        await store.markRead('g', 'u2', 3); // does not move: no change
        await store.setRole('g', 'u2', 'admin');
        await store.addMember({ conversationId: 'g', userId: 'u3', role: 'member', now: T0, maxMembers: BIG });
        await store.removeMember('g', 'u3');
        await store.renameConversation('g', 'renamed');
        const conversation = await store.getConversation('g');
        assert.equal(conversation?.rev, 8);

        const changes = await store.changesSince('g', 1, 100);
        // u2's read move (rev 4) and role change (rev 5) are one row: only its latest change (5) is listed.
        assert.deepEqual(changes.map((c) => [c.rev, c.kind]), [[2, 'message'], [3, 'message'], [5, 'member'], [7, 'left']]);
        const [edit, del, member, left] = changes;
        assert.ok(edit.kind === 'message' && edit.message.seq === 1 && edit.message.text === 'edited');
        assert.ok(del.kind === 'message' && del.message.seq === 2 && del.message.deleted);
        assert.ok(member.kind === 'member' && member.member.userId === 'u2' && member.member.role === 'admin' && member.member.readSeq === 3);
        assert.ok(left.kind === 'left' && left.userId === 'u3');
        assert.deepEqual((await store.changesSince('g', 3, 100)).map((c) => c.rev), [5, 7]);
        assert.deepEqual((await store.changesSince('g', 1, 2)).map((c) => c.rev), [2, 3], 'limit keeps the oldest');
        assert.deepEqual(await store.changesSince('g', 8, 100), []);
      });

      test('a member who comes back is listed as a member, not as departed', async (store) => {
        await addUsers(store, 'u1', 'u2');
        await addGroup(store, 'g', 'u1', ['u2']);
        await store.removeMember('g', 'u2');
        await store.addMember({ conversationId: 'g', userId: 'u2', role: 'member', now: T0, maxMembers: BIG });
        const changes = await store.changesSince('g', 0, 100);
        assert.deepEqual(changes.map((c) => [c.rev, c.kind]), [[3, 'member']]);
      });

      test('a change that changes nothing (edit of a tombstone) bumps no rev', async (store) => {
        await addUsers(store, 'u1');
        await addGroup(store, 'g', 'u1');
        await send(store, 'g', 'u1', 1);
        await store.deleteMessage({ conversationId: 'g', seq: 1, now: T0 });
        assert.equal(await store.editMessage({ conversationId: 'g', seq: 1, text: 'x', meta: null, now: T0 }), null);
        assert.equal(await store.deleteMessage({ conversationId: 'g', seq: 1, now: T0 }), null);
        assert.equal((await store.getConversation('g'))?.rev, 1);
      });
    });

    describe('my conversations', () => {
      test('getMyConversation shows a group as the member sees it; null for a non-member', async (store) => {
        await addUsers(store, 'u1', 'u2', 'u3');
        await store.createGroup({ id: 'g', name: 'Team', visibility: 'public', createdBy: 'u1', now: T0 });
        await store.addMember({ conversationId: 'g', userId: 'u2', role: 'admin', now: T0, maxMembers: BIG });
        await send(store, 'g', 'u1', 4, (i) => T0 + 100 + i);
        await store.markRead('g', 'u2', 1);
        const expected: MyConversation = {
          id: 'g', kind: 'group', name: 'Team', visibility: 'public', createdAt: T0, createdBy: 'u1', lastSeq: 4, memberCount: 2, rev: 2,
          role: 'admin', readSeq: 1, unread: 3, peer: null, lastMessageAt: T0 + 103,
        };
        assert.deepEqual(await store.getMyConversation('g', 'u2'), expected);
        assert.deepEqual(await store.getMyConversation('g', 'u1'), { ...expected, role: 'owner', readSeq: 4, unread: 0 });
        assert.equal(await store.getMyConversation('g', 'u3'), null);
        assert.equal(await store.getMyConversation('nope', 'u1'), null);
      });

      test('a direct conversation shows the other member as peer', async (store) => {
        await addUsers(store, 'a', 'b');
        await store.openDirect({ id: 'd', a: 'a', b: 'b', now: T0 });
        const forA = await store.getMyConversation('d', 'a');
        assert.deepEqual(forA, {
          id: 'd', kind: 'direct', name: null, visibility: 'private', createdAt: T0, createdBy: 'a', lastSeq: 0, memberCount: 2, rev: 0,
          role: 'member', readSeq: 0, unread: 0, peer: { id: 'b', name: 'name-b' }, lastMessageAt: null,
        });
        assert.deepEqual((await store.getMyConversation('d', 'b'))?.peer, { id: 'a', name: 'name-a' });
      });

      test('listMyConversations lists exactly the user\'s conversations, each as getMyConversation shows it', async (store) => {
        await addUsers(store, 'me', 'a', 'b');
        await addGroup(store, 'g1', 'me', ['a']);
        await addGroup(store, 'g2', 'a', ['me']);
        await addGroup(store, 'g3', 'a', ['b']);
        await store.openDirect({ id: 'd', a: 'b', b: 'me', now: T0 });
        await send(store, 'g2', 'a', 2);
        await send(store, 'd', 'b', 1);
        const mine = await store.listMyConversations('me');
        assert.deepEqual(mine.map((c) => c.id).sort(), ['d', 'g1', 'g2']);
        for (const conversation of mine) assert.deepEqual(conversation, await store.getMyConversation(conversation.id, 'me'));
        const byId = new Map(mine.map((c) => [c.id, c]));
        assert.equal(byId.get('g2')?.unread, 2);
        assert.equal(byId.get('g2')?.role, 'member');
        assert.equal(byId.get('g1')?.role, 'owner');
        assert.deepEqual(byId.get('d')?.peer, { id: 'b', name: 'name-b' });
        assert.deepEqual(await store.listMyConversations('nobody'), []);
      });

      test('listPositions gives each of the user\'s conversations as listMyConversations does, in its order', async (store) => {
        await addUsers(store, 'me', 'a');
        await addGroup(store, 'g1', 'me', ['a']);
        await addGroup(store, 'g2', 'a', ['me']);
        await addGroup(store, 'g3', 'a');
        await store.openDirect({ id: 'd', a: 'a', b: 'me', now: T0 });
        await send(store, 'g2', 'a', 3, (i) => T0 + 10 + i);
        await send(store, 'd', 'a', 1, () => T0 + 20);
        await store.markRead('g2', 'me', 1);
        await store.editMessage({ conversationId: 'g2', seq: 2, text: 'edited', meta: null, now: T0 + 30 });
        const positions = await store.listPositions('me');
        const mine = await store.listMyConversations('me');
        assert.deepEqual(positions, mine.map((c) => ({ id: c.id, lastSeq: c.lastSeq, rev: c.rev, readSeq: c.readSeq })));
        assert.deepEqual(positions.map((p) => p.id), ['d', 'g2', 'g1']);
        assert.deepEqual(await store.listPositions('nobody'), []);
      });

      // welcome's positions (src/gateway/gateway.ts, setUp) must cover every message published before them: a read
      // sees every append acknowledged before it, for a short list and a long one.
      for (const count of [3, 300]) {
        test(`listPositions sees every append acknowledged before it (a user in ${count} conversations)`, async (store) => {
          await addUsers(store, 'me');
          for (let i = 0; i < count; i++) await store.createGroup({ id: `g${String(i).padStart(3, '0')}`, name: `g${i}`, visibility: 'private', createdBy: 'me', now: T0 + i });
          assert.equal((await store.listPositions('me')).length, count);
          // g000 is the least recently active; each append makes it the first, at the seq the append was given.
          for (let round = 1; round <= 3; round++) {
            const { message } = await store.appendMessage(newMessage('g000', 'me', `p-${round}`, { now: T0 + 10_000 + round }));
            const [first] = await store.listPositions('me');
            assert.deepEqual({ id: first?.id, lastSeq: first?.lastSeq }, { id: 'g000', lastSeq: message.seq });
            assert.equal(message.seq, round);
          }
        });
      }
    });

    describe('deleteConversation', () => {
      test('removes the conversation with its members, invites and messages', async (store) => {
        await addUsers(store, 'u1', 'u2');
        await addGroup(store, 'g', 'u1', ['u2']);
        await addGroup(store, 'keep', 'u1', ['u2']);
        await store.createInvite({ token: 'tok', conversationId: 'g', createdBy: 'u1', createdAt: T0, expiresAt: null, maxUses: null });
        await send(store, 'g', 'u2', 3);
        await send(store, 'keep', 'u2', 2);
        assert.equal(await store.deleteConversation('g'), true);
        assert.equal(await store.getConversation('g'), null);
        assert.equal(await store.getMember('g', 'u1'), null);
        assert.deepEqual(await store.listMemberIds('g'), []);
        assert.equal(await store.getInvite('tok'), null);
        assert.deepEqual(await store.listInvites('g'), []);
        assert.equal(await store.getMessage('g', 1), null);
        assert.deepEqual(await store.messagesAfter('g', 0, 10), []);
        assert.deepEqual(await store.listConversationIds('u2'), ['keep']);
        assert.equal(await store.countMemberships('u1'), 1);
        assert.equal(await store.getMyConversation('g', 'u1'), null);
        assert.equal(await store.markRead('g', 'u1', 1), null);
        assert.deepEqual(await store.listContacts('u1'), ['u2']);
        assert.equal(await store.deleteConversation('g'), false);
        assert.deepEqual(seqsOf(await store.messagesAfter('keep', 0, 10)), [1, 2]);
      });

      test('deleteConversationWithMembers returns the members of the moment, in the same transaction', async (store) => {
        await addUsers(store, 'u1', 'u2', 'u3');
        await addGroup(store, 'g', 'u1', ['u2']);
        assert.deepEqual(await store.deleteConversationWithMembers({ id: 'nope' }), { status: 'not_found' });
        const joining = store.addMember({ conversationId: 'g', userId: 'u3', role: 'member', now: T0, maxMembers: BIG });
        const deleted = await store.deleteConversationWithMembers({ id: 'g' });
        const joined = await joining;
        assert.equal(deleted.status, 'deleted');
        // Whichever came first, a member who joined is among those told, and one who did not finds no conversation.
        const told = deleted.status === 'deleted' ? deleted.memberIds : [];
        if (joined.status === 'added') assert.deepEqual(told, ['u1', 'u2', 'u3']);
        else assert.deepEqual([joined.status, told], ['no_conversation', ['u1', 'u2']]);
        assert.equal(await store.getConversation('g'), null);
      });

      test('deleteConversationWithMembers with onlyMember deletes only when that user is the one member', async (store) => {
        await addUsers(store, 'u1', 'u2');
        await addGroup(store, 'g', 'u1', ['u2']);
        assert.deepEqual(await store.deleteConversationWithMembers({ id: 'g', onlyMember: 'u1' }), { status: 'others_remain' });
        assert.deepEqual(await store.listMemberIds('g'), ['u1', 'u2']);
        assert.deepEqual(await store.deleteConversationWithMembers({ id: 'g', onlyMember: 'nobody' }), { status: 'not_found' });
        await store.removeMember('g', 'u2');
        assert.deepEqual(await store.deleteConversationWithMembers({ id: 'g', onlyMember: 'u1' }), { status: 'deleted', memberIds: ['u1'] });
        assert.equal(await store.getConversation('g'), null);
      });

      test('a deleted direct conversation can be opened afresh', async (store) => {
        await addUsers(store, 'a', 'b');
        await store.openDirect({ id: 'd1', a: 'a', b: 'b', now: T0 });
        await store.deleteConversation('d1');
        const reopened = await store.openDirect({ id: 'd2', a: 'b', b: 'a', now: T0 });
        assert.deepEqual([reopened.conversation.id, reopened.created], ['d2', true]);
      });
    });
  });
}
