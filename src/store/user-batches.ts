/**
 * Rows of a batched per-user query (`user_id`, `conversation_id`, ordered by user), as one list per requested user in
 * the order asked, an empty list for a user without rows. Shared by the engines' `listPresenceConversations`.
 */
export function groupByUser(userIds: readonly string[], rows: ReadonlyArray<{ user_id: string; conversation_id: string }>): string[][] {
  const byUser = new Map<string, string[]>();
  for (const row of rows) {
    let list = byUser.get(row.user_id);
    if (!list) byUser.set(row.user_id, (list = []));
    list.push(row.conversation_id);
  }
  return userIds.map((id) => byUser.get(id) ?? []);
}
