import { createServer, connect, type Socket } from 'node:net';

/**
 * A TCP proxy on a loopback port in front of a Redis, that delays by `lagMs` (in order) what Redis sends on subscriber
 * connections, those that sent a SUBSCRIBE: an instance behind it gets its events and its subscription acks late, as
 * on a loaded machine, while its commands (publishes, reads) go on at once. `url` is the Redis URL to give it.
 */
export interface LaggingProxy {
  url: string;
  close(): Promise<void>;
}

export async function startLaggingProxy(targetPort: number, lagMs: number): Promise<LaggingProxy> {
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    let subscriber = false;
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => {});
    }
    client.on('data', (chunk) => {
      if (!subscriber && /subscribe/i.test(chunk.toString('latin1'))) subscriber = true;
      upstream.write(chunk);
    });
    // Timers of one delay fire in the order they were set: the stream stays in order.
    upstream.on('data', (chunk) => (subscriber ? setTimeout(() => client.write(chunk), lagMs) : client.write(chunk)));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => setTimeout(() => client.destroy(), subscriber ? lagMs : 0));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `redis://127.0.0.1:${port}`,
    close() {
      for (const s of open) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
