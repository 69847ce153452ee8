/**
 * Display names: the `name` of a group conversation and of a product user (admin API, a token's `name` /
 * `preferred_username` claim). Unlike usernames they may hold spaces, punctuation, symbols and emoji, and are shown as
 * given (trimmed); they are not unique. They may not hold what would corrupt how they, or the text after them, are
 * shown: C0 and C1 control characters (U+0000–U+001F, U+007F–U+009F: NUL, newlines, tabs, escape sequences) and the
 * bidi embedding, override and isolate controls (U+202A–U+202E, U+2066–U+2069), which reorder the text that follows
 * ("a\u202eb" shows "b" first) and can spill into a client's UI; the line and paragraph separators (U+2028, U+2029),
 * which break lines like a newline; tag characters (U+E0000–U+E007F), which hide text from readers, except in the emoji
 * tag sequences of subdivision flags (🏴 U+1F3F4, 2–7 tag letters or digits, U+E007F CANCEL TAG); and U+FFFD, the replacement character,
 * which only text damaged by a bad decoder holds (bytes that were not UTF-8). A name must show something: at least one
 * character that is not white space, not default-ignorable or another format character (zero-width, format and filler
 * characters such as U+200B, U+200E, U+3164, U+FFF9), not a combining mark, not unassigned or a noncharacter, and not
 * the blank braille pattern (U+2800) or the object replacement character (U+FFFC). Strings must be well-formed
 * (no lone surrogate).
 */
import { z } from 'zod';

/** Bounds of a display name, in characters (code points), after trimming. */
export const DISPLAY_NAME_MIN_LENGTH = 1;
export const DISPLAY_NAME_MAX_LENGTH = 200;

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;
const BIDI_CONTROL = /[\u202a-\u202e\u2066-\u2069]/u;
const LINE_SEPARATOR = /[\u2028\u2029]/u;
// A subdivision flag: 🏴, a subdivision code in tag letters and digits ("gbeng": 2 to 7 of them), CANCEL TAG.
const FLAG_TAG_SEQUENCE = /\u{1F3F4}[\u{E0030}-\u{E0039}\u{E0061}-\u{E007A}]{2,7}\u{E007F}/gu;
const TAG = /[\u{E0000}-\u{E007F}]/u;
const REPLACEMENT = /\uFFFD/u;
// Not visible: white space, default-ignorable and other format characters (U+FFF9–FFFB, U+13430…), marks, unassigned
// code points and noncharacters, the blank braille pattern and the object replacement character.
const VISIBLE = /[^\p{White_Space}\p{Default_Ignorable_Code_Point}\p{Cf}\p{Cn}\p{M}\u2800\uFFFC]/u;

/**
 * Why this (already trimmed) display name breaks the rule (not counting its length), or null when it is fine:
 * a lone surrogate, a control character, a bidi embedding/override/isolate control, a line or paragraph separator, a
 * tag character outside a flag sequence, the replacement character, or nothing visible.
 */
export function displayNameCharacterProblem(name: string): string | null {
  if (!(name as unknown as { isWellFormed(): boolean }).isWellFormed()) return 'a name must be well-formed Unicode (no lone surrogate)';
  if (CONTROL.test(name)) return 'a name may not contain control characters (U+0000–U+001F, U+007F–U+009F)';
  if (BIDI_CONTROL.test(name)) return 'a name may not contain bidi embedding, override or isolate controls (U+202A–U+202E, U+2066–U+2069)';
  if (LINE_SEPARATOR.test(name)) return 'a name may not contain the line or paragraph separator (U+2028, U+2029)';
  if (TAG.test(name.replace(FLAG_TAG_SEQUENCE, ''))) return 'a name may not contain tag characters (U+E0000–U+E007F) outside a flag emoji';
  if (REPLACEMENT.test(name)) return 'a name may not contain the replacement character U+FFFD (the text was not valid UTF-8 somewhere)';
  if (!VISIBLE.test(name)) return 'a name needs at least one visible character (not only white space, zero-width, format or filler characters and marks)';
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
}).describe(`1-${DISPLAY_NAME_MAX_LENGTH} characters after trimming, at least one of them visible; no control characters `
  + '(U+0000-U+001F, U+007F-U+009F), bidi embedding, override or isolate controls (U+202A-U+202E, U+2066-U+2069), line or '
  + 'paragraph separators (U+2028, U+2029), tag characters outside flag emoji (U+E0000-U+E007F) or U+FFFD.');
