import type { MyConversation } from '@parley/sdk';
import { useState } from 'preact/hooks';
import type { ChatStore } from '../chat-store.js';
import { conversationHref } from '../session-storage.js';
import { CreateGroupDialog } from './create-group-dialog.js';
import { FindGroupsDialog } from './find-groups-dialog.js';
import { StartDirectDialog } from './start-direct-dialog.js';

interface Props {
  store: ChatStore;
  activeId: string | null;
  onSignOut: () => void;
}

type Dialog = 'direct' | 'group' | 'find' | null;

/** Who is signed in, the ways to start a conversation, and the conversations by latest activity. */
export function Sidebar({ store, activeId, onSignOut }: Props) {
  const [dialog, setDialog] = useState<Dialog>(null);
  const close = () => setDialog(null);
  const conversations = store.sortedConversations();
  return (
    <nav class="sidebar" aria-label="Conversations">
      <header class="me">
        <span class="me-name" title="Signed in as">{store.me.name}</span>
        <button type="button" class="link" onClick={onSignOut}>Log out</button>
      </header>
      <div class="actions">
        <button type="button" onClick={() => setDialog('direct')}>New message</button>
        <button type="button" onClick={() => setDialog('group')}>New group</button>
        <button type="button" onClick={() => setDialog('find')}>Find groups</button>
      </div>
      {conversations.length === 0 ? (
        <p class="hint">No conversations yet. Start one by username, or create a group.</p>
      ) : (
        <ul class="conversation-list">
          {conversations.map((c) => (
            <ConversationItem key={c.id} store={store} conversation={c} active={c.id === activeId} />
          ))}
        </ul>
      )}
      {dialog === 'direct' && <StartDirectDialog store={store} onClose={close} />}
      {dialog === 'group' && <CreateGroupDialog store={store} onClose={close} />}
      {dialog === 'find' && <FindGroupsDialog store={store} onClose={close} />}
    </nav>
  );
}

function ConversationItem({ store, conversation: c, active }: { store: ChatStore; conversation: MyConversation; active: boolean }) {
  const online = c.peer ? store.presence.get(c.peer.id) === true : null;
  const title = store.title(c);
  return (
    <li>
      <a href={conversationHref(c.id)} class={active ? 'conversation active' : 'conversation'} aria-current={active ? 'page' : undefined}
        data-conversation-id={c.id}>
        {online !== null && (
          <span class={online ? 'dot online' : 'dot offline'} role="img" aria-label={online ? 'online' : 'offline'} />
        )}
        <span class="conversation-title">{title}</span>
        {c.kind === 'group' && c.visibility === 'private' && <span class="tag">private</span>}
        {c.unread > 0 && <span class="badge" aria-label={`${c.unread} unread`}>{c.unread}</span>}
      </a>
    </li>
  );
}
