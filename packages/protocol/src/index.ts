export * from './errors.js';
export * from './close-codes.js';
export * from './version.js';
export * from './types.js';
export * from './requests.js';
export * from './results.js';
export * from './events.js';
