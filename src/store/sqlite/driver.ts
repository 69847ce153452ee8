/**
 * Which better-sqlite3 build this process loads. Two majors are installed because no single one runs on every Node
 * line Parley supports:
 * - better-sqlite3 12 (compiled at install) works on Node 20, but on Node 24.19+ the process aborts
 *   (`RemoveEnvironmentCleanupHook: Assertion failed: (env) != nullptr`) as soon as a garbage-collected Statement is
 *   finalised, because Node 24.19 changed node::ObjectWrap, which 12 is built on;
 * - better-sqlite3 13 (installed as `better-sqlite3-napi`, an N-API prebuild shipped in the package, no install
 *   script) is free of that, but requires Node 22 and its prebuild crashes on Node 20.
 * Both expose the same API; the type is taken from 12.
 */
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';

const require = createRequire(import.meta.url);
const nodeMajor = Number(process.versions.node.split('.')[0]);

export const driverName = nodeMajor >= 22 ? 'better-sqlite3-napi' : 'better-sqlite3';
export const Database = require(driverName) as typeof BetterSqlite3;
export type Database = BetterSqlite3.Database;
