import { useState } from 'preact/hooks';
import { messageOf } from './chat-store.js';

/**
 * The submit of a form that calls the server: busy while it runs (its button is disabled), and the failure, if any,
 * told in the form (`describe` turns it into words; by default the server's message, field by field).
 */
export function useFormSubmit(action: () => Promise<void>, describe: (err: unknown) => string = messageOf) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  }
  return { busy, error, submit, clearError: () => setError(null) };
}
