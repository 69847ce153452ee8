import type { Socket } from 'node:net';
import WebSocket from 'ws';

/**
 * A protocol-level test client: raw JSON frames over a real WebSocket, no SDK. Replies are matched by id; events are
 * recorded in arrival order and can be awaited.
 */
export class RawClient {
  readonly events: Array<{ event: string; data: any }> = [];
  readonly frames: any[] = [];
  closed: { code: number; reason: string } | null = null;
  private nextId = 1;
  private readonly replies = new Map<string | number, (frame: any) => void>();
  private readonly waiters: Array<{ match: (e: { event: string; data: any }) => boolean; resolve: (e: any) => void }> = [];
  private readonly closeWaiters: Array<(c: { code: number; reason: string }) => void> = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => this.onFrame(JSON.parse(String(data))));
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: String(reason) };
      for (const w of this.closeWaiters.splice(0)) w(this.closed);
    });
    ws.on('error', () => {});
  }

  /** Connect with the token as a subprotocol (as browsers do) unless `via` says otherwise; waits for `welcome`. */
  static async connect(
    wsUrl: string,
    token: string | null,
    options: { via?: 'protocol' | 'header' | 'query'; protocols?: string[]; autoPong?: boolean; waitWelcome?: boolean } = {},
  ): Promise<RawClient> {
    const via = options.via ?? 'protocol';
    const protocols = options.protocols ?? ['parley.v1', ...(token && via === 'protocol' ? [`bearer.${token}`] : [])];
    const url = token && via === 'query' ? `${wsUrl}?token=${encodeURIComponent(token)}` : wsUrl;
    const headers = token && via === 'header' ? { authorization: `Bearer ${token}` } : undefined;
    const ws = new WebSocket(url, protocols, { headers, autoPong: options.autoPong ?? true });
    const client = new RawClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    if (options.waitWelcome !== false) await client.waitFor('welcome', () => true, 5000).catch(() => undefined);
    return client;
  }

  /** Send a request; resolves with the whole reply frame (`{id, result}` or `{id, error}`). */
  request(type: string, data?: unknown, timeoutMs = 5000): Promise<any> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to ${type} within ${timeoutMs} ms`)), timeoutMs);
      this.replies.set(id, (frame) => {
        clearTimeout(timer);
        resolve(frame);
      });
      this.ws.send(JSON.stringify(data === undefined ? { id, type } : { id, type, data }));
    });
  }

  /** Send a request and return its result, failing the test with the error if there is one. */
  async ok(type: string, data?: unknown): Promise<any> {
    const reply = await this.request(type, data);
    if (reply.error) throw new Error(`${type} failed: ${JSON.stringify(reply.error)}`);
    return reply.result;
  }

  /** Send a request expected to fail; returns the error code. */
  async errorCode(type: string, data?: unknown): Promise<string> {
    const reply = await this.request(type, data);
    if (!reply.error) throw new Error(`${type} unexpectedly succeeded: ${JSON.stringify(reply.result)}`);
    return reply.error.code;
  }

  sendRaw(data: string | Buffer): void {
    this.ws.send(data);
  }

  /** Send a raw frame and return the next reply frame (replies with `id: null` are not matched by `request`). */
  async rawReply(frame: string | Buffer, timeoutMs = 3000): Promise<any> {
    const seen = this.frames.length;
    this.sendRaw(frame);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const reply = this.frames.slice(seen).find((f) => f.event === undefined);
      if (reply) return reply;
      await sleep(5);
    }
    throw new Error(`no reply to ${String(frame).slice(0, 60)} within ${timeoutMs} ms`);
  }

  waitFor(event: string, match: (data: any) => boolean = () => true, timeoutMs = 5000): Promise<any> {
    const found = this.events.find((e) => e.event === event && match(e.data));
    if (found) return Promise.resolve(found.data);
    return new Promise((resolve, reject) => {
      const waiter = { match: (e: { event: string; data: any }) => e.event === event && match(e.data), resolve };
      this.waiters.push(waiter);
      setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) {
          this.waiters.splice(i, 1);
          reject(new Error(`no ${event} event within ${timeoutMs} ms`));
        }
      }, timeoutMs);
    });
  }

  waitClose(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve, reject) => {
      this.closeWaiters.push(resolve);
      setTimeout(() => reject(new Error(`not closed within ${timeoutMs} ms`)), timeoutMs);
    });
  }

  eventsOf(event: string): any[] {
    return this.events.filter((e) => e.event === event).map((e) => e.data);
  }

  close(): void {
    this.ws.close();
  }

  private onFrame(frame: any): void {
    this.frames.push(frame);
    if (frame.event !== undefined) {
      this.events.push(frame);
      for (const waiter of [...this.waiters]) {
        if (waiter.match(frame)) {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          waiter.resolve(frame.data);
        }
      }
      return;
    }
    const resolve = this.replies.get(frame.id);
    if (resolve) {
      this.replies.delete(frame.id);
      resolve(frame);
    }
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Make `socket` a reader on a slow link: after each chunk it rests for as long as the chunk takes at `bytesPerSecond`
 * (it still answers every ping it reads). Returns a function that stops the throttling and reads on at full speed.
 */
export function readAtMost(socket: Socket, bytesPerSecond: number): () => void {
  const onData = (chunk: Buffer): void => {
    socket.pause();
    setTimeout(() => socket.resume(), (chunk.length / bytesPerSecond) * 1000);
  };
  socket.on('data', onData);
  return () => {
    socket.off('data', onData);
    socket.resume();
  };
}

/** Resolve once `check` holds, polling every `everyMs`; fail, naming `what`, after `timeoutMs` (bounded). */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000, everyMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(everyMs);
  }
}
