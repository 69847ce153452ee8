import type { Invite } from '@parley/sdk';
import { useEffect, useState } from 'preact/hooks';
import type { ChatStore } from '../chat-store.js';
import { inviteUrl } from '../session-storage.js';

/** Invite links of a group (owner or admin): create one, copy it, revoke it. */
export function InvitesSection({ store, conversationId }: { store: ChatStore; conversationId: string }) {
  const [invites, setInvites] = useState<Invite[]>([]);
  const [copied, setCopied] = useState<string | null>(null);

  async function reload() {
    try {
      const r = await store.client.request('invite.list', { conversationId });
      setInvites(r.invites.filter((i) => !i.revoked));
    } catch (err) {
      store.fail(err);
    }
  }
  useEffect(() => void reload(), [conversationId]);

  async function create() {
    try {
      await store.client.request('invite.create', { conversationId });
      await reload();
    } catch (err) {
      store.fail(err);
    }
  }

  async function revoke(token: string) {
    try {
      await store.client.request('invite.revoke', { token });
      await reload();
    } catch (err) {
      store.fail(err);
    }
  }

  async function copy(token: string) {
    try {
      await navigator.clipboard.writeText(inviteUrl(token));
      setCopied(token);
    } catch {
      // No clipboard permission (an insecure origin): the link is in a field the user can select and copy.
      (document.getElementById(`invite-${token}`) as HTMLInputElement | null)?.select();
    }
  }

  return (
    <section class="invites" aria-labelledby="invites-title">
      <h2 id="invites-title">Invite links</h2>
      <button type="button" onClick={() => void create()}>Create invite link</button>
      <ul>
        {invites.map((i, n) => (
          <li key={i.token} class="invite">
            <label for={`invite-${i.token}`}>Invite link {n + 1}{i.uses > 0 ? ` (used ${i.uses}×)` : ''}</label>
            <input id={`invite-${i.token}`} class="invite-link" readOnly value={inviteUrl(i.token)} onFocus={(e) => e.currentTarget.select()} />
            <button type="button" class="small" onClick={() => void copy(i.token)}>{copied === i.token ? 'Copied' : 'Copy'}</button>
            <button type="button" class="small danger" onClick={() => void revoke(i.token)}>Revoke</button>
          </li>
        ))}
      </ul>
    </section>
  );
}
