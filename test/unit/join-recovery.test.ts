import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JOIN_RECOVERY_LIMIT, JoinRecovery, type JoinRecoveryDeps } from '../../src/gateway/join-recovery.js';
import type { Message } from '../../src/protocol/types.js';

const message = (seq: number): Message => ({ id: `m${seq}`, conversationId: 'c1', seq, senderId: 'u1', text: `t${seq}`, createdAt: seq });
const frameOf = (m: Message): Buffer => Buffer.from(JSON.stringify({ event: 'message.new', data: m }));
const payloadOf = (m: Message): Buffer => Buffer.from(`payload:${m.seq}`);

/** A recovery whose store read is answered by hand, recording what it sends. */
function harness(now = () => 0) {
  const sent: string[] = [];
  let answer!: (messages: Message[]) => void;
  let fail!: (err: Error) => void;
  const deps: JoinRecoveryDeps = {
    readAfter: () => new Promise((resolve, reject) => ((answer = resolve), (fail = reject))),
    sendMessages: (_id, messages) => sent.push(...messages.map((m) => `recovered:${m.seq}`)),
    askResync: () => sent.push('resync'),
    redeliver: (_id, payload) => {
      const seq = Number(payload.toString().slice('payload:'.length));
      if (recovery.admit('c1', payload, frameOf(message(seq))) === 'deliver') sent.push(`live:${seq}`);
    },
    onError: () => {},
  };
  const recovery = new JoinRecovery(deps, now);
  const live = (seq: number): void => {
    const verdict = recovery.admit('c1', payloadOf(message(seq)), frameOf(message(seq)));
    if (verdict === 'deliver') sent.push(`live:${seq}`);
  };
  return { recovery, sent, live, answer: (m: Message[]) => answer(m), fail: (e: Error) => fail(e) };
}

describe('join recovery', () => {
  it('holds live events while reading, sends the stored ones, then the held ones without their copies', async () => {
    const h = harness();
    const done = h.recovery.recover('c1', 0, Promise.resolve());
    await new Promise((r) => setImmediate(r));
    h.live(2); // committed before the read, published while it runs
    h.live(3); // committed after the read
    h.answer([message(1), message(2)]);
    await done;
    h.live(2); // a late copy of a recovered message
    h.live(4);
    assert.deepEqual(h.sent, ['recovered:1', 'recovered:2', 'live:3', 'live:4']);
    assert.equal(h.recovery.active, true, 'still filtering copies for a while');
  });

  it('asks for a resync when the read fails, and still delivers what it held', async () => {
    const h = harness();
    const done = h.recovery.recover('c1', 5, Promise.resolve());
    await new Promise((r) => setImmediate(r));
    h.live(6);
    h.fail(new Error('store down'));
    await done;
    assert.deepEqual(h.sent, ['resync', 'live:6']);
    assert.equal(h.recovery.active, false);
  });

  it('asks for a resync when the read is cut at its limit', async () => {
    const h = harness();
    const done = h.recovery.recover('c1', 0, Promise.resolve());
    await new Promise((r) => setImmediate(r));
    h.answer(Array.from({ length: JOIN_RECOVERY_LIMIT }, (_, i) => message(i + 1)));
    await done;
    assert.equal(h.sent.at(-1), 'resync');
    assert.equal(h.sent.length, JOIN_RECOVERY_LIMIT + 1);
  });

  it('stops looking at live events once the filter window is over', async () => {
    let clock = 0;
    const h = harness(() => clock);
    const done = h.recovery.recover('c1', 0, Promise.resolve());
    await new Promise((r) => setImmediate(r));
    h.answer([message(1)]);
    await done;
    clock = 60_000;
    h.live(1); // past the window: delivered (a client drops it by seq), and the filter is gone
    assert.deepEqual(h.sent, ['recovered:1', 'live:1']);
    assert.equal(h.recovery.active, false);
  });
});
