import type { ZxcvbnFactory } from '@zxcvbn-ts/core';
import { ParleyError } from '../protocol/errors.js';

/**
 * What a new password must be (NIST SP 800-63B): at least `minLength` characters (code points; any Unicode, spaces
 * included), not only white space, and not guessable: its zxcvbn score (0–4, from @zxcvbn-ts with the common and
 * English dictionaries: the most common and breached passwords, names, words, keyboard patterns, dates, repeats and
 * sequences, l33t variants) at least `minScore`. The user's own name counts as a known word. The upper bound (1024)
 * is the request schema's. Refusals are WEAK_PASSWORD with details `{reason, minLength, minScore, score?, warning,
 * suggestions}` that a client can show. Existing passwords are never re-checked: login accepts what was accepted.
 */
export interface PasswordPolicy {
  minLength: number;
  minScore: number;
}

/** zxcvbn looks at this many leading characters: its matchers grow steeply with length (a 64-character check costs
 * at most a few hundred ms); a password whose first 64 characters are strong is strong. */
const CHECKED_LENGTH = 64;
/** l33t substitutions tried per password; zxcvbn's default (100) takes seconds on random-looking input. */
const L33T_MAX_SUBSTITUTIONS = 4;
/** Context words every password is checked against, besides the user's name (NIST: the service's name). */
const SERVICE_WORDS = ['parley', 'chat'];

let factory: Promise<ZxcvbnFactory> | undefined;

// Loaded on first use, not when the server starts: importing the dictionaries (they decompress as they load) costs
// ~300 ms of CPU that would delay the port opening after every restart, and servers without accounts never need it.
function zxcvbn(): Promise<ZxcvbnFactory> {
  return (factory ??= (async () => {
    const [{ ZxcvbnFactory }, common, english] = await Promise.all([
      import('@zxcvbn-ts/core'), import('@zxcvbn-ts/language-common'), import('@zxcvbn-ts/language-en'),
    ]);
    return new ZxcvbnFactory({
      translations: english.translations,
      graphs: common.adjacencyGraphs,
      dictionary: { ...common.dictionary, ...english.dictionary },
      maxLength: CHECKED_LENGTH,
      l33tMaxSubstitutions: L33T_MAX_SUBSTITUTIONS,
    });
  })());
}

/** Rejects WEAK_PASSWORD unless `password` meets the policy; `userInputs` are words of the user (name, username). */
export async function checkPassword(password: string, userInputs: string[], policy: PasswordPolicy): Promise<void> {
  const length = [...password].length;
  const base = { minLength: policy.minLength, minScore: policy.minScore };
  if (length < policy.minLength) {
    throw new ParleyError('WEAK_PASSWORD', `the password needs at least ${policy.minLength} characters (it has ${length})`, {
      reason: 'too_short', ...base, warning: null,
      suggestions: [`Use at least ${policy.minLength} characters: a few unrelated words make a long password that is easy to remember.`],
    });
  }
  if (password.trim().length === 0) {
    throw new ParleyError('WEAK_PASSWORD', 'the password cannot be only white space', {
      reason: 'whitespace_only', ...base, warning: null, suggestions: ['Spaces are fine between words, but use words or other characters too.'],
    });
  }
  if (policy.minScore === 0) return;
  const inputs = [...SERVICE_WORDS, ...userInputs.flatMap((word) => [word, ...word.split(/[^\p{L}\p{N}]+/u)]).filter((w) => w.length > 0)];
  const result = (await zxcvbn()).check(password, inputs);
  if (result.score >= policy.minScore) return;
  const warning = result.feedback.warning || null;
  throw new ParleyError('WEAK_PASSWORD', `the password is too easy to guess (strength ${result.score} of 4, at least ${policy.minScore} needed)${warning ? `: ${warning}` : ''}`, {
    reason: 'too_guessable', ...base, score: result.score, warning,
    suggestions: result.feedback.suggestions.length > 0 ? result.feedback.suggestions : ['Add another word or two. Uncommon words are better.'],
  });
}
