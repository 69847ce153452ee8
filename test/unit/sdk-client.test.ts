/**
 * The client's connection logic against a scripted fake WebSocket (no server), only for what a real server cannot
 * provoke. Everything a real server can provoke (subprotocols, welcome, sync and catch-up, gap fill, the outbox and its
 * retries, lost acks, timeouts, 1006/4000/4001/4004/4500 closes) is proven against a real server process in
 * test/e2e/sdk.test.ts instead.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import { ParleyClient, type WebSocketConstructor, type WebSocketLike } from '../../packages/sdk/src/index.js';

// Compile-time check: Node passes the `ws` package's class as options.WebSocket.
const wsPackageFits: WebSocketConstructor = WebSocket;
void wsPackageFits;

interface Frame {
  id: number;
  type: string;
  data: Record<string, unknown>;
}

class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = [];
  readyState = 0;
  protocol = '';
  binaryType = 'blob';
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  readonly sent: Frame[] = [];
  closedByClient: { code?: number; reason?: string } | null = null;
  /** Answers requests automatically when set: return a result, or `{ error }`, or undefined for no reply. */
  responder: ((f: Frame) => unknown) | null = null;

  constructor(readonly url: string, readonly protocols?: string | string[]) {
    FakeSocket.all.push(this);
  }
  send(data: string): void {
    const frame = JSON.parse(data) as Frame;
    this.sent.push(frame);
    if (this.responder) {
      const out = this.responder(frame);
      if (out === undefined) return;
      setTimeout(() => {
        if (out && typeof out === 'object' && 'error' in out) this.push({ id: frame.id, ...(out as object) });
        else this.push({ id: frame.id, result: out });
      }, 0);
    }
  }
  close(code?: number, reason?: string): void {
    this.closedByClient = { code, reason };
    this.readyState = 3;
  }
  // ---- driven by the test
  open(welcome = WELCOME): void {
    this.readyState = 1;
    this.protocol = 'parley.v1';
    this.onopen?.({});
    this.push({ event: 'welcome', data: welcome });
  }
  push(frame: unknown): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  serverClose(code: number, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  requests(type: string): Frame[] {
    return this.sent.filter((f) => f.type === type);
  }
}

const WELCOME = {
  version: 1, connectionId: 'conn1', user: { id: 'u1', name: 'Ann' }, heartbeatIntervalMs: 60_000,
  limits: { maxMessageBytes: 4096, maxFrameBytes: 65536 },
};

const syncReply = () => ({ conversations: [], unknown: [], removed: [] });

async function until(pred: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function newClient(extra: Partial<ConstructorParameters<typeof ParleyClient>[0]> = {}) {
  FakeSocket.all = [];
  let n = 0;
  const client = new ParleyClient({
    url: 'http://localhost:8080/ws',
    token: () => `tok${++n}`,
    WebSocket: FakeSocket,
    backoff: { initialMs: 1, maxMs: 5 },
    gapFetchDelayMs: 0,
    requestTimeoutMs: 500,
    ...extra,
  });
  const log = { states: [] as string[], disconnects: [] as unknown[] };
  client.on('state', (s) => log.states.push(s));
  client.on('disconnect', (d) => log.disconnects.push(d));
  return { client, log };
}

describe('SDK client (fake WebSocket)', () => {
  it('does not reconnect after a normal 1000 close (Parley servers never send one; a proxy might)', async () => {
    const { client, log } = newClient();
    const connected = client.connect();
    await until(() => FakeSocket.all.length === 1, 'socket');
    FakeSocket.all[0].responder = (f) => (f.type === 'sync' ? syncReply() : undefined);
    FakeSocket.all[0].open();
    await connected;
    FakeSocket.all[0].serverClose(1000, 'bye');
    assert.equal(client.state, 'closed');
    assert.deepEqual(log.disconnects, [{ code: 1000, reason: 'bye', willReconnect: false }]);
    assert.deepEqual(log.states, ['connecting', 'open', 'closed']);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(FakeSocket.all.length, 1, 'no reconnect');
  });
});
