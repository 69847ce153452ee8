import type { Member, MyConversation } from '@parley/sdk';
import { useState } from 'preact/hooks';
import type { ChatStore } from '../chat-store.js';
import { messageOf } from '../chat-store.js';
import { BansSection } from './bans-section.js';
import { InvitesSection } from './invites-section.js';

const ROLE_LABEL: Record<Member['role'], string> = { owner: 'Owner', admin: 'Admin', member: 'Member' };

/** The members of a conversation with their roles; owners and admins manage members and invite links here. */
export function DetailsPanel({ store, conversation: c, onClose }: { store: ChatStore; conversation: MyConversation; onClose: () => void }) {
  const members = [...(store.members.get(c.id)?.values() ?? [])];
  const manager = c.kind === 'group' && (c.role === 'owner' || c.role === 'admin');
  // Bumped after every action, so the ban list reads the server again.
  const [actions, setActions] = useState(0);

  async function act(what: () => Promise<unknown>) {
    try {
      await what();
      setActions((n) => n + 1);
      await store.loadMembers(c.id);
    } catch (err) {
      store.fail(err);
    }
  }

  async function leave() {
    try {
      await store.leave(c.id);
      location.hash = '#/';
    } catch (err) {
      store.fail(`Could not leave: ${messageOf(err)}`);
    }
  }

  return (
    <aside id="details" class="details" aria-label="Details">
      <div class="details-head">
        <h2>Members</h2>
        <button type="button" class="icon" aria-label="Close details" onClick={onClose}>×</button>
      </div>
      <ul class="members">
        {members.map((m) => {
          const online = store.presence.get(m.userId);
          const canRemove = manager && m.userId !== store.me.id && m.role !== 'owner' && (c.role === 'owner' || m.role === 'member');
          return (
            <li key={m.userId} class="member" data-user-id={m.userId}>
              {online !== undefined && <span class={online ? 'dot online' : 'dot offline'} role="img" aria-label={online ? 'online' : 'offline'} />}
              <span class="member-name">{m.name}{m.userId === store.me.id ? ' (you)' : ''}</span>
              <span class="role">{ROLE_LABEL[m.role]}</span>
              {c.role === 'owner' && m.role !== 'owner' && (
                <button type="button" class="small" onClick={() => void act(() => store.client.request('member.role', {
                  conversationId: c.id, userId: m.userId, role: m.role === 'admin' ? 'member' : 'admin',
                }))}>{m.role === 'admin' ? `Make ${m.name} a member` : `Make ${m.name} an admin`}</button>
              )}
              {canRemove && (
                <>
                  <button type="button" class="small" onClick={() => void act(() => store.client.request('member.kick', { conversationId: c.id, userId: m.userId }))}>
                    Remove {m.name}
                  </button>
                  <button type="button" class="small danger" onClick={() => void act(() => store.client.ban(c.id, m.userId))}>
                    Ban {m.name}
                  </button>
                </>
              )}
            </li>
          );
        })}
      </ul>
      {manager && <BansSection store={store} conversationId={c.id} version={actions} />}
      {manager && <InvitesSection store={store} conversationId={c.id} />}
      {c.kind === 'group' && (
        <button type="button" class="danger" onClick={() => void leave()}>
          {c.role === 'owner' && c.memberCount <= 1 ? 'Leave and delete the group' : 'Leave group'}
        </button>
      )}
    </aside>
  );
}
