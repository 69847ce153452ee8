-- Search of public groups by name, served from indexes instead of a scan of every group.
-- group_names holds each public group's name folded for search (Unicode case folding and NFKC, computed by the store:
-- src/store/search-text.ts); the store writes it in the transactions that create and rename groups, and the backfill
-- below is refolded by the store when it starts (SQL's lower() folds ASCII only).
CREATE TABLE group_names (
  conversation_id TEXT NOT NULL UNIQUE REFERENCES conversations (id) ON DELETE CASCADE,
  folded          TEXT NOT NULL
);

-- Queries of one or two characters match the beginning of names: a range on this index.
CREATE INDEX group_names_folded ON group_names (folded);

-- Longer queries match anywhere in the name: trigrams of the folded name (already folded, so case-sensitive here).
CREATE VIRTUAL TABLE group_names_fts USING fts5 (folded, content = 'group_names', content_rowid = 'rowid', tokenize = 'trigram case_sensitive 1');

-- The full-text index follows group_names in the same transaction (deletes of groups cascade to group_names).
CREATE TRIGGER group_names_insert AFTER INSERT ON group_names BEGIN
  INSERT INTO group_names_fts (rowid, folded) VALUES (new.rowid, new.folded);
END;
CREATE TRIGGER group_names_delete AFTER DELETE ON group_names BEGIN
  INSERT INTO group_names_fts (group_names_fts, rowid, folded) VALUES ('delete', old.rowid, old.folded);
END;
CREATE TRIGGER group_names_update AFTER UPDATE ON group_names BEGIN
  INSERT INTO group_names_fts (group_names_fts, rowid, folded) VALUES ('delete', old.rowid, old.folded);
  INSERT INTO group_names_fts (rowid, folded) VALUES (new.rowid, new.folded);
END;

INSERT INTO group_names (conversation_id, folded)
  SELECT id, lower(name) FROM conversations WHERE kind = 'group' AND visibility = 'public' AND name IS NOT NULL;
