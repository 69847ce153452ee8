import type { Conversation } from '@parley/sdk';
import { useEffect, useState } from 'preact/hooks';
import { messageOf, type ChatStore } from '../chat-store.js';
import { conversationHref } from '../session-storage.js';
import { Modal } from './modal.js';

/** The server asks clients that search as the user types to wait for a pause (docs/protocol.md, conversation.search). */
const TYPING_PAUSE_MS = 250;

/** Searches the public groups by name and joins one. */
export function FindGroupsDialog({ store, onClose }: { store: ChatStore; onClose: () => void }) {
  const [query, setQuery] = useState('');
  const [results, setResults] = useState<Conversation[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let cancelled = false;
    const timer = setTimeout(() => {
      store.client.request('conversation.search', { query: query.trim(), limit: 50 }).then(
        (r) => { if (!cancelled) { setResults(r.conversations); setError(null); } },
        (err: unknown) => { if (!cancelled) setError(messageOf(err)); },
      );
    }, TYPING_PAUSE_MS);
    return () => { cancelled = true; clearTimeout(timer); };
  }, [query]);

  async function join(c: Conversation) {
    try {
      if (!store.conversations.has(c.id)) await store.join(c.id);
      onClose();
      location.hash = conversationHref(c.id);
    } catch (err) {
      setError(messageOf(err));
    }
  }

  return (
    <Modal title="Find groups" onClose={onClose}>
      <label for="group-query">Group name</label>
      <input id="group-query" type="search" value={query} autoFocus onInput={(e) => setQuery(e.currentTarget.value)} />
      {error && <p class="error" role="alert">{error}</p>}
      {results && results.length === 0 && <p class="hint">No public group matches.</p>}
      {results && results.length > 0 && (
        <ul class="search-results" aria-label="Public groups">
          {results.map((c) => (
            <li key={c.id}>
              <span class="conversation-title">{c.name}</span>
              <span class="hint">{c.memberCount} {c.memberCount === 1 ? 'member' : 'members'}</span>
              <button type="button" onClick={() => void join(c)} aria-label={`${store.conversations.has(c.id) ? 'Open' : 'Join'} ${c.name ?? ''}`}>
                {store.conversations.has(c.id) ? 'Open' : 'Join'}
              </button>
            </li>
          ))}
        </ul>
      )}
    </Modal>
  );
}
