/**
 * The server's listening socket, opened before the rest of the server is loaded and its store opened.
 *
 * Why: after a restart (a crash, a deploy), loading the modules and opening the store take most of a second on a small
 * machine. Without a listening socket, every client that reconnects in that time is refused, and backs off: with
 * exponential backoff and jitter a client refused for a second waits another second or two on average before its next
 * try. With the socket open, the kernel and this holder accept the connections, and each is served the moment the
 * server is ready: the client is back as soon as the server is.
 *
 * Until `serve` installs the real handlers, HTTP requests and WebSocket upgrades are held, not answered. What is held
 * is bounded like everything else a connection can hold: connectionGuard (installed here, first) caps open connections
 * (`limits.maxConnections`) and gives each its header and request deadlines; a held request's socket that those close
 * is skipped when the requests are released. `/healthz` and `/readyz` are held too, so a probe sees the server as up
 * only once it serves.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Config } from '../config/schema.js';
import { guardConnections } from './connection-guard.js';

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

type Held =
  | { kind: 'request'; req: IncomingMessage; res: ServerResponse }
  | { kind: 'upgrade'; req: IncomingMessage; socket: Duplex; head: Buffer };

export interface Listener {
  readonly server: Server;
  /** The port listened on (the one the system chose when configured as 0). */
  readonly port: number;
  /** Called with each connection refused for `limits.maxConnections` (for a metric); set by the server. */
  onRefused: () => void;
  /** Fastify's `serverFactory`: remembers the app's request handler (installed by `serve`) and returns the server. */
  adopt(onRequest: RequestHandler): Server;
  /** Install the adopted request handler and `onUpgrade`, and release everything held, in arrival order. Once. */
  serve(onUpgrade: UpgradeHandler): void;
  /**
   * Stop accepting connections; resolves when every connection has closed: keep-alive ones as soon as they are idle,
   * and at `deadline` (ms since the epoch) every one still open, such as an upload that has not finished.
   */
  close(deadline?: number): Promise<void>;
  /** The server failed to start: close the socket and every connection, held ones included. */
  abort(): void;
}

/** Listen on `server.host`:`server.port` with the connection limits of `config.limits`; resolves once listening. */
export async function openListener(config: Config): Promise<Listener> {
  const server = createServer();
  const held: Held[] = [];
  const holdRequest: RequestHandler = (req, res) => held.push({ kind: 'request', req, res });
  const holdUpgrade: UpgradeHandler = (req, socket, head) => held.push({ kind: 'upgrade', req, socket, head });
  let onRequest: RequestHandler | null = null;
  let onRefused = (): void => {};

  guardConnections(server, {
    maxConnections: config.limits.maxConnections,
    headersTimeoutMs: config.limits.headersTimeoutMs,
    requestTimeoutMs: config.limits.requestTimeoutMs,
    onRefused: () => onRefused(),
  });
  server.keepAliveTimeout = config.limits.keepAliveTimeoutMs;
  server.on('request', holdRequest);
  server.on('upgrade', holdUpgrade);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: config.server.host, port: config.server.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });

  return {
    server,
    port: (server.address() as AddressInfo).port,
    set onRefused(hook: () => void) {
      onRefused = hook;
    },
    get onRefused() {
      return onRefused;
    },
    adopt(handler) {
      onRequest = handler;
      return server;
    },
    serve(onUpgrade) {
      if (!onRequest) throw new Error('serve() before adopt(): the app has no request handler yet');
      const handle = onRequest;
      server.off('request', holdRequest);
      server.off('upgrade', holdUpgrade);
      server.on('request', handle);
      server.on('upgrade', onUpgrade);
      for (const item of held.splice(0)) {
        // A connection closed while held (by its client or a deadline) has nothing left to answer.
        if (item.kind === 'request') {
          if (!item.req.socket.destroyed) handle(item.req, item.res);
        } else if (!item.socket.destroyed) {
          onUpgrade(item.req, item.socket, item.head);
        }
      }
    },
    close(deadline = Infinity) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Idle keep-alive connections now, and each one whose last request finishes later: without the sweep those wait
      // out keepAliveTimeout (5 s) before the process can exit.
      server.closeIdleConnections();
      const sweep = setInterval(() => server.closeIdleConnections(), 50);
      // A client that never finishes its upload must not hold the exit past the drain it was given.
      const cut = Number.isFinite(deadline) ? setTimeout(() => server.closeAllConnections(), Math.max(0, deadline - Date.now())) : null;
      return closed.finally(() => {
        clearInterval(sweep);
        if (cut !== null) clearTimeout(cut);
      });
    },
    abort() {
      server.close();
      server.closeAllConnections();
      for (const item of held.splice(0)) (item.kind === 'request' ? item.req.socket : item.socket).destroy();
    },
  };
}
