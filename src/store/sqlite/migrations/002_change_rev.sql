-- Change catch-up: a per-conversation change counter ("rev") for everything that is not an append. Each edit, delete,
-- read-cursor move (read.mark), membership change (join, leave, kick, role) and rename bumps conversations.rev by one in
-- its own transaction and stamps the changed row with the new value, so `sync` can return "every change since rev N".
-- Appends do not bump it: new messages are caught up by seq, and the sender's own cursor moving to a message they send
-- is implied by the message. An appended message keeps rev 0, so the partial index below costs appends nothing.

ALTER TABLE conversations ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;

ALTER TABLE messages ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_rev ON messages (conversation_id, rev) WHERE rev > 0;

-- Members changed since a rev (joined, role set, read cursor moved). A member's first row (group creation, direct
-- conversation) has rev 0 and is not indexed: the conversation's creation is no change to catch up on.
ALTER TABLE members ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
CREATE INDEX members_rev ON members (conversation_id, rev) WHERE rev > 0;

-- Who left or was removed, at which rev: the members row is gone, so the departure needs a row of its own. A member
-- who comes back loses it (the new members row tells instead).
CREATE TABLE departures (
  conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  user_id         TEXT NOT NULL,
  rev             INTEGER NOT NULL,
  PRIMARY KEY (conversation_id, user_id)
) WITHOUT ROWID;
CREATE INDEX departures_rev ON departures (conversation_id, rev);
