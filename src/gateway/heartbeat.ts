import type { Logger } from 'pino';
import type { CloseName } from '@parley/protocol';
import type { PresenceService } from '../domain/presence-service.js';
import { ConnectionState, type Connection } from './connection.js';

/**
 * One timer for all connections: pings each connection every `intervalMs`, closes one that has not answered a ping
 * within `timeoutMs` (4001), closes one whose token expired (4004), and refreshes presence of the live ones well
 * within the presence TTL. One pass over the connections per tick, no timer per connection.
 */
export class Heartbeat {
  private readonly timer: NodeJS.Timeout;
  private lastPingRound = 0;
  private lastTouchRound = 0;

  constructor(
    private readonly connections: Set<Connection>,
    private readonly options: { intervalMs: number; timeoutMs: number },
    private readonly presenceTtlMs: number,
    private readonly presence: PresenceService,
    private readonly close: (connection: Connection, name: CloseName) => void,
    private readonly logger: Logger,
  ) {
    const tick = Math.max(25, Math.min(options.intervalMs, options.timeoutMs, 1000) / 2);
    this.timer = setInterval(() => this.tick(Date.now()), tick);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private tick(now: number): void {
    const pingRound = now - this.lastPingRound >= this.options.intervalMs;
    if (pingRound) this.lastPingRound = now;
    const touchRound = now - this.lastTouchRound >= this.presenceTtlMs / 3;
    if (touchRound) this.lastTouchRound = now;
    const live: Array<{ userId: string; connectionId: string }> = [];
    for (const connection of this.connections) {
      if (connection.state !== ConnectionState.Open) continue;
      if (connection.expiresAt !== null && connection.expiresAt <= now) {
        this.close(connection, 'TOKEN_EXPIRED');
      } else if (connection.awaitingPong && !connection.socketPaused) {
        // A connection whose socket is paused (backpressure) is not read: its pong waits in its socket, so it is not
        // judged meanwhile.
        if (now - connection.pingSentAt > this.options.timeoutMs) this.close(connection, 'HEARTBEAT_TIMEOUT');
      } else if (pingRound) {
        connection.awaitingPong = true;
        connection.pingSentAt = now;
        connection.ws.ping();
      }
      if (touchRound) live.push({ userId: connection.userId, connectionId: connection.id });
    }
    if (live.length > 0) this.presence.touch(live).catch((err) => this.logger.warn({ err }, 'presence touch failed'));
  }
}
