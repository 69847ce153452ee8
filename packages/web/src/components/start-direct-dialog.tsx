import { isParleyClientError } from '@parley/sdk';
import { useState } from 'preact/hooks';
import { messageOf, type ChatStore } from '../chat-store.js';
import { useFormSubmit } from '../use-form-submit.js';
import { conversationHref } from '../session-storage.js';
import { Modal } from './modal.js';

/** Finds a user by their exact username and opens the direct conversation with them. */
export function StartDirectDialog({ store, onClose }: { store: ChatStore; onClose: () => void }) {
  const [username, setUsername] = useState('');
  const { busy, error, submit } = useFormSubmit(
    async () => {
      const id = await store.startDirect(username);
      onClose();
      location.hash = conversationHref(id);
    },
    (err) => (isParleyClientError(err) && err.code === 'NOT_FOUND' ? `Nobody has the username “${username.trim()}”.` : messageOf(err)),
  );

  return (
    <Modal title="New message" onClose={onClose}>
      <form onSubmit={submit}>
        <label for="direct-username">Username</label>
        <input id="direct-username" required maxLength={64} value={username} autoFocus
          onInput={(e) => setUsername(e.currentTarget.value)} />
        <p class="hint">Type their exact username.</p>
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit" class="primary" disabled={busy}>Start conversation</button>
      </form>
    </Modal>
  );
}
