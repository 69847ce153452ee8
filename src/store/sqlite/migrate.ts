/**
 * Applies the numbered `migrations/*.sql` files in order, each once, recording them in `schema_migrations`.
 * The files sit next to the compiled module (the build copies them into dist), so they are found via import.meta.url.
 */
import fs from 'node:fs';
import type Database from 'better-sqlite3';
import { backfillUsernameKeys } from './username-backfill.js';

const migrationsDir = new URL('./migrations/', import.meta.url);
const migrationFile = /^(\d+)_[\w-]+\.sql$/;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** The migrations shipped with this module, ordered by version. */
export function loadMigrations(): Migration[] {
  const migrations = fs.readdirSync(migrationsDir).flatMap((name) => {
    const match = migrationFile.exec(name);
    if (!match) return [];
    return [{ version: Number(match[1]), name, sql: fs.readFileSync(new URL(name, migrationsDir), 'utf8') }];
  });
  migrations.sort((a, b) => a.version - b.version);
  assertUniqueVersions(migrations);
  return migrations;
}

function assertUniqueVersions(migrations: Migration[]): void {
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i].version === migrations[i - 1].version) {
      throw new Error(`two migrations share version ${migrations[i].version}: ${migrations[i - 1].name}, ${migrations[i].name}`);
    }
  }
}

/** Work a migration needs that SQL cannot do, run right after its SQL in the same transaction, keyed by version. */
const backfills: Partial<Record<number, (db: Database.Database) => void>> = {
  4: backfillUsernameKeys,
};

/** Apply every pending migration, each in its own immediate transaction so concurrent starters do not race. */
export function migrate(db: Database.Database): number {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)');
  const isApplied = db.prepare<[number]>('SELECT 1 FROM schema_migrations WHERE version = ?');
  const record = db.prepare<[number, string]>('INSERT INTO schema_migrations (version, name) VALUES (?, ?)');
  let applied = 0;
  for (const migration of loadMigrations()) {
    const apply = db.transaction(() => {
      // Checked inside the transaction: another process may have applied it since we looked.
      if (isApplied.get(migration.version)) return;
      db.exec(migration.sql);
      backfills[migration.version]?.(db);
      record.run(migration.version, migration.name);
      applied++;
    });
    apply.immediate();
  }
  return applied;
}
