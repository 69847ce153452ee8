import { ParleyClient } from '@parley/sdk';
import { useEffect, useState } from 'preact/hooks';
import { accounts, type Session } from './api/accounts.js';
import { ChatStore, messageOf } from './chat-store.js';
import { ChatApp } from './components/chat-app.js';
import { SignIn } from './components/sign-in.js';
import { loadSession, saveSession, takeHandedInToken } from './session-storage.js';

/** Close codes after which this token will not be accepted again: back to the sign-in form. */
const SESSION_ENDED = new Set([4004, 4500, 4502]);

/** Signs in (a stored session, a token handed in by `#token=`, or the form) and runs the chat while signed in. */
export function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [checking, setChecking] = useState(true);
  const [reason, setReason] = useState<string | null>(null);
  const [store, setStore] = useState<ChatStore | null>(null);

  useEffect(() => {
    const stored = loadSession();
    setSession(stored);
    const taken = acceptHandedIn(stored);
    if (taken) taken.finally(() => setChecking(false));
    else setChecking(false);
    // A link pasted into this tab, or followed from another page, changes only the fragment: look at it again.
    const onHash = () => void acceptHandedIn(loadSession());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  /**
   * A token from an integrating product in the address (`#token=`), taken out of it at once. The server says whose it
   * is; it signs in only a tab that is signed out or signed in as that same user: a link must never switch an open
   * session to another account without the user's doing (anyone holding a token of their own could send one).
   */
  function acceptHandedIn(current: Session | null): Promise<void> | null {
    const handed = takeHandedInToken();
    if (!handed) return null;
    return accounts.me(handed).then(
      (user) => {
        if (current && current.user.id !== user.id) {
          window.alert(`This sign-in link is for ${user.name}. You are signed in as ${current.user.name}: log out first to use it.`);
          return;
        }
        const s: Session = { user, token: handed };
        saveSession(s);
        setSession(s);
      },
      (err: unknown) => {
        if (!current) setReason(`The sign-in link did not work: ${messageOf(err)}`);
      },
    );
  }

  useEffect(() => {
    if (!session) return;
    const client = new ParleyClient({ url: new URL('/ws', location.href).href, token: session.token });
    const chat = new ChatStore(client, session.user);
    const off = client.on('disconnect', ({ code }) => {
      if (SESSION_ENDED.has(code)) end(code === 4502 ? 'This account is banned.' : 'Your session has ended. Please log in again.');
    });
    client.connect().catch(() => {
      /* a session that ended is handled by `disconnect` above */
    });
    setStore(chat);
    return () => {
      off();
      chat.dispose();
      client.close('signed out');
      setStore(null);
    };
  }, [session]);

  function end(why: string | null) {
    saveSession(null);
    setSession(null);
    setReason(why);
  }

  async function signOut() {
    const s = session;
    end(null);
    // Revokes a built-in account's token; a product's token is the product's to revoke.
    if (s?.expiresAt !== undefined) await accounts.logOut(s.token).catch(() => {});
  }

  function signedIn(s: Session) {
    saveSession(s);
    setReason(null);
    setSession(s);
  }

  if (checking) return <p class="loading" role="status">Loading…</p>;
  if (!session) return <SignIn onSignedIn={signedIn} reason={reason} />;
  if (!store) return <p class="loading" role="status">Loading…</p>;
  return <ChatApp store={store} onSignOut={() => void signOut()} />;
}
