export * from './errors.js';
export * from './ids.js';
export * from './types.js';
export * from './requests.js';
export * from './events.js';
export { closeCatalogue, shouldReconnect, type CloseName } from '@parley/protocol';
export { CURRENT_VERSION, PROTOCOL_VERSIONS, SUBPROTOCOL_PREFIX, TOKEN_SUBPROTOCOL_PREFIX } from '@parley/protocol';
export type { Page, ReplyError, ReplyOk, ResultMap, SendReceipt } from '@parley/protocol';
