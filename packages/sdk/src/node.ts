/**
 * The Node entry of @parley/sdk (the `node` condition of its `exports`): everything the browser entry exports, with a
 * ParleyClient whose WebSocket defaults to the `ws` package. Node 20 has no global WebSocket, and `ws` behaves the
 * same on every Node version the SDK supports, so Node uses it unless `options.WebSocket` names another.
 */
import WebSocket from 'ws';
import { ParleyClient as BrowserParleyClient } from './client.js';
import type { WebSocketConstructor } from './socket.js';
import type { ParleyClientOptions } from './types.js';

export * from './index.js';

export class ParleyClient extends BrowserParleyClient {
  /** As the browser entry's, except that `options.WebSocket` defaults to the `ws` package. */
  constructor(options: ParleyClientOptions) {
    super({ ...options, WebSocket: options?.WebSocket ?? (WebSocket as unknown as WebSocketConstructor) });
  }
}
