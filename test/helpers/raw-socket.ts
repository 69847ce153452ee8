import { connect, type Socket } from 'node:net';
import type { TestServer } from './server.js';

/**
 * A raw TCP connection to a test server: what it received, and after how many ms the server closed it. `closed`
 * resolves Infinity if the server has not closed it within `limitMs` (bounded: a test never waits longer), which any
 * "closed within" assertion then rejects.
 */
export async function rawSocket(server: TestServer, limitMs = 8000): Promise<{ socket: Socket; received: () => string; closed: Promise<number> }> {
  const startedAt = Date.now();
  const socket = connect(server.port, '127.0.0.1');
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (d) => (text += d));
  socket.on('error', () => {});
  const closed = new Promise<number>((resolve) => {
    socket.once('close', () => resolve(Date.now() - startedAt));
    setTimeout(() => resolve(Infinity), limitMs).unref();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  return { socket, received: () => text, closed };
}
