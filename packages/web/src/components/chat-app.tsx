import { isParleyClientError } from '@parley/sdk';
import { useEffect, useState } from 'preact/hooks';
import type { ChatStore } from '../chat-store.js';
import { messageOf } from '../chat-store.js';
import { conversationHref } from '../session-storage.js';
import { useRoute } from '../use-route.js';
import { useStore } from '../use-store.js';
import { ConnectionBanner } from './connection-banner.js';
import { ConversationPane } from './conversation-pane.js';
import { Sidebar } from './sidebar.js';

interface Props {
  store: ChatStore;
  onSignOut: () => void;
}

/** The signed-in layout: the sidebar of conversations and the open conversation (one at a time on a phone). */
export function ChatApp({ store, onSignOut }: Props) {
  useStore(store);
  const route = useRoute();
  const [joining, setJoining] = useState<string | null>(null);

  // An invite link joins its group, then opens it; opened while signed out, it waits in the address until sign-in.
  const inviteToken = route.kind === 'invite' ? route.token : null;
  const open = store.connection === 'open';
  useEffect(() => {
    if (!inviteToken) setJoining(null); // the same link opened again later is tried again
    if (!inviteToken || !open || joining === inviteToken) return;
    setJoining(inviteToken);
    store.acceptInvite(inviteToken).then(
      (id) => location.replace(conversationHref(id)),
      (err: unknown) => {
        store.fail(isParleyClientError(err) && err.code === 'ALREADY_MEMBER'
          ? 'You are already in the group of this invite link.'
          : `The invite link did not work: ${messageOf(err)}`);
        location.replace('#/');
      },
    );
  }, [inviteToken, open]);

  const activeId = route.kind === 'conversation' ? route.id : null;
  useEffect(() => {
    void store.open(activeId);
  }, [activeId, store.conversations.has(activeId ?? '')]);

  // The tab's title counts unread messages, so they show while another tab is in front.
  const unread = [...store.conversations.values()].reduce((n, c) => n + c.unread, 0);
  useEffect(() => {
    document.title = unread > 0 ? `(${unread}) Parley` : 'Parley';
  }, [unread]);

  const active = activeId ? store.conversations.get(activeId) : undefined;
  return (
    <div class={`chat ${activeId ? 'has-active' : 'no-active'}`}>
      <ConnectionBanner state={store.connection} />
      {store.notice && (
        <div class="notice" role="alert">
          <span>{store.notice}</span>
          <button type="button" class="link" onClick={() => store.clearNotice()}>Dismiss</button>
        </div>
      )}
      <Sidebar store={store} activeId={activeId} onSignOut={onSignOut} />
      <main class="pane" aria-label="Conversation">
        {active ? (
          <ConversationPane key={active.id} store={store} conversation={active} />
        ) : (
          <div class="empty-pane">
            <p>{activeId ? 'This conversation is not among yours.' : 'Choose a conversation, or start one.'}</p>
            {/* On a phone the sidebar is hidden while a conversation is open: the way back must be here too. */}
            {activeId && <p><a href="#/">Back to conversations</a></p>}
          </div>
        )}
      </main>
    </div>
  );
}
