import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { Connection, type ConnectionLimits, type ConnectionOwner } from '../../src/gateway/connection.js';
import { WriteScheduler } from '../../src/gateway/write-scheduler.js';
import { frameText } from '../../src/gateway/frame.js';

/**
 * The process-wide outgoing budget (src/gateway/gateway.ts) admits a request only while the connections' backlogs fit.
 * Frames queued in a turn are written at its end, but requests answered in that turn end their reservations at once,
 * and requests held meanwhile may be served in the same turn: the backlog must count a frame when it is queued.
 */
const LIMITS: ConnectionLimits = {
  maxOutgoingBytes: 1024 * 1024,
  slowConsumerMs: 5000,
  maxOutgoingHardBytes: 16 * 1024 * 1024,
  outgoingProbeMs: 100,
  outgoingProbeBytes: 4096,
  connectionRate: { perSecond: 100, burst: 100 },
};

/** The gateway's side of the seam, reduced to the process-wide total it keeps. */
class CountingOwner implements ConnectionOwner {
  total = 0;
  handleFrame(): void {}
  markAlive(): void {}
  unregister(): void {}
  countClose(): void {}
  backlogChanged(delta: number): void {
    this.total += delta;
  }
  unanswered = 0;
  unansweredChanged(delta: 1 | -1): void {
    this.unanswered += delta;
  }
}

describe('connection backlog accounting', () => {
  let server: WebSocketServer;
  let serverSide: Promise<WebSocket>;
  let client: WebSocket;
  before(async () => {
    server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    serverSide = new Promise((resolve) => server.once('connection', resolve));
    await new Promise((resolve) => server.once('listening', resolve));
    client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
    await new Promise((resolve) => client.once('open', resolve));
  });
  after(async () => {
    client.terminate();
    await new Promise((resolve) => server.close(resolve));
  });

  it('counts a frame in the backlog when it is queued, before the end-of-turn write', async () => {
    const ws = await serverSide;
    const owner = new CountingOwner();
    const socket = (ws as unknown as { _socket: Socket })._socket;
    const connection = new Connection('c1', 'u1', 'name', null, ws, socket, owner, new WriteScheduler(LIMITS.outgoingProbeMs), LIMITS, Date.now());
    const frame = frameText('x'.repeat(64 * 1024));
    assert.equal(connection.send(frame), true);
    // Same turn: not written yet, already counted (beyond the allowance a reading client may have in flight).
    assert.equal(connection.queuedByteCount, frame.length);
    assert.equal(owner.total, frame.length - LIMITS.outgoingProbeBytes);
    // After the write it stays counted until the peer confirms reading it: the total does not change.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(connection.queuedByteCount, 0);
    assert.equal(owner.total, frame.length - LIMITS.outgoingProbeBytes);
  });

  it('tells the owner when it has unanswered position pings and when it no longer has (answered, or closed)', async () => {
    const ws = await serverSide;
    const owner = new CountingOwner();
    const socket = (ws as unknown as { _socket: Socket })._socket;
    const connection = new Connection('c2', 'u1', 'name', null, ws, socket, owner, new WriteScheduler(LIMITS.outgoingProbeMs), LIMITS, Date.now());
    // The gateway routes pongs to confirm; here the client's own pongs (ws answers pings by itself) do.
    const onPong = (payload: Buffer): void => connection.confirm(payload);
    ws.on('pong', onPong);
    try {
      // Under the allowance: no ping, nothing unanswered.
      connection.send(frameText('small'));
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(owner.unanswered, 0);
      // Past it: the write carries a ping; unanswered until the client's pong comes back.
      connection.send(frameText('y'.repeat(16 * 1024)));
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(owner.unanswered, 1, 'one connection with an unanswered ping');
      const deadline = Date.now() + 10_000;
      while (owner.unanswered !== 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      assert.equal(owner.unanswered, 0, 'answered by the pong');
      // A ping left unanswered when the connection closes is no longer counted.
      ws.off('pong', onPong);
      connection.send(frameText('z'.repeat(16 * 1024)));
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(owner.unanswered, 1);
      connection.uncount();
      assert.equal(owner.unanswered, 0, 'closed: not counted');
      connection.send(frameText('w'.repeat(16 * 1024)));
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(owner.unanswered, 0, 'a closed connection never counts again');
    } finally {
      ws.off('pong', onPong);
    }
  });
});
