import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RawClient } from '../helpers/raw-client.js';
import { ADMIN_TOKEN, EXTERNAL_SECRET, api, register, signToken, startServer, type TestServer } from '../helpers/server.js';

/**
 * A lone UTF-16 surrogate has no UTF-8 form: stored, it came back from history as U+FFFD while the live event carried
 * it as sent. U+0000 cannot be stored in PostgreSQL's text at all (a message with one was answered INTERNAL there,
 * and stored on SQLite). Every string a client sends (texts, meta values and keys, names, keys, ids, tokens, queries,
 * the envelope, REST bodies, URLs and token claims) holding either must be refused with a documented error, and
 * nothing stored.
 */
const HIGH = 'x\ud800y';
const LOW = 'x\udc00y';
const NUL = 'x\u0000y';
const LONE = [HIGH, LOW, NUL];
/** How a refused string's key is shown in a path. */
const shown = (bad: string) => bad.replace(/[\ud800-\udfff\u0000]/, '\ufffd');

function assertIllFormed(error: any, path: string, what: string): void {
  assert.equal(error?.code, 'INVALID_REQUEST', `${what}: ${JSON.stringify(error)}`);
  assert.equal(error.temporary, false, what);
  assert.ok(Array.isArray(error.details), `${what}: details`);
  assert.equal(error.details[0].path, path, `${what}: ${JSON.stringify(error.details)}`);
  assert.match(error.details[0].message, /well-formed|U\+0000/, what);
}

describe('refused strings (lone surrogates, U+0000)', () => {
  let server: TestServer;
  let alice: { id: string; name: string; token: string };
  let bob: { id: string; name: string; token: string };
  let a: RawClient;
  let b: RawClient;
  let conversationId: string;
  let invite: string;

  before(async () => {
    // Three bad strings times every field is more requests than one connection's default burst allows.
    server = await startServer({ PARLEY_LIMITS_CONNECTION_RATE_BURST: '1000', PARLEY_LIMITS_USER_MESSAGE_RATE_BURST: '1000' });
    alice = await register(server, 'lone-alice');
    bob = await register(server, 'lone-bob');
    a = await RawClient.connect(server.wsUrl, alice.token);
    b = await RawClient.connect(server.wsUrl, bob.token);
    conversationId = (await a.ok('conversation.create', { name: 'lone room' })).conversation.id;
    await b.ok('conversation.join', { conversationId });
    invite = (await a.ok('invite.create', { conversationId })).invite.token;
  });
  after(async () => {
    a.close();
    b.close();
    await server.stop();
  });

  it('a message text with a lone surrogate or U+0000 is refused and nothing is stored', async () => {
    for (const bad of LONE) {
      const reply = await a.request('message.send', { conversationId, key: `k-${bad}`.replace(/[\ud800-\udfff\u0000]/g, '_'), text: bad });
      assertIllFormed(reply.error, 'text', JSON.stringify(bad));
    }
    const { messages } = await a.ok('history.after', { conversationId, afterSeq: 0 });
    assert.deepEqual(messages, []);
  });

  it('a well-formed astral character (a surrogate pair) is delivered live and from history identically', async () => {
    const text = 'smile \ud83d\ude00 and \u{1d49c}';
    const sent = await a.ok('message.send', { conversationId, key: 'pair', text, meta: { '\ud83d\ude00': ['\ud83d\udc4d'] } });
    const live = await b.waitFor('message.new', (m) => m.seq === sent.seq);
    const { messages } = await b.ok('history.after', { conversationId, afterSeq: sent.seq - 1 });
    assert.equal(live.text, text);
    assert.deepEqual(messages[0], live);
  });

  it('refuses a lone high or low surrogate in every string field of every request type, naming the field', async () => {
    const cases = (bad: string): Array<[string, Record<string, unknown>, string]> => [
      ['conversation.get', { conversationId: bad }, 'conversationId'],
      ['conversation.create', { name: bad }, 'name'],
      ['direct.open', { userId: bad }, 'userId'],
      ['conversation.search', { query: bad }, 'query'],
      ['conversation.join', { conversationId: bad }, 'conversationId'],
      ['conversation.leave', { conversationId: bad }, 'conversationId'],
      ['conversation.rename', { conversationId, name: bad }, 'name'],
      ['conversation.delete', { conversationId: bad }, 'conversationId'],
      ['member.list', { conversationId: bad }, 'conversationId'],
      ['member.kick', { conversationId, userId: bad }, 'userId'],
      ['member.role', { conversationId, userId: bad, role: 'admin' }, 'userId'],
      ['invite.create', { conversationId: bad }, 'conversationId'],
      ['invite.list', { conversationId: bad }, 'conversationId'],
      ['invite.revoke', { token: bad }, 'token'],
      ['invite.accept', { token: bad }, 'token'],
      ['message.send', { conversationId, key: bad, text: 'hi' }, 'key'],
      ['message.send', { to: bad, key: 'k1', text: 'hi' }, 'to'],
      ['message.send', { conversationId, key: 'k2', text: 'hi', meta: { note: bad } }, 'meta.note'],
      ['message.send', { conversationId, key: 'k3', text: 'hi', meta: { [bad]: 1 } }, `meta.${shown(bad)}`],
      ['message.send', { conversationId, key: 'k4', text: 'hi', meta: { list: [1, { deep: [bad] }] } }, 'meta.list.1.deep.0'],
      ['message.send', { conversationId, key: 'k5', text: 'hi', meta: bad }, 'meta'],
      ['message.edit', { conversationId, seq: 1, text: bad }, 'text'],
      ['message.edit', { conversationId, seq: 1, text: 'ok', meta: { [bad]: bad } }, `meta.${shown(bad)}`],
      ['message.delete', { conversationId: bad, seq: 1 }, 'conversationId'],
      ['history.after', { conversationId: bad, afterSeq: 0 }, 'conversationId'],
      ['history.before', { conversationId: bad }, 'conversationId'],
      ['sync', { conversations: [{ conversationId, afterSeq: 0 }, { conversationId: bad, afterSeq: 0 }] }, 'conversations.1.conversationId'],
      ['read.mark', { conversationId: bad, seq: 1 }, 'conversationId'],
      ['typing', { conversationId: bad, typing: true }, 'conversationId'],
      ['presence.get', { userIds: [bob.id, bad] }, 'userIds.1'],
      ['user.find', { username: bad }, 'username'],
    ];
    for (const bad of LONE) {
      for (const [type, data, path] of cases(bad)) {
        const reply = await a.request(type, data);
        assertIllFormed(reply.error, path, `${type} ${JSON.stringify(data)}`);
      }
    }
    // Nothing of the above changed anything: the one earlier message is still the only one, unedited.
    const { messages } = await a.ok('history.after', { conversationId, afterSeq: 0 });
    assert.equal(messages.length, 1);
    assert.equal(messages[0].editedAt, undefined);
    const { conversation } = await a.ok('conversation.get', { conversationId });
    assert.equal(conversation.name, 'lone room');
  });

  it('refuses a lone surrogate in the envelope: in `type` with INVALID_REQUEST, in `id` (unusable) with BAD_FRAME', async () => {
    for (const bad of LONE) {
      const typeReply = await a.rawReply(JSON.stringify({ id: 'env-1', type: bad }));
      assert.equal(typeReply.id, 'env-1');
      assertIllFormed(typeReply.error, 'type', 'type');
      const idReply = await a.rawReply(JSON.stringify({ id: bad, type: 'ping' }));
      assert.equal(idReply.id, null);
      assert.equal(idReply.error.code, 'BAD_FRAME', JSON.stringify(idReply));
      assert.equal(idReply.error.details[0].path, 'id');
      const keyReply = await a.rawReply(JSON.stringify({ id: 'env-2', type: 'ping', data: { [bad]: 1 } }));
      assert.equal(keyReply.id, 'env-2');
      assert.equal(keyReply.error.code, 'INVALID_REQUEST');
    }
    assert.deepEqual(await a.ok('ping'), {}, 'the connection still serves');
  });

  it('refuses a lone surrogate in REST bodies, for accounts, sessions, operations and the admin API', async () => {
    for (const bad of LONE) {
      const cases: Array<[string | null, string, string, unknown, string]> = [
        [null, 'POST', '/api/v1/accounts', { username: bad, password: 'plum kettle orbit 97' }, 'username'],
        [null, 'POST', '/api/v1/accounts', { username: 'lone-new', password: `plum kettle ${bad}` }, 'password'],
        [null, 'POST', '/api/v1/sessions', { username: alice.name, password: bad }, 'password'],
        [alice.token, 'POST', '/api/v1/conversations', { name: bad }, 'name'],
        [alice.token, 'POST', '/api/v1/direct', { userId: bad }, 'userId'],
        [alice.token, 'PATCH', `/api/v1/conversations/${conversationId}`, { name: bad }, 'name'],
        [alice.token, 'PUT', `/api/v1/conversations/${conversationId}/members/${bob.id}/role`, { role: bad }, 'role'],
        [alice.token, 'POST', `/api/v1/conversations/${conversationId}/invites`, { [bad]: 1 }, shown(bad)],
        [ADMIN_TOKEN, 'POST', '/api/v1/admin/users', { username: bad, password: 'plum kettle orbit 97' }, 'username'],
        [ADMIN_TOKEN, 'POST', '/api/v1/admin/groups', { name: bad, ownerId: alice.id }, 'name'],
        [ADMIN_TOKEN, 'POST', '/api/v1/admin/groups', { name: 'ok', ownerId: bad }, 'ownerId'],
      ];
      for (const [token, method, path, body, field] of cases) {
        const res = await api(server, token, method, path, body);
        assert.equal(res.status, 400, `${method} ${path} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
        assertIllFormed(res.body.error, field, `${method} ${path}`);
      }
    }
    const login = await api(server, null, 'POST', '/api/v1/sessions', { username: 'lone-new', password: 'plum kettle orbit 97' });
    assert.equal(login.status, 401, 'no account was created');
    const { conversation } = await a.ok('conversation.get', { conversationId });
    assert.equal(conversation.name, 'lone room');
  });

  it('answers a URL path whose percent-encoding is a surrogate (not UTF-8) with INVALID_REQUEST in the error body', async () => {
    for (const encoded of ['%ED%A0%80', '%ED%B0%80']) {
      for (const path of [`/api/v1/conversations/${encoded}`, `/api/v1/conversations/${conversationId}/members/${encoded}`, `/api/v1/admin/users/${encoded}/ban`]) {
        const res = await api(server, ADMIN_TOKEN, path.includes('admin') ? 'POST' : 'GET', path);
        assert.equal(res.status, 400, path);
        assert.equal(res.body.error?.code, 'INVALID_REQUEST', `${path}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.error.details[0].path, 'url');
      }
    }
  });

  it('refuses U+0000 percent-encoded in a URL path or query, naming the parameter', async () => {
    const cases: Array<[string | null, string, string, string]> = [
      [alice.token, 'GET', '/api/v1/conversations/a%00b', 'conversationId'],
      [alice.token, 'GET', `/api/v1/conversations/${conversationId}/messages?before=1&after=0&limit=5%00`, 'limit'],
      [alice.token, 'GET', '/api/v1/conversations?after=x%00', 'after'],
      [ADMIN_TOKEN, 'GET', '/api/v1/admin/users?after=a%00', 'after'],
      [ADMIN_TOKEN, 'POST', '/api/v1/admin/users/a%00/ban', 'userId'],
    ];
    for (const [token, method, path, field] of cases) {
      const res = await api(server, token, method, path);
      assert.equal(res.status, 400, `${method} ${path}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error?.code, 'INVALID_REQUEST', `${path}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.details[0].path, field, `${path}: ${JSON.stringify(res.body)}`);
      assert.match(res.body.error.details[0].message, /U\+0000/, path);
    }
  });

  it('refuses a token whose sub or name claim holds a lone surrogate: close 4500 and HTTP 401', async () => {
    for (const bad of LONE) {
      for (const token of [
        await signToken(EXTERNAL_SECRET, null, bad),
        await signToken(EXTERNAL_SECRET, null, 'lone-claims-user', { name: bad }),
        await server.token(bad),
      ]) {
        const res = await api(server, token, 'GET', '/api/v1/me');
        assert.equal(res.status, 401, JSON.stringify(res.body));
        // The sub is refused by the id alphabet (which admits no surrogate at all), the name claim as ill-formed.
        assert.match(res.body.error.message, /well-formed|id alphabet|U\+0000/);
        const client = await RawClient.connect(server.wsUrl, token, { waitWelcome: false });
        const closed = await client.waitClose();
        assert.equal(closed.code, 4500);
      }
    }
    // No user was created under a mangled id.
    const users = await api(server, ADMIN_TOKEN, 'GET', '/api/v1/admin/users?limit=1000');
    assert.ok(!users.body.users.some((u: any) => u.id.includes('\ufffd') || u.name.includes('\ufffd')), JSON.stringify(users.body));
  });
});
