-- Initial schema of the embedded store. Times are milliseconds since the epoch; booleans are 0/1.

CREATE TABLE users (
  id            TEXT PRIMARY KEY,
  -- Display name; for a built-in account also the login name. Users from an integrating product's tokens may share
  -- display names, so uniqueness holds among built-in accounts only (users_login_name below).
  name          TEXT NOT NULL COLLATE NOCASE,
  password_hash TEXT,
  is_admin      INTEGER NOT NULL DEFAULT 0,
  banned        INTEGER NOT NULL DEFAULT 0,
  created_at    INTEGER NOT NULL,
  last_seen     INTEGER
);

-- NOCASE so "Alice" and "alice" cannot both sign up, and login by name is case-insensitive.
CREATE UNIQUE INDEX users_login_name ON users (name COLLATE NOCASE) WHERE password_hash IS NOT NULL;

CREATE TABLE conversations (
  id              TEXT PRIMARY KEY,
  kind            TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
  name            TEXT,
  visibility      TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
  created_by      TEXT NOT NULL,
  created_at      INTEGER NOT NULL,
  -- Seq allocation increments this row inside the append transaction: it is the per-conversation counter.
  last_seq        INTEGER NOT NULL DEFAULT 0,
  last_message_at INTEGER,
  -- Kept in step with members so the maxMembers check and listings need no count(*).
  member_count    INTEGER NOT NULL DEFAULT 0,
  -- The sorted member pair of a direct conversation; UNIQUE makes "one conversation per pair" hold across processes.
  direct_key      TEXT UNIQUE
);

CREATE INDEX conversations_public_name ON conversations (name COLLATE NOCASE) WHERE kind = 'group' AND visibility = 'public';

CREATE TABLE members (
  conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  -- A member needs a user row: Member carries the user's name.
  user_id         TEXT NOT NULL REFERENCES users (id),
  role            TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
  joined_at       INTEGER NOT NULL,
  read_seq        INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (conversation_id, user_id)
) WITHOUT ROWID;

CREATE INDEX members_user ON members (user_id, conversation_id);

CREATE TABLE invites (
  token           TEXT PRIMARY KEY,
  conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  created_by      TEXT NOT NULL,
  created_at      INTEGER NOT NULL,
  expires_at      INTEGER,
  max_uses        INTEGER,
  uses            INTEGER NOT NULL DEFAULT 0,
  revoked         INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX invites_conversation ON invites (conversation_id);

-- A rowid table rather than WITHOUT ROWID: rows carry up to several KB of text and meta, too large for an index b-tree.
CREATE TABLE messages (
  conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  seq             INTEGER NOT NULL,
  -- Server-made random ids, unique by construction; never looked up, so not indexed (every index costs each append).
  id              TEXT NOT NULL,
  sender_id       TEXT NOT NULL,
  client_key      TEXT NOT NULL,
  text            TEXT NOT NULL,
  meta            TEXT,
  created_at      INTEGER NOT NULL,
  edited_at       INTEGER,
  deleted         INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (conversation_id, seq)
);

-- Idempotency of appends.
CREATE UNIQUE INDEX messages_client_key ON messages (conversation_id, sender_id, client_key);
-- No other index on messages, on purpose: appends scatter over conversations, so each index adds a page write per
-- message. Unread needs none (a sender's cursor moves to each message they send, so unread = last_seq - read_seq), and
-- history by time needs none (created_at never decreases within a conversation, so seq order is time order).

