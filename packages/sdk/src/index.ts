export { ParleyClient, type Welcome } from './client.js';
export { ConversationRequests } from './conversation-requests.js';
export { ParleyAccounts, type ParleyAccountsOptions, type Session } from './accounts.js';
export type {
  ClientEventMap,
  ClientEventName,
  ClientState,
  DisconnectInfo,
  ParleyClientOptions,
  RequestInput,
  SendOptions,
  SendTarget,
  SyncedInfo,
  TokenSource,
} from './types.js';
export {
  ParleyClientError,
  errorFromBody,
  isParleyClientError,
  isTemporary,
  closeNameOf,
  localErrorCatalogue,
  type ClientErrorCode,
  type LocalErrorCode,
} from './errors.js';
export { Backoff, backoffCeiling, fullJitterDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
export { Sequencer, type GapRange, type Position } from './sequencer.js';
export {
  localStoragePositions, memoryPositions, type LocalStoragePositionsOptions, type PositionStore, type StorageLike,
} from './positions.js';
export { Outbox, sentMessage, type PendingSend, type SendData } from './outbox.js';
export { PendingRequests } from './pending-requests.js';
export { Emitter, type Handler } from './emitter.js';
export { newIdempotencyKey } from './keys.js';
export { splitForFrame } from './frame-batches.js';
export { subprotocols, type WebSocketConstructor, type WebSocketLike } from './socket.js';

// The protocol's own catalogues and types (@parley/protocol), re-exported rather than copied, so that the SDK
// cannot disagree with the server.
export * from '@parley/protocol';
