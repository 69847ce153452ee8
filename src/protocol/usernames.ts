/**
 * Usernames of built-in accounts: what one may contain, and how two are compared.
 *
 * - Display form: what the user typed, trimmed of surrounding white space and put in NFC. Shown as is.
 * - Key (`usernameKey`): NFKC, then full Unicode case folding (CaseFolding.txt statuses C and F, via the
 *   `unicode-case-folding` package, generated from the Unicode Character Database), then NFKC again (folding can
 *   un-normalise). This is the Unicode toNFKC_Casefold idea without its removal of default-ignorable characters, which
 *   a username may not hold anyway. Two names with the same key are the same account: "Иван"/"ИВАН", "ｂｏｂ"/"bob",
 *   "Straße"/"STRASSE", "ﬃ"/"ffi". JavaScript's toLowerCase is not enough: it keeps "ß", "ﬃ" and final "ς".
 * - Skeleton (`usernameSkeleton`): what the name looks like, in any case. The Unicode TR39 skeleton (NFD, every
 *   character replaced by its prototype from the TR39 confusables table, carried by the `unhomoglyph` package, NFD
 *   again) of the name AS SHOWN, then NFKC and the skeleton again (compatibility forms such as full-width letters join
 *   their plain ones; NFKC first would turn the lunate "Ϲ" into "Σ" and lose its look), then full case folding, then
 *   the TR39 skeleton again, then without the combining marks that do not tell names apart (below). Skeletons before
 *   folding see the shown letters before folding could erase a look-alike ("I"/"l", "0"/"O", Cyrillic "В"/"B", Greek "Κ"/"K"); folding makes the comparison
 *   case-insensitive; the second skeleton maps what folding produced. One local addition to the table: Cyrillic small
 *   palochka "ӏ" (U+04CF) → "l", as its capital "Ӏ" already is (the table maps it to "i", whose dot it lacks).
 *   Combining marks: diacritics do not make a name distinct ("José" looks like "Jose", "i̇van" like "ivan"), so a
 *   mark is dropped unless it belongs to the same script as the letter it sits on and that script is not one of the
 *   Latin look-alike scripts below (Devanagari vowel signs, Thai tone marks and the like still tell names apart; a
 *   Kannada nukta or Khitan filler on a Latin letter does not). Two names with the same skeleton look alike ("ivan"
 *   with a Cyrillic "і", "paypal"/"paypaI"/"𝔭𝒶ỿ𝕡𝕒ℓ", "rn"/"m", "BOB"/"ВОВ"); a new account whose skeleton equals an
 *   existing account's is refused. TR39 also drops default-ignorable characters first; a username cannot contain any.
 *   Skeletons of the shown name differ between spellings of one key ("MARIA" has a capital I, "maria" does not), so a
 *   second skeleton, of the key (`usernameFoldedSkeleton`), is compared too: either one equal is a look-alike.
 * - Scripts (`usernameScriptProblem`, a simplified UTS #39 restriction level): the letters of one username may not
 *   mix two of Latin, Cyrillic, Greek, Armenian and Cherokee, scripts whose letters pass for each other's. Any script
 *   may still mix with digits, "_.-" and with other scripts (Latin with Han, Hiragana, Katakana, Hangul, Devanagari…).
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

/**
 * What the name looks like, for comparison (see the file comment): skeleton(fold(skeleton(NFKC(skeleton(name))))) without the
 * combining marks that do not tell names apart. Equal skeletons are confusable usernames.
 */
export function usernameSkeleton(name: string): string {
  const shown = tr39Skeleton(tr39Skeleton(name).normalize('NFKC'));
  return withoutLookAlikeMarks(tr39Skeleton(caseFold(shown)));
}

/**
 * The skeleton of the name's key (the same marks dropped): equal for every spelling of one account ("MARIA" and
 * "maria"), where usernameSkeleton, taken of the shown letters, differs ("MARIA" shows a capital I, which passes for
 * "l"). A new name is confusable when either skeleton equals an existing account's: "mari̇a" (i + U+0307) is not
 * "maria"'s key, and looks like "MARIA" only once both are lower case.
 */
export function usernameFoldedSkeleton(name: string): string {
  return withoutLookAlikeMarks(tr39Skeleton(usernameKey(name)));
}

/** Local additions to the TR39 table (documented above): prototypes applied before it. */
const EXTRA_PROTOTYPES: Readonly<Record<string, string>> = { '\u04CF': 'l' };
const EXTRA_SOURCES = new RegExp(`[${Object.keys(EXTRA_PROTOTYPES).join('')}]`, 'gu');

function tr39Skeleton(text: string): string {
  const nfd = text.normalize('NFD').replace(EXTRA_SOURCES, (c) => EXTRA_PROTOTYPES[c] ?? c);
  return unhomoglyph(nfd).normalize('NFD');
}

/** Scripts whose letters pass for Latin ones: a username mixes at most one of them, and their marks never count. */
const LOOK_ALIKE_SCRIPTS = ['Latin', 'Cyrillic', 'Greek', 'Armenian', 'Cherokee'].map((name) => ({ name, letter: new RegExp(`\\p{Script=${name}}`, 'u') }));

/**
 * Scripts that spell with their own combining marks (vowel signs, viramas, tone marks). A mark of one of these on a
 * letter of the same script (Script_Extensions) tells names apart; any other mark is a diacritic or a stray.
 */
const MARK_SCRIPTS = [
  'Devanagari', 'Bengali', 'Gurmukhi', 'Gujarati', 'Oriya', 'Tamil', 'Telugu', 'Kannada', 'Malayalam', 'Sinhala',
  'Thai', 'Lao', 'Tibetan', 'Myanmar', 'Khmer', 'Mongolian', 'Hebrew', 'Arabic', 'Syriac', 'Thaana', 'Nko', 'Samaritan',
  'Mandaic', 'Tai_Tham', 'Tai_Viet', 'Tai_Le', 'Balinese', 'Javanese', 'Sundanese', 'Batak', 'Buginese', 'Lepcha',
  'Limbu', 'Tagalog', 'Hanunoo', 'Buhid', 'Tagbanwa', 'Cham', 'Kayah_Li', 'Rejang', 'Saurashtra', 'Meetei_Mayek',
  'Ahom', 'Chakma', 'Sharada', 'Takri', 'Tirhuta', 'Siddham', 'Modi', 'Khojki', 'Khudawadi', 'Grantha', 'Newa',
  'Brahmi', 'Kaithi', 'Sora_Sompeng', 'Mahajani', 'Dogra', 'Bhaiksuki', 'Marchen', 'Zanabazar_Square', 'Soyombo',
  'Hangul', 'Han', 'Hiragana', 'Katakana', 'Ethiopic', 'Adlam', 'Ol_Chiki', 'Tifinagh', 'Coptic', 'Glagolitic',
].map((name) => new RegExp(`\\p{Script_Extensions=${name}}`, 'u'));

const MARK = /\p{M}/u;

/** The skeleton without marks that do not tell names apart (see the file comment). */
function withoutLookAlikeMarks(skeleton: string): string {
  let out = '';
  let base = '';
  for (const c of skeleton) {
    if (!MARK.test(c)) {
      base = c;
      out += c;
    } else if (MARK_SCRIPTS.some((script) => script.test(c) && script.test(base))) {
      out += c;
    }
  }
  return out;
}

/**
 * Why the name's letters mix scripts that pass for each other (Latin, Cyrillic, Greek, Armenian, Cherokee), or null.
 * A simplified UTS #39 restriction level: "Highly Restrictive" without its list of allowed combinations; digits,
 * punctuation and all other scripts are free to mix.
 */
export function usernameScriptProblem(name: string): string | null {
  const found = LOOK_ALIKE_SCRIPTS.filter(({ letter }) => letter.test(name)).map(({ name: script }) => script);
  if (found.length < 2) return null;
  return `a username may not mix letters of ${found.join(', ')} (Latin, Cyrillic, Greek, Armenian and Cherokee letters look alike); use one of these scripts`;
}
