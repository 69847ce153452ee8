import { hostname } from 'node:os';
import { pino, type DestinationStream, type Logger } from 'pino';
import type { Config } from './config/schema.js';

export type { Logger };

/** JSON-lines logger; every line carries the instance id. Default destination: stdout. */
export function createLogger(config: Config, destination?: DestinationStream): Logger {
  const options = {
    level: config.log.level,
    base: { instance: config.server.instanceId ?? `${hostname()}-${process.pid}` },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return destination ? pino(options, destination) : pino(options);
}

/**
 * A log call made at most once per `intervalMs` (default 10 s): the calls in between are counted, and the next one
 * that logs is given how many were left out. For faults that repeat on every request or every tick while they last
 * (a bus that refuses publishes, a Redis that cannot be reached): one line per interval says it all.
 */
export function throttled<A extends unknown[]>(log: (suppressed: number, ...args: A) => void, intervalMs = 10_000): (...args: A) => void {
  let loggedAt = -Infinity;
  let suppressed = 0;
  return (...args: A): void => {
    const now = Date.now();
    if (now - loggedAt < intervalMs) {
      suppressed++;
      return;
    }
    log(suppressed, ...args);
    loggedAt = now;
    suppressed = 0;
  };
}
