-- The PostgreSQL store's schema: the SQLite schema after its migrations 001-006, in one step (no PostgreSQL database
-- predates it). Times are milliseconds since the epoch (bigint). Ids, keys and folded names use the "C" collation:
-- byte order, as SQLite compares them, whatever the database's default collation, so pages and orders match.

-- Group search matches anywhere in a folded name through a trigram index (a trusted extension: the database owner
-- may create it).
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE users (
  id                   text COLLATE "C" PRIMARY KEY,
  -- Display name; for a built-in account also the login name (compared through name_key, below).
  name                 text NOT NULL,
  password_hash        text,
  is_admin             boolean NOT NULL DEFAULT false,
  banned               boolean NOT NULL DEFAULT false,
  created_at           bigint NOT NULL,
  last_seen            bigint,
  -- 'builtin': an account of this server (password); 'product': a user of the integrating product's tokens.
  origin               text NOT NULL DEFAULT 'product' CHECK (origin IN ('builtin', 'product')),
  -- A product user's metadata as JSON text (text, not jsonb: read back exactly as written).
  metadata             text,
  -- Tokens of our own carry the generation they were issued in; "log out everywhere" increments it.
  token_generation     integer NOT NULL DEFAULT 0,
  -- A built-in account's name keys (src/protocol/usernames.ts), computed by the store: the NFKC + case folding key
  -- (unique among accounts) and its confusables skeletons (a new account may not look like an existing one).
  name_key             text COLLATE "C",
  name_skeleton        text COLLATE "C",
  name_folded_skeleton text COLLATE "C"
);

CREATE UNIQUE INDEX users_name_key ON users (name_key) WHERE password_hash IS NOT NULL;
CREATE INDEX users_name_skeleton ON users (name_skeleton) WHERE password_hash IS NOT NULL;
CREATE INDEX users_name_folded_skeleton ON users (name_folded_skeleton) WHERE password_hash IS NOT NULL;

CREATE TABLE conversations (
  id              text COLLATE "C" PRIMARY KEY,
  kind            text NOT NULL CHECK (kind IN ('direct', 'group')),
  name            text COLLATE "C",
  visibility      text NOT NULL CHECK (visibility IN ('public', 'private')),
  created_by      text NOT NULL,
  created_at      bigint NOT NULL,
  -- The per-conversation seq counter: an append locks this row and increments it in its transaction, so seqs are
  -- gap-free (a SEQUENCE would leave gaps on rollback).
  last_seq        bigint NOT NULL DEFAULT 0,
  last_message_at bigint,
  -- Kept in step with members (under this row's lock), so the maxMembers check needs no count(*).
  member_count    integer NOT NULL DEFAULT 0,
  -- The sorted member pair of a direct conversation; UNIQUE makes "one conversation per pair" hold across instances.
  direct_key      text COLLATE "C" UNIQUE,
  -- The change counter (see changesSince in src/store/store.ts): one bump per change that is not an append.
  rev             bigint NOT NULL DEFAULT 0
);

-- Public groups listed by name as SQLite's NOCASE orders them (ASCII letters folded, other characters by code point).
CREATE INDEX conversations_public_name ON conversations (translate(name, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), id)
  WHERE kind = 'group' AND visibility = 'public';

CREATE TABLE members (
  conversation_id text COLLATE "C" NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  user_id         text COLLATE "C" NOT NULL REFERENCES users (id),
  role            text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
  joined_at       bigint NOT NULL,
  read_seq        bigint NOT NULL DEFAULT 0,
  rev             bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (conversation_id, user_id)
);

CREATE INDEX members_user ON members (user_id, conversation_id);
CREATE INDEX members_rev ON members (conversation_id, rev) WHERE rev > 0;

CREATE TABLE invites (
  token           text COLLATE "C" PRIMARY KEY,
  conversation_id text COLLATE "C" NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  created_by      text NOT NULL,
  created_at      bigint NOT NULL,
  expires_at      bigint,
  max_uses        integer,
  uses            integer NOT NULL DEFAULT 0,
  revoked         boolean NOT NULL DEFAULT false
);

CREATE INDEX invites_conversation ON invites (conversation_id, created_at, token);

CREATE TABLE messages (
  conversation_id text COLLATE "C" NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  seq             bigint NOT NULL,
  -- Server-made random ids, unique by construction; never looked up, so not indexed.
  id              text NOT NULL,
  sender_id       text COLLATE "C" NOT NULL,
  client_key      text COLLATE "C" NOT NULL,
  text            text NOT NULL,
  meta            text,
  created_at      bigint NOT NULL,
  edited_at       bigint,
  deleted         boolean NOT NULL DEFAULT false,
  rev             bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (conversation_id, seq)
);

-- Idempotency of appends.
CREATE UNIQUE INDEX messages_client_key ON messages (conversation_id, sender_id, client_key);
-- History by time in one query (messagesBeforeTime): created_at never decreases along seq, so this index walks the
-- same order as seq. It costs each append one index entry; SQLite avoids it with a binary search over seq, which on a
-- network store would be log2(n) round trips.
CREATE INDEX messages_time ON messages (conversation_id, created_at, seq);
CREATE INDEX messages_rev ON messages (conversation_id, rev) WHERE rev > 0;

-- Who left or was removed, at which rev (the members row is gone).
CREATE TABLE departures (
  conversation_id text COLLATE "C" NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  user_id         text COLLATE "C" NOT NULL,
  rev             bigint NOT NULL,
  PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX departures_rev ON departures (conversation_id, rev);

-- Each public group's name folded for search (src/store/search-text.ts, computed by the store), written in the
-- transactions that create and rename groups.
CREATE TABLE group_names (
  conversation_id text COLLATE "C" PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
  folded          text COLLATE "C" NOT NULL
);
-- Queries of one or two characters match the beginning of names: a range on this index.
CREATE INDEX group_names_folded ON group_names (folded);
-- Longer queries match anywhere: LIKE '%…%' served by trigrams (the LIKE itself rechecks every candidate, so results
-- are exact whatever pg_trgm makes of a character).
CREATE INDEX group_names_trigrams ON group_names USING gin (folded gin_trgm_ops);

-- Single tokens revoked by logout, kept until the token would have expired.
CREATE TABLE revoked_sessions (
  session_id text COLLATE "C" PRIMARY KEY,
  expires_at bigint NOT NULL
);

-- Per-group bans, checked in the same transaction as a member insert or an append.
CREATE TABLE conversation_bans (
  conversation_id text COLLATE "C" NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  user_id         text COLLATE "C" NOT NULL,
  banned_by       text NOT NULL,
  banned_at       bigint NOT NULL,
  PRIMARY KEY (conversation_id, user_id)
);

-- Facts about the database the store checks when it starts (`group_names_fold`: the folding signature of group_names),
-- and the row ping() writes.
CREATE TABLE store_meta (
  key   text COLLATE "C" PRIMARY KEY,
  value text NOT NULL
);

-- The append batch in one round trip (src/store/postgres/append.ts): item i of the arrays is one message. Counter rows
-- are locked first, in id order (two instances' batches cannot deadlock); then, per item, in this order: the
-- idempotency key (a repeat answers 'duplicate' with the original), membership, the sender's ban, and only then the
-- counter is incremented, the message inserted and the sender's read cursor moved. A VOLATILE function takes a fresh
-- snapshot for each statement (READ COMMITTED), so these checks, made after the lock, see every append that held it.
-- created_at is max(now, the conversation's last): it never decreases along seq (history by time relies on it).
-- Expected refusals are outcomes, not errors; an error (a NULL text) aborts the whole call, and the store then runs
-- the items one by one, each in a savepoint.
CREATE FUNCTION parley_append_batch(
  p_conversation text[], p_sender text[], p_key text[], p_id text[], p_text text[], p_meta text[], p_now bigint[]
) RETURNS TABLE (
  o_outcome text, o_seq bigint, o_created_at bigint, o_id text, o_text text, o_meta text, o_edited_at bigint, o_deleted boolean
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  i integer;
  checked record;
BEGIN
  PERFORM 1 FROM conversations WHERE id = ANY (p_conversation) ORDER BY id FOR NO KEY UPDATE;
  FOR i IN 1 .. coalesce(array_length(p_conversation, 1), 0) LOOP
    o_outcome := NULL; o_seq := NULL; o_created_at := NULL; o_id := NULL; o_text := NULL; o_meta := NULL;
    o_edited_at := NULL; o_deleted := NULL;
    -- The three checks in one statement (one snapshot): the key's message if any, membership, the sender's ban.
    SELECT m.seq, m.created_at, m.id, m.text, m.meta, m.edited_at, m.deleted,
        EXISTS (SELECT 1 FROM members mb WHERE mb.conversation_id = p_conversation[i] AND mb.user_id = p_sender[i]) AS is_member,
        coalesce((SELECT u.banned FROM users u WHERE u.id = p_sender[i]), false) AS is_banned
      INTO checked
      FROM (SELECT 1) AS one LEFT JOIN messages m
        ON m.conversation_id = p_conversation[i] AND m.sender_id = p_sender[i] AND m.client_key = p_key[i];
    IF checked.seq IS NOT NULL THEN
      o_outcome := 'duplicate'; o_seq := checked.seq; o_created_at := checked.created_at; o_id := checked.id;
      o_text := checked.text; o_meta := checked.meta; o_edited_at := checked.edited_at; o_deleted := checked.deleted;
    ELSIF NOT checked.is_member THEN
      o_outcome := 'not_member';
    ELSIF checked.is_banned THEN
      o_outcome := 'banned';
    ELSE
      UPDATE conversations c SET last_seq = c.last_seq + 1, last_message_at = greatest(coalesce(c.last_message_at, 0), p_now[i])
        WHERE c.id = p_conversation[i] RETURNING c.last_seq, c.last_message_at INTO o_seq, o_created_at;
      IF NOT FOUND THEN
        o_outcome := 'no_conversation';
      ELSE
        INSERT INTO messages (conversation_id, seq, id, sender_id, client_key, text, meta, created_at)
          VALUES (p_conversation[i], o_seq, p_id[i], p_sender[i], p_key[i], p_text[i], p_meta[i], o_created_at);
        UPDATE members mb SET read_seq = o_seq
          WHERE mb.conversation_id = p_conversation[i] AND mb.user_id = p_sender[i] AND mb.read_seq < o_seq;
        o_outcome := 'appended';
      END IF;
    END IF;
    RETURN NEXT;
  END LOOP;
END
$$;
