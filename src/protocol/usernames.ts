/**
 * Usernames of built-in accounts: what one may contain, and how two are compared.
 *
 * - Display form: what the user typed, trimmed of surrounding white space and put in NFC. Shown as is.
 * - Key (`usernameKey`): NFKC, then full Unicode case folding (CaseFolding.txt statuses C and F, via the
 *   `unicode-case-folding` package, generated from the Unicode Character Database), then NFKC again (folding can
 *   un-normalise). This is the Unicode toNFKC_Casefold idea without its removal of default-ignorable characters, which
 *   a username may not hold anyway. Two names with the same key are the same account: "Иван"/"ИВАН", "ｂｏｂ"/"bob",
 *   "Straße"/"STRASSE", "ﬃ"/"ffi". JavaScript's toLowerCase is not enough: it keeps "ß", "ﬃ" and final "ς".
 * - Skeleton (`usernameSkeleton`): the Unicode TR39 skeleton of the key: NFD, every character replaced by its prototype
 *   from the TR39 confusables table (the `unhomoglyph` package, which carries confusables.txt), NFD again. Two names
 *   with the same skeleton look alike ("ivan" with a Cyrillic "і", "paypal"/"𝔭𝒶ỿ𝕡𝕒ℓ", "rn"/"m"); a new account whose
 *   skeleton equals an existing account's is refused. TR39 also drops default-ignorable characters first; a username
 *   cannot contain any, so that step has nothing to do.
 */
import { caseFold } from 'unicode-case-folding';
import unhomoglyph from 'unhomoglyph';

/** Bounds of a username, in characters (code points) of its display form. */
export const USERNAME_MIN_LENGTH = 1;
export const USERNAME_MAX_LENGTH = 64;
/** The key of a few characters (ligatures, "ﷺ") expands under NFKC; the key is bounded too. */
const KEY_MAX_LENGTH = 4 * USERNAME_MAX_LENGTH;

// Letters, combining marks (needed by many scripts), digits, and _ . -; never a default-ignorable character
// (zero-width joiners and spaces, bidi controls, variation selectors, the Hangul filler), nor white space or controls.
const ALLOWED = /^[\p{L}\p{M}\p{N}_.-]+$/u;
const IGNORABLE = /\p{Default_Ignorable_Code_Point}/u;
const STARTS_WITH_MARK = /^\p{M}/u;

/** The display form of a typed username: surrounding white space removed, NFC. */
export function usernameDisplayForm(typed: string): string {
  return typed.trim().normalize('NFC');
}

/**
 * Why this display form (see usernameDisplayForm) is not a valid username, or null when it is. The rules: 1–64
 * characters; only letters, combining marks, digits, "_", "." and "-"; no default-ignorable character (zero-width,
 * bidi control, variation selector); not starting with a combining mark. White space (anywhere) and controls are
 * therefore excluded.
 */
export function usernameProblem(name: string): string | null {
  const length = [...name].length;
  if (length < USERNAME_MIN_LENGTH) return 'a username needs at least one character';
  if (length > USERNAME_MAX_LENGTH) return `a username has at most ${USERNAME_MAX_LENGTH} characters`;
  if (IGNORABLE.test(name)) return 'a username may not contain invisible characters (zero-width, bidi controls, variation selectors)';
  if (!ALLOWED.test(name)) return 'a username may contain only letters, combining marks, digits, "_", "." and "-" (no spaces, controls or symbols)';
  if (STARTS_WITH_MARK.test(name)) return 'a username may not start with a combining mark';
  if (usernameKey(name).length > KEY_MAX_LENGTH) return 'this username is too long once normalised (NFKC)';
  return null;
}

/** The comparison key: NFKC, full case folding, NFKC. Equal keys are the same username. */
export function usernameKey(name: string): string {
  return caseFold(name.normalize('NFKC')).normalize('NFKC');
}

/** The TR39 skeleton of the name's key. Equal skeletons are confusable usernames. */
export function usernameSkeleton(name: string): string {
  return unhomoglyph(usernameKey(name).normalize('NFD')).normalize('NFD');
}
