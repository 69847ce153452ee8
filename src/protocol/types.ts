import type { Change } from '@parley/protocol';

/** The shapes on the wire are shared with clients (the @parley/protocol package); the server adds its stored forms. */
export type {
  Ban, Change, Conversation, ConversationKind, ConversationPosition, Invite, Member, Message, MyConversation, PresenceInfo,
  Role, UserInfo, Visibility,
} from '@parley/protocol';

/** A message as the store keeps it: every field present (the server turns it into a Message before sending). */
export interface StoredMessage {
  id: string;
  conversationId: string;
  seq: number;
  senderId: string;
  text: string;
  meta: unknown | null;
  /** The sender's idempotency key. */
  key: string;
  createdAt: number;
  editedAt: number | null;
  deleted: boolean;
}

/** A change as the store reads it (the message in its stored form). */
export type StoredChange = Change<StoredMessage>;
