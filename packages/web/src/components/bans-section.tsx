import type { Ban } from '@parley/sdk';
import { useEffect, useState } from 'preact/hooks';
import type { ChatStore } from '../chat-store.js';

/** The users banned from a group (owner or admin), each with a way to lift the ban. `version` reloads the list. */
export function BansSection({ store, conversationId, version }: { store: ChatStore; conversationId: string; version: number }) {
  const [bans, setBans] = useState<Ban[]>([]);

  async function reload() {
    try {
      setBans(await store.client.bans(conversationId));
    } catch (err) {
      store.fail(err);
    }
  }
  useEffect(() => void reload(), [conversationId, version]);

  async function unban(userId: string) {
    try {
      await store.client.unban(conversationId, userId);
      await reload();
    } catch (err) {
      store.fail(err);
    }
  }

  if (bans.length === 0) return null;
  return (
    <section class="bans" aria-labelledby="bans-title">
      <h2 id="bans-title">Banned</h2>
      <ul>
        {bans.map((b) => (
          <li key={b.userId} class="member">
            <span class="member-name">{b.name}</span>
            <button type="button" class="small" onClick={() => void unban(b.userId)}>Lift the ban on {b.name}</button>
          </li>
        ))}
      </ul>
    </section>
  );
}
