/**
 * Display names: the `name` of a group conversation and of a product user (admin API, a token's `name` /
 * `preferred_username` claim). Unlike usernames they may hold spaces, punctuation, symbols and emoji, and are shown as
 * given (trimmed); they are not unique. They may not hold what would corrupt how they, or the text after them, are
 * shown: C0 and C1 control characters (U+0000–U+001F, U+007F–U+009F: NUL, newlines, tabs, escape sequences) and the
 * bidi embedding, override and isolate controls (U+202A–U+202E, U+2066–U+2069), which reorder the text that follows
 * ("a\u202eb" shows "b" first) and can spill into a client's UI. Strings must be well-formed (no lone surrogate).
 */
import { z } from 'zod';

/** Bounds of a display name, in characters (code points), after trimming. */
export const DISPLAY_NAME_MIN_LENGTH = 1;
export const DISPLAY_NAME_MAX_LENGTH = 200;

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;
const BIDI_CONTROL = /[\u202a-\u202e\u2066-\u2069]/u;

/**
 * Why this (already trimmed) display name breaks the rule (not counting its length), or null when it is fine:
 * a lone surrogate, a control character, or a bidi embedding/override/isolate control.
 */
export function displayNameCharacterProblem(name: string): string | null {
  if (!(name as unknown as { isWellFormed(): boolean }).isWellFormed()) return 'a name must be well-formed Unicode (no lone surrogate)';
  if (CONTROL.test(name)) return 'a name may not contain control characters (U+0000–U+001F, U+007F–U+009F)';
  if (BIDI_CONTROL.test(name)) return 'a name may not contain bidi embedding, override or isolate controls (U+202A–U+202E, U+2066–U+2069)';
  return null;
}

/** Why this (already trimmed) display name breaks the rule, or null: 1–200 code points, and the characters above. */
export function displayNameProblem(name: string): string | null {
  const length = [...name].length;
  if (length < DISPLAY_NAME_MIN_LENGTH) return 'a name needs at least one character besides white space';
  if (length > DISPLAY_NAME_MAX_LENGTH) return `a name has at most ${DISPLAY_NAME_MAX_LENGTH} characters`;
  return displayNameCharacterProblem(name);
}

/** A display name in a request: trimmed, then held to displayNameProblem (INVALID_REQUEST with the reason). */
export const displayNameSchema = z.string().max(4 * DISPLAY_NAME_MAX_LENGTH).trim().superRefine((name, ctx) => {
  const problem = displayNameProblem(name);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
}).describe(`1-${DISPLAY_NAME_MAX_LENGTH} characters after trimming; no control characters (U+0000-U+001F, U+007F-U+009F) `
  + 'and no bidi embedding, override or isolate controls (U+202A-U+202E, U+2066-U+2069).');
