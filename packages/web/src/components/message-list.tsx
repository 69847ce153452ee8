import type { Message, MyConversation } from '@parley/sdk';
import type { ComponentChildren } from 'preact';
import { useLayoutEffect, useRef } from 'preact/hooks';
import type { ChatStore, PendingMessage } from '../chat-store.js';
import { dayKey, dayLabel } from '../format.js';
import { MessageItem, PendingItem } from './message-item.js';

/** How close to the top (px) scrolling must come before the next older page is fetched. */
const LOAD_OLDER_WITHIN_PX = 120;

/**
 * The messages of a conversation, oldest at the top, with a separator before each new day. Scrolling near the top
 * loads the previous page (the view keeps its place); new messages scroll into view while the reader is at the bottom.
 */
export function MessageList({ store, conversation }: { store: ChatStore; conversation: MyConversation }) {
  const ref = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const fromBottom = useRef(0);
  const firstSeq = useRef<number | null>(null);
  const pendingCount = useRef(0);
  const view = store.views.get(conversation.id);
  const messages = store.messagesOf(conversation.id);
  const pending = store.pending.get(conversation.id) ?? [];

  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    const first = messages[0]?.seq ?? null;
    const prepended = firstSeq.current !== null && first !== null && first < firstSeq.current;
    firstSeq.current = first;
    // A message of our own just written: bring the end into view, wherever the reader was.
    if (pending.length > pendingCount.current) atBottom.current = true;
    pendingCount.current = pending.length;
    if (prepended) el.scrollTop = el.scrollHeight - el.clientHeight - fromBottom.current;
    else if (atBottom.current) el.scrollTop = el.scrollHeight;
    // A first page too short to scroll could never be scrolled up: fetch older pages until it fills the view.
    if (view?.loaded && view.olderMore && el.scrollHeight <= el.clientHeight) void store.loadOlder(conversation.id);
  });

  function onScroll() {
    const el = ref.current!;
    fromBottom.current = el.scrollHeight - el.clientHeight - el.scrollTop;
    atBottom.current = fromBottom.current < 40;
    if (el.scrollTop < LOAD_OLDER_WITHIN_PX) void store.loadOlder(conversation.id);
  }

  const rows: ComponentChildren[] = [];
  let lastDay: string | null = null;
  const addDay = (at: number) => {
    const day = dayKey(at);
    if (day === lastDay) return;
    lastDay = day;
    rows.push(<li key={`day-${day}`} class="day"><span>{dayLabel(at)}</span></li>);
  };
  messages.forEach((m: Message) => {
    addDay(m.createdAt);
    rows.push(<MessageItem key={`m-${m.seq}`} store={store} conversation={conversation} message={m} />);
  });
  pending.forEach((p: PendingMessage) => {
    addDay(p.createdAt);
    rows.push(<PendingItem key={`p-${p.key}`} store={store} pending={p} />);
  });

  return (
    <div class="messages" ref={ref} onScroll={onScroll} tabIndex={0} role="log" aria-label={`Messages in ${store.title(conversation)}`}>
      {view?.loadingOlder && <p class="hint center" role="status">Loading older messages…</p>}
      {view?.loaded && !view.olderMore && <p class="hint center">This is the beginning of the conversation.</p>}
      {!view?.loaded && <p class="hint center" role="status">Loading…</p>}
      <ol class="message-rows">{rows}</ol>
    </div>
  );
}
