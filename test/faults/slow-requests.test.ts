import assert from 'node:assert/strict';
import { type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startServer, type TestServer } from '../helpers/server.js';
import { rawSocket } from '../helpers/raw-socket.js';

/** Write `text` one byte every `everyMs` until the socket closes or the text ends. */
function dribble(socket: Socket, text: string, everyMs: number): () => void {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || i >= text.length) return clearInterval(timer);
    socket.write(text[i++]);
  }, everyMs);
  return () => clearInterval(timer);
}

/** Wait until the socket has received a complete first reply (a /healthz answer). */
async function firstReply(received: () => string): Promise<void> {
  for (let i = 0; i < 100 && !/\r\n\r\n\{"status":"ok"\}/.test(received()); i++) await new Promise((r) => setTimeout(r, 20));
  assert.match(received(), /^HTTP\/1\.1 200 /);
}

const slowHeaders = 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(1000);

describe('limits: every request on a connection is bounded in time (slowloris)', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({
      PARLEY_LIMITS_HEADERS_TIMEOUT_MS: '1000',
      PARLEY_LIMITS_REQUEST_TIMEOUT_MS: '1500',
      PARLEY_LIMITS_KEEP_ALIVE_TIMEOUT_MS: '800',
      PARLEY_LIMITS_MAX_CONNECTIONS: '12',
    });
  });
  after(async () => {
    await server.stop();
  });

  it('closes a keep-alive connection dribbling its second request\'s headers within headersTimeoutMs', async () => {
    const { socket, received, closed } = await rawSocket(server);
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await firstReply(received);
    const since = Date.now();
    const stop = dribble(socket, slowHeaders, 100);
    await closed;
    stop();
    const after = Date.now() - since;
    assert.ok(after < 3000, `second request's headers held the connection ${after} ms`);
  });

  it('closes a connection dribbling a body after complete headers within requestTimeoutMs', async () => {
    const { socket, closed } = await rawSocket(server);
    socket.write('POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{');
    const stop = dribble(socket, ' '.repeat(999), 100);
    const lifetime = await closed;
    stop();
    assert.ok(lifetime < 3500, `slow body held the connection ${lifetime} ms`);
  });

  it('closes an idle keep-alive connection after keepAliveTimeoutMs', async () => {
    const { socket, received, closed } = await rawSocket(server);
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await firstReply(received);
    const since = Date.now();
    await closed;
    const after = Date.now() - since;
    assert.ok(after < 2500, `idle keep-alive connection open ${after} ms`);
  });

  it('serves a legitimate client while attackers hold every connection slot, once their bound has passed', async () => {
    const attackers = await Promise.all(Array.from({ length: 12 }, async (_, n) => {
      const a = await rawSocket(server);
      if (n % 2 === 0) {
        a.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
        await firstReply(a.received);
      }
      return { ...a, stop: dribble(a.socket, slowHeaders, 100) };
    }));
    try {
      // The slots are full now: the attackers' bound passes within headersTimeoutMs (+ a reply), then they are cut.
      const lifetimes = await Promise.all(attackers.map((a) => a.closed));
      assert.ok(lifetimes.every((t) => t < 4000), `attackers held sockets ${lifetimes.join(', ')} ms`);
      // Bounded retry: the server notices each close a moment after the client does.
      let status = 0;
      for (let attempt = 0; attempt < 50 && status !== 200; attempt++) {
        status = await fetch(`${server.url}/healthz`).then((r) => r.status, () => 0);
      }
      assert.equal(status, 200);
    } finally {
      for (const a of attackers) {
        a.stop();
        a.socket.destroy();
      }
    }
  });
});
