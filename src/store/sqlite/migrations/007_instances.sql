-- The processes using this file as their store (Store.claimInstance): a sole instance (its bus in its own memory)
-- excludes every other. A row whose process is gone (checked by pid and the process's start time on this host) is
-- stale, and the next claim removes it: a crashed instance never blocks a restart.
CREATE TABLE instances (
  id          TEXT PRIMARY KEY,
  host        TEXT NOT NULL,
  pid         INTEGER NOT NULL,
  pid_started TEXT NOT NULL,
  sole        INTEGER NOT NULL,
  description TEXT NOT NULL,
  since       INTEGER NOT NULL
) WITHOUT ROWID;
