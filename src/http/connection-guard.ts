import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface ConnectionGuardOptions {
  /** Open connections at most; one more is answered 503 and closed before anything is read from it. */
  maxConnections: number;
  /**
   * Time a connection has to present a request's complete headers (for a WebSocket, the completed upgrade), in ms:
   * counted from accepting the TCP connection for its first request, and from the end of the previous reply for each
   * later request on a keep-alive connection.
   */
  headersTimeoutMs: number;
  /** Time from a request's complete headers to its reply being sent (the body upload included), in ms. */
  requestTimeoutMs: number;
  /** Called with each connection refused for the total limit. */
  onRefused?: () => void;
}

const kDeadline = Symbol('parley.connectionDeadline');
const kInFlight = Symbol('parley.requestsInFlight');
type GuardedSocket = Socket & { [kDeadline]?: NodeJS.Timeout; [kInFlight]?: number };

/**
 * Bounds what a client can hold without completing requests: the number of open connections (so silent sockets
 * cannot use up the process's file descriptors) and, for every request on a connection (not only the first), the
 * time to complete its headers and the time to upload its body and get the reply. Node's own headersTimeout and
 * requestTimeout are checked only every 30 s (connectionsCheckingInterval), its headersTimeout does not apply to the
 * headers of a later keep-alive request dribbled a byte at a time, and neither covers upgrades still being
 * authenticated; these timers are exact. Idle keep-alive connections are closed by the server's keepAliveTimeout.
 */
export function guardConnections(server: Server, options: ConnectionGuardOptions): { readonly open: number } {
  let open = 0;
  server.on('connection', (socket: GuardedSocket) => {
    if (open >= options.maxConnections) {
      options.onRefused?.();
      socket.on('error', () => socket.destroy());
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n');
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    open++;
    socket[kInFlight] = 0;
    socket.once('close', () => {
      open--;
      upgradeSettled(socket);
    });
    arm(socket, options.headersTimeoutMs);
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket as GuardedSocket;
    socket[kInFlight] = (socket[kInFlight] ?? 0) + 1;
    arm(socket, options.requestTimeoutMs);
    res.once('close', () => {
      socket[kInFlight] = Math.max(0, (socket[kInFlight] ?? 1) - 1);
      // The next request on this connection gets its own headers deadline (idle ones end earlier, by keepAliveTimeout).
      if (socket[kInFlight] === 0 && !socket.destroyed) arm(socket, options.headersTimeoutMs);
    });
  });
  return { get open() { return open; } };
}

function arm(socket: GuardedSocket, ms: number): void {
  if (socket[kDeadline] !== undefined) clearTimeout(socket[kDeadline]);
  socket[kDeadline] = setTimeout(() => socket.destroy(), ms);
  socket[kDeadline].unref();
}

/** The connection's WebSocket upgrade is done or refused: stop its deadline (the heartbeat takes over). */
export function upgradeSettled(socket: Socket): void {
  const guarded = socket as GuardedSocket;
  if (guarded[kDeadline] === undefined) return;
  clearTimeout(guarded[kDeadline]);
  guarded[kDeadline] = undefined;
}
