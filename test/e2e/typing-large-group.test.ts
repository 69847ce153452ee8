import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RawClient } from '../helpers/raw-client.js';
import { register, startServer, type TestServer } from '../helpers/server.js';

/**
 * Typing in large groups: N members typing at once must not send N indicators to every member (the square of the
 * group's size, 978 indicators to each of 3,000 members in an outside test). Groups above typing.largeGroupSize get
 * a group-wide budget of starts; smaller groups and direct conversations keep every indicator.
 */
describe('typing in a group larger than typing.largeGroupSize', () => {
  let server: TestServer;
  const clients: RawClient[] = [];
  before(async () => {
    server = await startServer({
      PARLEY_TYPING_LARGE_GROUP_SIZE: '3',
      // A budget of one start for the whole test: the count below is exact, whatever the machine's speed.
      PARLEY_TYPING_LARGE_GROUP_PER_SECOND: '0.001',
      PARLEY_TYPING_TTL_MS: '300',
    });
  });
  after(async () => {
    for (const client of clients) client.close();
    await server.stop();
  });

  async function group(prefix: string, size: number): Promise<{ members: RawClient[]; conversationId: string }> {
    const users = await Promise.all(Array.from({ length: size }, (_, i) => register(server, `${prefix}-${i}`)));
    const members = await Promise.all(users.map((u) => RawClient.connect(server.wsUrl, u.token)));
    clients.push(...members);
    const conversationId = (await members[0]!.ok('conversation.create', { name: prefix })).conversation.id;
    for (const m of members.slice(1)) await m.ok('conversation.join', { conversationId });
    return { members, conversationId };
  }

  /** Typing events of the conversation the observer has, after a message from `sender` arrived behind them. */
  async function typingSeen(observer: RawClient, sender: RawClient, conversationId: string, key: string): Promise<any[]> {
    const sent = await sender.ok('message.send', { conversationId, key, text: 'barrier' });
    await observer.waitFor('message.new', (m) => m.id === sent.id, 5000);
    return observer.eventsOf('typing').filter((d: any) => d.conversationId === conversationId);
  }

  it('forwards the group-wide budget of starts, and no stop for a start it did not forward', async () => {
    const { members, conversationId } = await group('typing-large', 6);
    const [observer, ...typers] = members;
    await Promise.all(typers.map((t) => t.ok('typing', { conversationId, typing: true })));
    const starts = (await typingSeen(observer!, typers[0]!, conversationId, 'after-starts')).filter((d) => d.typing);
    assert.equal(starts.length, 1, 'one start of five, the budget');
    // Every typer stops (or its message ended it): a stop goes out only for the one start that was forwarded.
    await Promise.all(typers.map((t) => t.ok('typing', { conversationId, typing: false })));
    const seen = await typingSeen(observer!, typers[1]!, conversationId, 'after-stops');
    const stops = seen.filter((d) => !d.typing);
    assert.ok(stops.length <= 1, `${stops.length} stops`);
    for (const stop of stops) assert.equal(stop.userId, starts[0].userId, 'only the forwarded start is stopped');
  });

  it('forwards every start in a group at the size limit', async () => {
    const { members, conversationId } = await group('typing-small', 3);
    const [observer, ...typers] = members;
    await Promise.all(typers.map((t) => t.ok('typing', { conversationId, typing: true })));
    const starts = (await typingSeen(observer!, typers[0]!, conversationId, 'after-starts')).filter((d) => d.typing);
    assert.equal(starts.length, 2);
  });
});
