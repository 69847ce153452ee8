-- parley_append_batch (001_init.sql) with membership checked first: membership, then the idempotency key, then the
-- sender's account ban (a retry of a message stored before a ban is still its duplicate, as before). A member removed from a conversation (left, kicked, banned from the group) who retries the key of a
-- message sent before is answered 'not_member', as every other send of a non-member, instead of 'duplicate' with the
-- original (which the server then published to the members again). Everything else is as in 001_init.sql.
CREATE OR REPLACE FUNCTION parley_append_batch(
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
    IF NOT checked.is_member THEN
      o_outcome := 'not_member';
    ELSIF checked.seq IS NOT NULL THEN
      o_outcome := 'duplicate'; o_seq := checked.seq; o_created_at := checked.created_at; o_id := checked.id;
      o_text := checked.text; o_meta := checked.meta; o_edited_at := checked.edited_at; o_deleted := checked.deleted;
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
