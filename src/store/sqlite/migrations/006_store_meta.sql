-- Facts about the file the store checks when it starts, as key/value pairs. First use: `group_names_fold`, the
-- version of the search folding (foldForSearch and the Unicode tables of the Node that folded the names) that
-- group_names was computed with; the store refolds every name only when it differs, instead of on every start.
CREATE TABLE store_meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
