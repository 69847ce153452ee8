import { isParleyClientError } from '@parley/sdk';
import { useState } from 'preact/hooks';
import { accounts, type Session } from '../api/accounts.js';
import { messageOf } from '../chat-store.js';
import { useFormSubmit } from '../use-form-submit.js';
import { currentRoute } from '../session-storage.js';

interface Props {
  onSignedIn: (session: Session) => void;
  /** Why the user is here (a session that ended, a link that failed). */
  reason: string | null;
}

/** Log in to a built-in account, or create one. */
export function SignIn({ onSignedIn, reason }: Props) {
  const [mode, setMode] = useState<'login' | 'register'>('login');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const { busy, error, submit, clearError } = useFormSubmit(async () => {
    onSignedIn(await (mode === 'login' ? accounts.logIn(username, password) : accounts.signUp(username, password)));
  }, describe);

  const title = mode === 'login' ? 'Log in' : 'Create an account';
  return (
    <main class="sign-in">
      <h1>Parley</h1>
      {currentRoute().kind === 'invite' && <p class="hint">You were invited to a group: log in or create an account to join it.</p>}
      {reason && <p class="notice" role="alert">{reason}</p>}
      <form onSubmit={submit} aria-labelledby="sign-in-title">
        <h2 id="sign-in-title">{title}</h2>
        <label for="username">Username</label>
        <input id="username" name="username" autocomplete="username" required maxLength={64} value={username}
          onInput={(e) => setUsername(e.currentTarget.value)} />
        <label for="password">Password</label>
        <input id="password" name="password" type="password" required
          autocomplete={mode === 'login' ? 'current-password' : 'new-password'} value={password}
          onInput={(e) => setPassword(e.currentTarget.value)} />
        {mode === 'register' && <p class="hint">At least 8 characters; a few unusual words make a strong password.</p>}
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit" class="primary" disabled={busy}>{title}</button>
      </form>
      <p>
        {mode === 'login' ? 'New here? ' : 'Already have an account? '}
        <button type="button" class="link" onClick={() => { setMode(mode === 'login' ? 'register' : 'login'); clearError(); }}>
          {mode === 'login' ? 'Create an account' : 'Log in'}
        </button>
      </p>
    </main>
  );
}

/** The server's message, with what zxcvbn suggests for a weak password. */
function describe(err: unknown): string {
  if (isParleyClientError(err) && err.code === 'WEAK_PASSWORD') {
    const d = err.details as { warning?: string | null; suggestions?: string[] } | undefined;
    return [err.message, ...(d?.suggestions ?? [])].filter(Boolean).join(' ');
  }
  if (isParleyClientError(err) && err.code === 'UNAUTHORIZED') return 'Wrong username or password.';
  return messageOf(err);
}
