export { ParleyClient, type Welcome } from './client.js';
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
export { Outbox, sentMessage, type PendingSend, type SendData } from './outbox.js';
export { PendingRequests } from './pending-requests.js';
export { Emitter, type Handler } from './emitter.js';
export { newIdempotencyKey } from './keys.js';
export { splitForFrame } from './frame-batches.js';
export { subprotocols, type WebSocketConstructor, type WebSocketLike } from './socket.js';

// The protocol's own catalogues and types, re-exported (not copied) so that the SDK cannot disagree with the server.
export { errorCatalogue, errorCodes, type ErrorCode, type ErrorBody } from '../../../src/protocol/errors.js';
export { closeCatalogue, shouldReconnect, type CloseName } from '../../../src/protocol/close-codes.js';
export { CURRENT_VERSION, SUBPROTOCOL_PREFIX, TOKEN_SUBPROTOCOL_PREFIX } from '../../../src/protocol/version.js';
export { eventNames, type EventMap, type EventName } from '../../../src/protocol/events.js';
export type { RequestType } from '../../../src/protocol/requests.js';
export type { Page, ResultMap, SendReceipt } from '../../../src/protocol/results.js';
export type * from '../../../src/protocol/types.js';
