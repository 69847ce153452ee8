import type { Server } from 'node:http';
import type { Socket } from 'node:net';

export interface ConnectionGuardOptions {
  /** Open connections at most; one more is answered 503 and closed before anything is read from it. */
  maxConnections: number;
  /** Time from accepting a TCP connection to its first complete request (or completed WebSocket upgrade), in ms. */
  headersTimeoutMs: number;
  /** Called with each connection refused for the total limit. */
  onRefused?: () => void;
}

const kDeadline = Symbol('parley.headersDeadline');
type GuardedSocket = Socket & { [kDeadline]?: NodeJS.Timeout };

/**
 * Bounds what a client can hold without sending anything: the number of open connections (so silent sockets cannot
 * use up the process's file descriptors) and the time a connection may take to present a complete request. Node's
 * own headersTimeout is checked only every 30 s and not for upgrades still being authenticated; this timer is exact
 * and lasts until the WebSocket upgrade completes (the gateway calls upgradeSettled).
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
    socket.once('close', () => {
      open--;
      upgradeSettled(socket);
    });
    socket[kDeadline] = setTimeout(() => socket.destroy(), options.headersTimeoutMs);
    socket[kDeadline].unref();
  });
  // A complete HTTP request: from here the server's request and keep-alive timeouts apply.
  server.on('request', (req) => upgradeSettled(req.socket));
  return { get open() { return open; } };
}

/** The connection's request is complete (for a WebSocket: the upgrade is done or refused): stop its deadline. */
export function upgradeSettled(socket: Socket): void {
  const guarded = socket as GuardedSocket;
  if (guarded[kDeadline] === undefined) return;
  clearTimeout(guarded[kDeadline]);
  guarded[kDeadline] = undefined;
}
