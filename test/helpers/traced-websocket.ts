/**
 * The real `ws` WebSocket class, subclassed to record what a client does with it: every socket it opens and every
 * frame it sends and receives (with the time), and to drop chosen incoming frames before the client sees them (a
 * frame lost on the way). Given to the SDK as its documented `WebSocket` option; nothing else is changed.
 */
import WebSocket from 'ws';
import type { ParleyClientOptions } from '../../packages/sdk/src/index.js';

export type Frame = { id?: number; type?: string; data?: any; event?: string; result?: any; error?: any; /** When traced (Date.now()). */ at?: number };

export interface Trace {
  /** Every socket the SDK created, oldest first. */
  sockets: WebSocket[];
  /** Every request frame the SDK sent, over all its sockets, with `at`. */
  sent: Frame[];
  /** Every frame the SDK received, over all its sockets, with `at`. */
  received: Frame[];
  /** When set and returning true for an incoming frame, the frame is not passed on to the SDK. */
  dropIncoming: ((frame: Frame, ws: WebSocket) => boolean) | null;
}

/** The real `ws` class, recording sockets and outgoing frames; see the file comment. */
export function tracedWebSocket(): { WebSocket: ParleyClientOptions['WebSocket'] & (new (url: string, protocols?: string | string[]) => WebSocket); trace: Trace } {
  const trace: Trace = { sockets: [], sent: [], received: [], dropIncoming: null };
  const onmessage = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'onmessage')!;
  class Traced extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      trace.sockets.push(this);
      Object.defineProperty(this, 'onmessage', {
        configurable: true,
        get: () => onmessage.get!.call(this),
        set: (handler: unknown) => onmessage.set!.call(this, typeof handler !== 'function' ? handler : (ev: { data: unknown }) => {
          const frame = JSON.parse(String(ev.data)) as Frame;
          trace.received.push({ ...frame, at: Date.now() });
          if (trace.dropIncoming?.(frame, this)) return;
          (handler as (ev: unknown) => void)(ev);
        }),
      });
    }
    override send(data: any, ...rest: any[]): void {
      trace.sent.push({ ...(JSON.parse(String(data)) as Frame), at: Date.now() });
      (super.send as (...a: unknown[]) => void)(data, ...rest);
    }
  }
  return { WebSocket: Traced, trace };
}
