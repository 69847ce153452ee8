import { caseFold } from 'unicode-case-folding';

/**
 * The form group names and search queries are compared in, by every store engine: NFKC (so compatibility forms such
 * as full-width letters and ligatures match their plain letters), full Unicode case folding (the CaseFolding.txt
 * mapping usernames use too: "ß" and "ẞ" match "ss", final "ς" matches "σ", "Москва" matches "москва"), and without
 * diacritics (combining marks are removed after decomposition: "jose" finds "José", "istanbul" finds "İstanbul",
 * whose folding leaves a combining dot). U+0000 is dropped: full-text engines end a query string there.
 */
export function foldForSearch(text: string): string {
  return caseFold(text.normalize('NFKC')).normalize('NFD').replace(/\p{M}/gu, '').normalize('NFKC').replaceAll('\0', '');
}

/**
 * What folded names depend on: the version of foldForSearch (bump FOLD_VERSION whenever its result can change) and the
 * Unicode version of the running Node's tables (NFKC and case folding change with it). A store keeps names folded
 * under one signature and refolds them when it starts under another.
 */
const FOLD_VERSION = 1;
export const searchFoldSignature = (): string => `${FOLD_VERSION}/unicode-${process.versions.unicode}`;

/** Queries shorter than this (in code points, after folding) match the beginning of names, longer ones anywhere. */
export const SUBSTRING_QUERY_MIN = 3;

/**
 * The most groups one search considers before ordering them by name (or the page size, if larger): bounds the work of
 * a query that matches very many groups to reading and sorting this many rows.
 */
export const SEARCH_CANDIDATES = 200;
