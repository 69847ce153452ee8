/**
 * The id alphabet. Every id a client or a token can give the server — a user id (a token's `sub`), a conversation id,
 * a member's user id — is 1 to 128 characters, each one of
 *
 *     A–Z  a–z  0–9  .  _  ~  -  :  @  +  |  =
 *
 * Why these: they cover UUIDs and other hex or base64url ids (`-`, `_`, `=` padding), e-mail addresses as ids
 * (`ann.lee+chat@example.com`), and the subjects of common identity providers (Auth0's `auth0|5f7c…` and
 * `google-oauth2|1043…`, namespaced ids such as `tenant:42`, Firebase, Cognito, Okta and Entra ids). What is left
 * out cannot be mistaken for structure anywhere an id travels: no whitespace or control characters (log lines, the
 * bus envelope), no `/ ? # % &` (URL paths and queries), no `,` (the comma-separated `userIds` of REST presence), no
 * quotes or backslashes. `+ | = @ :` are percent-encoded by a client that puts an id in a URL query.
 *
 * An id may not be `.` or `..`: in a URL path those segments mean "this" and "parent", and clients resolve them before
 * sending, so a REST route could never name such a user.
 *
 * The server refuses a token whose `sub` is outside this alphabet (close 4500, REST 401) and a request whose id field
 * is outside it (INVALID_REQUEST). Ids the server makes itself (UUIDs) are inside it.
 */
export const MAX_ID_LENGTH = 128;
export const ID_PATTERN = /^(?!\.\.?$)[A-Za-z0-9._~:@+|=-]{1,128}$/;

/** Whether `value` is an id of the alphabet above. */
export function isValidId(value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value);
}
