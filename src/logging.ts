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
