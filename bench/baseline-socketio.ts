/**
 * Baseline server: bare Socket.IO 4, websocket transport only, one room. Subscribers join the room on connect;
 * the sender (`auth: { role: 'sender' }`) emits `send` with a body, and the server relays it with
 * `io.to(room).emit('msg', body)`.
 *
 * Run as a child process: `node --import tsx bench/baseline-socketio.ts` (IPC protocol as in baseline-ws.ts).
 */
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { Server } from 'socket.io';
import { serveAsChild, type RunningServer } from './baseline-ws.js';

const ROOM = 'bench';

export async function startSocketIoBaseline(options: { host?: string; port?: number } = {}): Promise<RunningServer> {
  const http = createServer();
  const io = new Server(http, {
    transports: ['websocket'],
    serveClient: false,
    perMessageDeflate: false,
    httpCompression: false,
    maxHttpBufferSize: 1 << 20,
  });
  let subscribers = 0;
  io.on('connection', (socket) => {
    const auth = socket.handshake.auth as { role?: string } | undefined;
    if (auth?.role === 'sender') {
      socket.on('send', (body: unknown) => {
        io.to(ROOM).emit('msg', body);
      });
      return;
    }
    subscribers++;
    socket.join(ROOM);
    socket.on('disconnect', () => subscribers--);
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = http.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    connections: () => subscribers,
    async close() {
      io.disconnectSockets(true);
      await new Promise<void>((resolve) => io.close(() => resolve()));
    },
  };
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) serveAsChild(() => startSocketIoBaseline());
