import { useState } from 'preact/hooks';
import type { ChatStore } from '../chat-store.js';
import { useFormSubmit } from '../use-form-submit.js';
import { conversationHref } from '../session-storage.js';
import { Modal } from './modal.js';

/** Creates a public group (anyone can find and join it) or a private one (joined by invite link). */
export function CreateGroupDialog({ store, onClose }: { store: ChatStore; onClose: () => void }) {
  const [name, setName] = useState('');
  const [visibility, setVisibility] = useState<'public' | 'private'>('private');
  const { busy, error, submit } = useFormSubmit(async () => {
    const id = await store.createGroup(name, visibility);
    onClose();
    location.hash = conversationHref(id);
  });

  return (
    <Modal title="New group" onClose={onClose}>
      <form onSubmit={submit}>
        <label for="group-name">Name</label>
        <input id="group-name" required maxLength={200} value={name} autoFocus onInput={(e) => setName(e.currentTarget.value)} />
        <fieldset>
          <legend>Who can join</legend>
          <label class="choice">
            <input type="radio" name="visibility" value="private" checked={visibility === 'private'} onChange={() => setVisibility('private')} />
            Private: people you invite by link
          </label>
          <label class="choice">
            <input type="radio" name="visibility" value="public" checked={visibility === 'public'} onChange={() => setVisibility('public')} />
            Public: anyone can find and join it
          </label>
        </fieldset>
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit" class="primary" disabled={busy}>Create group</button>
      </form>
    </Modal>
  );
}
