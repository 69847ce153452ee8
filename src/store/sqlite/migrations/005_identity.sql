-- Identities that cannot collide or be taken over (issue 8, section 5).

-- Which namespace a user belongs to. 'builtin': an account of this server (register, `parley user add`, the admin
-- API), signed in with a password. 'product': a user of the integrating product, known from its tokens or the admin
-- upsert. A product token never signs in as a built-in account, and nothing of a product renames one.
ALTER TABLE users ADD COLUMN origin TEXT NOT NULL DEFAULT 'product' CHECK (origin IN ('builtin', 'product'));
UPDATE users SET origin = 'builtin' WHERE password_hash IS NOT NULL;
-- A product user's metadata (JSON text, bounded by the admin API), set by the admin upsert.
ALTER TABLE users ADD COLUMN metadata TEXT;
-- Tokens of our own carry the generation they were issued in; "log out everywhere" increments it, which revokes every
-- token issued before in one write.
ALTER TABLE users ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;

-- Single tokens revoked by logout, by their session id (the `jti` claim), kept until the token would have expired.
CREATE TABLE revoked_sessions (
  session_id TEXT PRIMARY KEY,
  expires_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Per-group bans: a banned user cannot join, accept an invite or be added until unbanned. Checked by the store in the
-- same transaction as the member insert, so a ban cannot be overtaken by a concurrent join.
CREATE TABLE conversation_bans (
  conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  user_id         TEXT NOT NULL,
  banned_by       TEXT NOT NULL,
  banned_at       INTEGER NOT NULL,
  PRIMARY KEY (conversation_id, user_id)
) WITHOUT ROWID;
