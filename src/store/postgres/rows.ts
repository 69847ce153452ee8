/** The store's row shapes and mappers (shared with SQLite), and the column lists of PostgreSQL's queries. */
export * from '../rows.js';

export const userColumns = 'id, name, password_hash, is_admin, banned, created_at, last_seen, origin, metadata, token_generation';
export const conversationColumns =
  'c.id, c.kind, c.name, c.visibility, c.created_by, c.created_at, c.last_seq, c.last_message_at, c.member_count, c.rev';
export const messageColumns = 'conversation_id, seq, id, sender_id, client_key, text, meta, created_at, edited_at, deleted';
export const inviteColumns = 'token, conversation_id, created_by, created_at, expires_at, max_uses, uses, revoked';
