import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Agent, type IncomingMessage, request } from 'node:http';
import { once } from 'node:events';
import { RawClient, until } from '../helpers/raw-client.js';
import { api, register, startServer } from '../helpers/server.js';

describe('graceful shutdown', () => {
  const dataDirs: string[] = [];
  const freshDataDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'parley-shutdown-'));
    dataDirs.push(dir);
    return dir;
  };
  after(() => {
    for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
  });

  it('closes every client with 4000 on SIGTERM and exits with code 0', async () => {
    const server = await startServer({}, { dataDir: freshDataDir() });
    const alice = await register(server, 'bye-alice');
    const bob = await register(server, 'bye-bob');
    const clients = [
      await RawClient.connect(server.wsUrl, alice.token),
      await RawClient.connect(server.wsUrl, alice.token, { via: 'header' }),
      await RawClient.connect(server.wsUrl, bob.token, { via: 'query' }),
    ];
    const closes = Promise.all(clients.map((c) => c.waitClose(10_000)));
    const started = Date.now();
    const exitCode = await server.stop();
    assert.equal(exitCode, 0);
    assert.deepEqual((await closes).map((c) => c.code), [4000, 4000, 4000]);
    assert.ok(Date.now() - started < 4000, 'clients that answer the close do not make it wait for the drain timeout');
  });

  it('keeps every message acknowledged before SIGTERM, across a restart on the same data folder', async () => {
    const dataDir = freshDataDir();
    const first = await startServer({}, { dataDir });
    const alice = await register(first, 'keep-alice');
    const bob = await register(first, 'keep-bob');
    const a = await RawClient.connect(first.wsUrl, alice.token);
    const conversationId = (await a.ok('direct.open', { userId: bob.id })).conversation.id;
    const acknowledged = [];
    for (let i = 0; i < 20; i++) {
      const { id, seq, createdAt } = await a.ok('message.send', { conversationId, key: `keep-${i}`, text: `kept ${i}` });
      acknowledged.push({ id, conversationId, seq, senderId: alice.id, text: `kept ${i}`, createdAt });
    }
    const closed = a.waitClose(10_000);
    assert.equal(await first.stop(), 0);
    assert.equal((await closed).code, 4000);

    const second = await startServer({}, { dataDir });
    try {
      const b = await RawClient.connect(second.wsUrl, bob.token);
      assert.equal((await b.waitFor('welcome')).user.id, bob.id, 'tokens of the same secret still work');
      const { messages, more } = await b.ok('history.after', { conversationId, afterSeq: 0, limit: 100 });
      assert.equal(more, false);
      assert.deepEqual(messages, acknowledged);
      const { seq } = await b.ok('message.send', { conversationId, key: 'after-restart', text: 'next' });
      assert.equal(seq, 21, 'numbering continues after the restart');
      const login = await api(second, null, 'POST', '/api/v1/sessions', { username: 'keep-alice', password: 'correct horse battery' });
      assert.equal(login.status, 200, 'accounts survive too');
      b.close();
    } finally {
      assert.equal(await second.stop(), 0);
    }
  });

  it('answers the WebSocket requests it is serving at SIGTERM before closing 4000, and stores none it leaves unanswered', async () => {
    // Before: the connections were closed at once, and requests being served then were stored without a reply.
    const dataDir = freshDataDir();
    const rates = { PARLEY_LIMITS_CONNECTION_RATE_BURST: '1000', PARLEY_LIMITS_USER_MESSAGE_RATE_BURST: '1000' };
    const first = await startServer(rates, { dataDir });
    const alice = await register(first, 'flight-alice');
    const bob = await register(first, 'flight-bob');
    const a = await RawClient.connect(first.wsUrl, alice.token);
    const conversationId = (await a.ok('direct.open', { userId: bob.id })).conversation.id;
    const answered = new Map<string, number>(); // text -> seq, for each send answered with a result
    const sends: Array<Promise<void>> = [];
    // A window of 16 sends kept in flight (each reply sends the next), so that some are being served at the signal.
    const sendNext = (): void => {
      const text = `flight ${sends.length}`;
      if (sends.length >= 400) return;
      sends.push(a.request('message.send', { conversationId, key: text, text }, 15_000).then((reply) => {
        if (reply.result) answered.set(text, reply.result.seq);
        if (reply.result) sendNext();
      }, () => undefined));
    };
    for (let i = 0; i < 16; i++) sendNext();
    await until(() => answered.size >= 20, 'sends answered', 10_000);
    const closed = a.waitClose(10_000);
    const stopped = first.stop();
    assert.equal((await closed).code, 4000);
    assert.equal(await stopped, 0);
    await Promise.all(sends);

    const second = await startServer(rates, { dataDir });
    try {
      const b = await RawClient.connect(second.wsUrl, bob.token);
      const { messages, more } = await b.ok('history.after', { conversationId, afterSeq: 0, limit: 500 });
      assert.equal(more, false);
      const stored = new Map<string, number>(messages.map((m: { text: string; seq: number }) => [m.text, m.seq]));
      assert.ok(stored.size >= 1);
      for (const [text, seq] of stored) assert.equal(answered.get(text), seq, `"${text}" was stored (seq ${seq}) but its send got no reply`);
      for (const [text, seq] of answered) assert.equal(stored.get(text), seq, `"${text}" was acknowledged but not kept`);
      b.close();
    } finally {
      assert.equal(await second.stop(), 0);
    }
  });

  it('does not let a client that stops reading hold the shutdown beyond the drain time', async () => {
    const server = await startServer({ PARLEY_SHUTDOWN_DRAIN_MS: '1000' }, { dataDir: freshDataDir() });
    const alice = await register(server, 'stuck-alice');
    const stuck = await RawClient.connect(server.wsUrl, alice.token);
    const fine = await RawClient.connect(server.wsUrl, alice.token);
    (stuck.ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
    const fineClosed = fine.waitClose(10_000);
    const started = Date.now();
    assert.equal(await server.stop(), 0);
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 1000 + 3000, `exited after ${elapsed} ms`);
    assert.equal((await fineClosed).code, 4000);
    (stuck.ws as unknown as { _socket: import('node:net').Socket })._socket.resume();
    await stuck.waitClose(5000);
  });

  it('answers REST requests that arrive during the drain 503 UNAVAILABLE (temporary) in the documented error body', async () => {
    // Before: fastify's own {"error":"Service Unavailable","statusCode":503}, without code or temporary.
    const server = await startServer({ PARLEY_SHUTDOWN_DRAIN_MS: '20000' }, { dataDir: freshDataDir() });
    const alice = await register(server, 'drain-rest-alice');
    const { conversation } = (await api(server, alice.token, 'POST', '/api/v1/conversations', { name: 'drain room' })).body;
    // A client that does not read holds the drain open (up to drainMs), so the REST calls below fall inside it.
    const stuck = await RawClient.connect(server.wsUrl, alice.token);
    const socket = (stuck.ws as unknown as { _socket: import('node:net').Socket })._socket;
    socket.pause();
    const stopped = server.stop();
    let res: Response | null = null;
    for (const deadline = Date.now() + 15_000; Date.now() < deadline;) {
      res = await fetch(`${server.url}/api/v1/conversations/${conversation.id}/messages`, {
        method: 'POST', headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ key: `k-${Date.now()}`, text: 'during the drain?' }),
      });
      if (res.status !== 201) break;
    }
    assert.equal(res?.status, 503);
    assert.equal(res.headers.get('connection'), 'close');
    const body = await res.json() as { error: { code: string; temporary: boolean; message: string } };
    assert.equal(body.error.code, 'UNAVAILABLE', JSON.stringify(body));
    assert.equal(body.error.temporary, true);
    assert.match(body.error.message, /shutting down/);
    socket.resume();
    assert.equal(await stopped, 0);
  });

  it('exits once a request in flight at SIGTERM is answered, without waiting out its keep-alive connection', async () => {
    // Before: a request that ended after the server began closing left its kept-alive connection (Node's agent keeps
    // it) open until keepAliveTimeoutMs or headersTimeoutMs, and the process with it (5 s by default; 120 s here).
    const server = await startServer({ PARLEY_LIMITS_KEEP_ALIVE_TIMEOUT_MS: '120000', PARLEY_LIMITS_HEADERS_TIMEOUT_MS: '120000' }, { dataDir: freshDataDir() });
    const alice = await register(server, 'keepalive-alice');
    const { conversation } = (await api(server, alice.token, 'POST', '/api/v1/conversations', { name: 'keep-alive room' })).body;
    const body = JSON.stringify({ key: 'in-flight', text: 'sent across the SIGTERM' });
    const agent = new Agent({ keepAlive: true });
    const req = request(`${server.url}/api/v1/conversations/${conversation.id}/messages`, {
      method: 'POST', agent,
      headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), expect: '100-continue' },
    });
    const response = once(req, 'response') as Promise<[IncomingMessage]>;
    // "100 Continue": the server has taken the request (and run its first checks) before the signal.
    await once(req, 'continue');
    req.write(body.slice(0, 10));
    const stopped = server.stop();
    // The rest of the body once the drain has begun, so the request ends while the server is closing.
    await until(() => server.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('draining')), 'the drain began', 10_000);
    req.end(body.slice(10));
    const [res] = await response;
    res.resume();
    assert.equal(res.statusCode, 201);
    assert.equal(res.headers.connection, 'close', 'a reply sent during the drain says its connection closes');
    // The keep-alive timeout is 120 s: a connection left open would hold the process until its forced exit at the end
    // of the shutdown deadline, which exits 1; only the server closing the connection once idle exits by itself with 0.
    assert.equal(await stopped, 0, 'the server exited by itself, with 0 (its forced exit after the shutdown deadline is not 0)');
    agent.destroy();
  });
});

describe('graceful shutdown with an upload that never finishes', () => {
  it('closes its connection at the end of the drain and exits with 0, storing nothing of it', async () => {
    // Before: the process waited for the upload until its forced exit (drainMs + 10 s), which exits 1.
    const dataDir = mkdtempSync(join(tmpdir(), 'parley-shutdown-'));
    after(() => rmSync(dataDir, { recursive: true, force: true }));
    const server = await startServer({ PARLEY_SHUTDOWN_DRAIN_MS: '1000' }, { dataDir });
    const alice = await register(server, 'stall-alice');
    const { conversation } = (await api(server, alice.token, 'POST', '/api/v1/conversations', { name: 'stall room' })).body;
    const req = request(`${server.url}/api/v1/conversations/${conversation.id}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'application/json', 'content-length': '40', expect: '100-continue' },
    });
    const ended = new Promise<string>((resolve) => {
      req.once('response', (res) => resolve(`answered ${res.statusCode}`));
      req.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    await once(req, 'continue');
    req.write('{"key"'); // and never the rest
    assert.equal(await server.stop(), 0, 'exited by itself at the end of the drain (the forced exit is 1)');
    assert.match(await ended, /ECONNRESET|socket hang up/);

    const second = await startServer({}, { dataDir });
    try {
      const page = await api(second, alice.token, 'GET', `/api/v1/conversations/${conversation.id}/messages`);
      assert.equal(page.status, 200);
      assert.deepEqual(page.body.messages, []);
    } finally {
      assert.equal(await second.stop(), 0);
    }
  });
});

describe('shutdown ordering', () => {
  it('drains many connections with presence and typing in flight, and logs nothing after stopping and no store or publish failure', async () => {
    const server = await startServer({ PARLEY_PRESENCE_BATCH_MS: '20', PARLEY_TYPING_TTL_MS: '100' });
    const users = await Promise.all(Array.from({ length: 12 }, (_, i) => register(server, `drain-${i}`)));
    const clients = await Promise.all(users.flatMap((u) => [RawClient.connect(server.wsUrl, u.token), RawClient.connect(server.wsUrl, u.token)]));
    const { conversation } = await clients[0].ok('conversation.create', { name: 'drain room' });
    for (let i = 2; i < clients.length; i += 2) await clients[i].ok('conversation.join', { conversationId: conversation.id });
    // Work in flight at the signal: typing timers, sends, and a presence change for every user as they disconnect.
    await Promise.all(clients.map((c) => c.ok('typing', { conversationId: conversation.id, typing: true }).catch(() => undefined)));
    for (const c of clients) c.sendRaw(JSON.stringify({ id: 'late', type: 'message.send', data: { conversationId: conversation.id, key: `late-${Math.random()}`, text: 'late' } }));
    const closes = Promise.all(clients.map((c) => c.waitClose(10_000)));
    assert.equal(await server.stop(), 0);
    assert.ok((await closes).every((c) => c.code === 4000));
    const stoppedAt = server.logs.findIndex((l) => l.msg === 'stopped');
    assert.ok(stoppedAt >= 0, 'the server logged that it stopped');
    assert.deepEqual(server.logs.slice(stoppedAt + 1), [], 'nothing is logged after stopped');
    const problems = server.logs.filter((l) => (l.level as number) >= 40);
    assert.deepEqual(problems.map((l) => `${l.msg} ${JSON.stringify(l.err ?? '')}`), [], 'no warning or error during the shutdown');
  });
});
