import { useState } from 'preact/hooks';
import type { ChatStore } from '../chat-store.js';

/** Writes a message: Enter sends, Shift+Enter starts a new line. Sends made offline wait in the SDK's outbox. */
export function Composer({ store, conversationId }: { store: ChatStore; conversationId: string }) {
  const [text, setText] = useState('');

  function send() {
    if (text.trim() === '') return;
    store.send(conversationId, text);
    setText('');
  }

  return (
    <form class="composer" onSubmit={(e) => { e.preventDefault(); send(); }}>
      <label for="composer-text" class="visually-hidden">Message</label>
      <textarea id="composer-text" rows={1} placeholder="Write a message" value={text}
        onInput={(e) => { setText(e.currentTarget.value); store.typingNow(conversationId); }}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            send();
          }
        }} />
      <button type="submit" class="primary">Send</button>
    </form>
  );
}
