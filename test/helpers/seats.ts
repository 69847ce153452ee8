import { randomUUID } from 'node:crypto';
import { RawClient } from './raw-client.js';
import { register, type TestServer } from './server.js';

export interface User {
  id: string;
  name: string;
  token: string;
}

/** A registered user with one open connection. */
export interface Seat {
  user: User;
  client: RawClient;
}

/**
 * Fresh users and connections for one test file's server: names unique to the run (so tests never share state by
 * accident), every connection closed at the end.
 */
export class Seats {
  private readonly clients: RawClient[] = [];
  private counter = 0;

  constructor(private readonly server: () => TestServer, private readonly prefix: string) {}

  user(label: string): Promise<User> {
    return register(this.server(), `${this.prefix}-${label}-${++this.counter}-${randomUUID().slice(0, 6)}`);
  }

  async connect(user: User): Promise<RawClient> {
    const client = await RawClient.connect(this.server().wsUrl, user.token);
    this.clients.push(client);
    return client;
  }

  async seat(label: string): Promise<Seat> {
    const user = await this.user(label);
    return { user, client: await this.connect(user) };
  }

  /** A public group created by `owner` that each of `others` joined; returns its id. */
  async publicGroup(owner: Seat, others: Seat[]): Promise<string> {
    const { conversation } = await owner.client.ok('conversation.create', { name: `${this.prefix} ${randomUUID().slice(0, 8)}` });
    for (const other of others) await other.client.ok('conversation.join', { conversationId: conversation.id });
    return conversation.id;
  }

  closeAll(): void {
    for (const client of this.clients.splice(0)) client.close();
  }
}

/** A round trip on a connection: every frame the server queued for it before the reply has arrived after this. */
export const settle = (client: RawClient): Promise<unknown> => client.ok('ping');
