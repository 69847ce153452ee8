-- Built-in account names compared as Unicode intends (src/protocol/usernames.ts): `name` keeps the display form,
-- `name_key` is its NFKC + full case folding key (unique among accounts: "Иван" and "ИВАН" are one account) and
-- `name_skeleton` and `name_folded_skeleton` its confusables skeletons, of the name as shown and of its key (a new
-- account may not look like an existing one; the indexes are not unique, so existing look-alikes keep both).
-- SQLite cannot compute either, so migrate.ts fills them for existing accounts in JS, in this migration's transaction
-- (src/store/sqlite/username-backfill.ts). Existing accounts whose keys collide keep working: the oldest gets the key,
-- the others keep name_key NULL and log in by their exact name, as before.

ALTER TABLE users ADD COLUMN name_key TEXT;
ALTER TABLE users ADD COLUMN name_skeleton TEXT;
ALTER TABLE users ADD COLUMN name_folded_skeleton TEXT;

CREATE UNIQUE INDEX users_name_key ON users (name_key) WHERE password_hash IS NOT NULL;
CREATE INDEX users_name_skeleton ON users (name_skeleton) WHERE password_hash IS NOT NULL;
CREATE INDEX users_name_folded_skeleton ON users (name_folded_skeleton) WHERE password_hash IS NOT NULL;
