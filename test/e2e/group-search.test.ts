import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { Seats } from '../helpers/seats.js';

describe('conversation.search', () => {
  let server: TestServer;
  const seats = new Seats(() => server, 'search');
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    seats.closeAll();
    await server.stop();
  });

  it('is case-insensitive beyond ASCII and folds compatibility forms (NFKC), over WebSocket and REST', async () => {
    const owner = await seats.seat('owner');
    const tag = randomUUID().slice(0, 6);
    const { conversation: moscow } = await owner.client.ok('conversation.create', { name: `Москва ${tag}` });
    const { conversation: wide } = await owner.client.ok('conversation.create', { name: `ＷＩＤＥ ${tag}` });
    const searcher = await seats.seat('searcher');
    for (const [query, id] of [[`москва ${tag}`, moscow.id], [`МОСКВА ${tag}`, moscow.id], [`wide ${tag}`, wide.id]]) {
      const { conversations } = await searcher.client.ok('conversation.search', { query });
      assert.deepEqual(conversations.map((c: any) => c.id), [id], query);
      const rest = await api(server, searcher.user.token, 'GET', `/api/v1/conversations/search?query=${encodeURIComponent(query)}`);
      assert.deepEqual(rest.body.conversations.map((c: any) => c.id), [id], `REST ${query}`);
    }
  });

  it('folds with full case folding and without diacritics: ẞ and ß match ss, İ matches i, é matches e', async () => {
    const owner = await seats.seat('owner');
    const tag = randomUUID().slice(0, 6);
    const { conversation: street } = await owner.client.ok('conversation.create', { name: `STRAẞE ${tag}` });
    const { conversation: city } = await owner.client.ok('conversation.create', { name: `İstanbul ${tag}` });
    const { conversation: cafe } = await owner.client.ok('conversation.create', { name: `Café José ${tag}` });
    for (const [query, id] of [
      [`strasse ${tag}`, street.id], [`straße ${tag}`, street.id], [`STRASSE ${tag}`, street.id],
      [`istanbul ${tag}`, city.id], [`ISTANBUL ${tag}`, city.id], [`İSTANBUL ${tag}`, city.id],
      [`cafe jose ${tag}`, cafe.id], [`CAFÉ JOSÉ ${tag}`, cafe.id],
    ]) {
      const { conversations } = await owner.client.ok('conversation.search', { query });
      assert.deepEqual(conversations.map((c: any) => c.id), [id], query);
    }
  });

  it('matches names that start with a one- or two-character query', async () => {
    const owner = await seats.seat('short');
    const { conversation } = await owner.client.ok('conversation.create', { name: `Ωmega ${randomUUID()}` });
    const { conversations } = await owner.client.ok('conversation.search', { query: 'ωm', limit: 100 });
    assert.ok(conversations.some((c: any) => c.id === conversation.id));
    assert.ok(conversations.every((c: any) => c.name.toLowerCase().startsWith('ωm')));
  });

  it('finds a renamed group by its new name only', async () => {
    const owner = await seats.seat('rename');
    const tag = randomUUID().slice(0, 8);
    const { conversation } = await owner.client.ok('conversation.create', { name: `before ${tag}` });
    await owner.client.ok('conversation.rename', { conversationId: conversation.id, name: `Après ${tag}` });
    assert.deepEqual((await owner.client.ok('conversation.search', { query: `before ${tag}` })).conversations, []);
    assert.deepEqual((await owner.client.ok('conversation.search', { query: `APRÈS ${tag}` })).conversations.map((c: any) => c.id), [conversation.id]);
  });
});

describe('conversation.search pages', () => {
  let server: TestServer;
  const seats = new Seats(() => server, 'search-pages');
  before(async () => {
    // A small reply budget and a large page cap, so that a page of long names reaches the budget before the count.
    server = await startServer({ PARLEY_LIMITS_MAX_REPLY_BYTES: '8192', PARLEY_LIMITS_MAX_PAGE_SIZE: '500' });
  });
  after(async () => {
    seats.closeAll();
    await server.stop();
  });

  it('ends a page at the reply byte budget or at limit, and says so in more', async () => {
    const owner = await seats.seat('owner');
    const tag = randomUUID().slice(0, 8);
    for (let i = 0; i < 40; i++) {
      await owner.client.ok('conversation.create', { name: `${tag} ${String(i).padStart(2, '0')} ${'é'.repeat(150)}` });
    }
    const all = await owner.client.ok('conversation.search', { query: tag, limit: 500 });
    assert.equal(all.more, true, 'cut by the byte budget');
    assert.ok(all.conversations.length >= 1 && all.conversations.length < 40, `${all.conversations.length} groups`);
    assert.ok(Buffer.byteLength(JSON.stringify(all)) <= 8192, `${Buffer.byteLength(JSON.stringify(all))} bytes`);
    const few = await owner.client.ok('conversation.search', { query: tag, limit: 3 });
    assert.deepEqual([few.conversations.length, few.more], [3, true]);
    const one = await owner.client.ok('conversation.search', { query: `${tag} 07` });
    assert.deepEqual([one.conversations.length, one.more], [1, false]);
  });
});
