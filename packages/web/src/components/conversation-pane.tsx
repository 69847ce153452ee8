import type { MyConversation } from '@parley/sdk';
import { useState } from 'preact/hooks';
import type { ChatStore } from '../chat-store.js';
import { Composer } from './composer.js';
import { DetailsPanel } from './details-panel.js';
import { MessageList } from './message-list.js';

/** One open conversation: its header, messages, who is typing, the composer, and (on demand) members and invites. */
export function ConversationPane({ store, conversation: c }: { store: ChatStore; conversation: MyConversation }) {
  const [details, setDetails] = useState(false);
  const title = store.title(c);
  const online = c.peer ? store.presence.get(c.peer.id) === true : null;
  const typing = store.typingNames(c.id);
  return (
    <div class={details ? 'conversation-pane with-details' : 'conversation-pane'}>
      <header class="pane-head">
        <a href="#/" class="back" aria-label="Back to conversations">‹</a>
        <div class="pane-title">
          <h1>{title}</h1>
          <p class="hint">
            {c.kind === 'direct'
              ? (online ? 'online' : 'offline')
              : `${c.visibility === 'private' ? 'Private' : 'Public'} group · ${c.memberCount} ${c.memberCount === 1 ? 'member' : 'members'}`}
          </p>
        </div>
        <button type="button" aria-expanded={details} aria-controls="details" onClick={() => setDetails(!details)}>
          {c.kind === 'group' ? 'Members' : 'Details'}
        </button>
      </header>
      <div class="pane-body">
        <div class="pane-main">
          <MessageList store={store} conversation={c} />
          <p class="typing" aria-live="polite">
            {typing.length === 0 ? '' : `${typing.join(', ')} ${typing.length === 1 ? 'is' : 'are'} typing…`}
          </p>
          <Composer store={store} conversationId={c.id} />
        </div>
        {details && <DetailsPanel store={store} conversation={c} onClose={() => setDetails(false)} />}
      </div>
    </div>
  );
}
