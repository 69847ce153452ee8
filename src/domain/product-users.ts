import { z } from 'zod';
import { displayNameSchema } from '../protocol/display-names.js';
import { ParleyError } from '../protocol/errors.js';
import { isValidId } from '../protocol/ids.js';
import type { Store, UserRecord } from '../store/store.js';

/** Largest serialised metadata of a product user, in UTF-8 bytes of its JSON. */
export const MAX_USER_METADATA_BYTES = 4096;

/** The body of `PUT /api/v1/admin/users/{userId}` (and of `parley user upsert`). */
export const productUserSchema = z.object({
  name: displayNameSchema,
  /** Any JSON value; null clears it, absent keeps what is stored. */
  metadata: z.unknown().optional(),
}).strict();

export type ProductUserInput = z.output<typeof productUserSchema>;

/**
 * Create or update a user of the integrating product before (or after) their first connection, so others can message
 * them at once. Never touches a built-in account: CONFLICT if the id is one. Errors: INVALID_REQUEST (id),
 * MESSAGE_TOO_LARGE (metadata over MAX_USER_METADATA_BYTES).
 */
export async function upsertProductUser(
  store: Store, id: string, input: ProductUserInput, now: number,
): Promise<{ user: UserRecord; created: boolean }> {
  if (!isValidId(id)) throw new ParleyError('INVALID_REQUEST', 'a user id has 1 to 128 characters of the id alphabet (A-Z a-z 0-9 . _ ~ - : @ + | =)');
  if (input.metadata !== undefined && input.metadata !== null) {
    const bytes = Buffer.byteLength(JSON.stringify(input.metadata) ?? '', 'utf8');
    if (bytes > MAX_USER_METADATA_BYTES) throw new ParleyError('MESSAGE_TOO_LARGE', `user metadata is ${bytes} bytes; the limit is ${MAX_USER_METADATA_BYTES}`);
  }
  return store.upsertProductUser({ id, name: input.name, metadata: input.metadata, now });
}
