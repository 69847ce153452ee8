/**
 * Versioned migrations of the PostgreSQL store: the numbered `migrations/*.sql` files, applied in order, each in its
 * own transaction together with its row in `schema_migrations`, so a migration is applied whole or not at all.
 *
 * Instances starting at once on one database take turns: the whole run holds a session advisory lock, and each
 * version is checked again under it, so every migration runs exactly once. The files sit next to the compiled module
 * (the build copies them into dist), found via import.meta.url.
 */
import fs from 'node:fs';
import type pg from 'pg';
import { rollback } from './pool.js';

const migrationsDir = new URL('./migrations/', import.meta.url);
const migrationFile = /^(\d+)_[\w-]+\.sql$/;

/** The advisory lock key of migrations (and of the refold at start): 'PRLYMIGR' as a bigint. */
export const MIGRATION_LOCK = '5787369638812977490';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** The migrations shipped with this module, ordered by version; two files with one version are refused. */
export function loadMigrations(): Migration[] {
  const migrations = fs.readdirSync(migrationsDir).flatMap((name) => {
    const match = migrationFile.exec(name);
    if (!match) return [];
    return [{ version: Number(match[1]), name, sql: fs.readFileSync(new URL(name, migrationsDir), 'utf8') }];
  });
  migrations.sort((a, b) => a.version - b.version);
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i].version === migrations[i - 1].version) {
      throw new Error(`two migrations share version ${migrations[i].version}: ${migrations[i - 1].name}, ${migrations[i].name}`);
    }
  }
  return migrations;
}

/**
 * Apply every pending migration on `client` (a connection of its own: it holds the advisory lock for the whole run).
 * Returns how many were applied. A second instance waits for the first one's run to end, then finds nothing to do.
 */
export async function migrate(client: pg.ClientBase): Promise<number> {
  // Migrations may rewrite big tables: no statement bound on this connection.
  await client.query('SET statement_timeout = 0');
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
  try {
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    integer PRIMARY KEY,
      name       text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    let applied = 0;
    for (const migration of loadMigrations()) {
      const done = await client.query('SELECT 1 FROM schema_migrations WHERE version = $1', [migration.version]);
      if (done.rowCount) continue;
      try {
        await client.query('BEGIN');
        await client.query(migration.sql);
        await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
        await client.query('COMMIT');
      } catch (err) {
        await rollback(client as pg.PoolClient, err);
        throw err;
      }
      applied++;
    }
    return applied;
  } finally {
    // A lost connection has released the lock already; then this fails too, and the first error is the one to see.
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
  }
}
