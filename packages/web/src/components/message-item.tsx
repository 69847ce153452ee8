import type { Message, MyConversation } from '@parley/sdk';
import { useState } from 'preact/hooks';
import type { ChatStore, PendingMessage } from '../chat-store.js';
import { timeLabel } from '../format.js';
import { linkify } from '../linkify.js';

/** Message text as text nodes and safe http(s) links: never parsed as HTML. */
export function MessageText({ text }: { text: string }) {
  return (
    <p class="text">
      {linkify(text).map((s, i) => s.kind === 'link'
        ? <a key={i} href={s.href} target="_blank" rel="noopener noreferrer nofollow">{s.text}</a>
        : s.text)}
    </p>
  );
}

/** A stored message: who and when, the text, "edited", and for our own: sent or seen, edit and delete. */
export function MessageItem({ store, conversation, message: m }: { store: ChatStore; conversation: MyConversation; message: Message }) {
  const [editing, setEditing] = useState(false);
  const mine = m.senderId === store.me.id;
  const sender = store.nameOf(m.conversationId, m.senderId);
  const seenBy = mine ? store.seenBy(m.conversationId, m.seq) : [];
  const status = seenBy.length === 0 ? 'Sent' : conversation.kind === 'direct' ? 'Seen' : `Seen by ${seenBy.join(', ')}`;
  return (
    <li class={mine ? 'message mine' : 'message'} data-seq={m.seq}>
      <div class="bubble">
        {!mine && conversation.kind === 'group' && <p class="sender">{sender}</p>}
        {m.deleted ? (
          <p class="text deleted">Message deleted</p>
        ) : editing ? (
          <EditForm initial={m.text} onCancel={() => setEditing(false)}
            onSave={(text) => {
              // The form stays open, with its text, until the edit is stored.
              if (text === m.text) setEditing(false);
              else void store.edit(m.conversationId, m.seq, text).then((saved) => saved && setEditing(false));
            }} />
        ) : (
          <MessageText text={m.text} />
        )}
        <p class="meta">
          <time dateTime={new Date(m.createdAt).toISOString()}>{timeLabel(m.createdAt)}</time>
          {m.editedAt !== undefined && !m.deleted && <span> · edited</span>}
          {mine && !m.deleted && <span class="status" data-status={seenBy.length ? 'seen' : 'sent'}> · {status}</span>}
          {mine && !m.deleted && !editing && (
            <span class="message-actions">
              <button type="button" class="link" onClick={() => setEditing(true)} aria-label={`Edit message: ${m.text.slice(0, 40)}`}>Edit</button>
              <button type="button" class="link" onClick={() => void store.remove(m.conversationId, m.seq)}
                aria-label={`Delete message: ${m.text.slice(0, 40)}`}>Delete</button>
            </span>
          )}
        </p>
      </div>
    </li>
  );
}

/** One of our messages the server has not acknowledged yet: sending (or queued while offline), or refused. */
export function PendingItem({ store, pending: p }: { store: ChatStore; pending: PendingMessage }) {
  const status = p.error ? `Not sent: ${p.error}` : store.connection === 'open' ? 'Sending…' : 'Waiting for connection…';
  return (
    <li class="message mine pending">
      <div class="bubble">
        <MessageText text={p.text} />
        <p class="meta">
          <time dateTime={new Date(p.createdAt).toISOString()}>{timeLabel(p.createdAt)}</time>
          <span class="status" data-status={p.error ? 'failed' : 'sending'}> · {status}</span>
          {p.error && (
            <span class="message-actions shown">
              <button type="button" class="link" onClick={() => store.discardPending(p.conversationId, p.key)}>Discard</button>
            </span>
          )}
        </p>
      </div>
    </li>
  );
}

function EditForm({ initial, onSave, onCancel }: { initial: string; onSave: (text: string) => void; onCancel: () => void }) {
  const [text, setText] = useState(initial);
  return (
    <form class="edit" onSubmit={(e) => { e.preventDefault(); if (text.trim()) onSave(text); }}>
      <label class="visually-hidden" for="edit-text">Edit message</label>
      <textarea id="edit-text" value={text} autoFocus onInput={(e) => setText(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === 'Escape') onCancel();
          if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); if (text.trim()) onSave(text); }
        }} />
      <button type="submit" class="primary">Save</button>
      <button type="button" onClick={onCancel}>Cancel</button>
    </form>
  );
}
