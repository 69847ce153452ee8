/**
 * Fills `name_key`, `name_skeleton` and `name_folded_skeleton` (migration 004) for the built-in accounts that existed before it, in the
 * migration's transaction: SQLite has no NFKC, case folding or confusables table, so this runs in JS.
 * Accounts are visited oldest first; when two existing accounts share a key (the old rules let "Иван" and "иван" both
 * register), the oldest gets the key and the others keep it NULL (the skeleton indexes are not unique: accounts that
 * look alike all keep their skeletons): they still log in by their exact name
 * (SqliteStore.getUserByName) and nothing is lost, but no new account can take any name of that key.
 */
import type Database from 'better-sqlite3';
import { usernameFoldedSkeleton, usernameKey, usernameSkeleton } from '../../protocol/usernames.js';

export function backfillUsernameKeys(db: Database.Database): void {
  const accounts = db.prepare<[], { id: string; name: string }>(
    'SELECT id, name FROM users WHERE password_hash IS NOT NULL ORDER BY created_at, id').all();
  const update = db.prepare<[string | null, string, string, string]>('UPDATE users SET name_key = ?, name_skeleton = ?, name_folded_skeleton = ? WHERE id = ?');
  const taken = new Set<string>();
  for (const { id, name } of accounts) {
    const key = usernameKey(name);
    update.run(taken.has(key) ? null : key, usernameSkeleton(name), usernameFoldedSkeleton(name), id);
    taken.add(key);
  }
}
