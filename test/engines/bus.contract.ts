import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Bus } from '../../src/bus/bus.js';
import { isParleyError } from '../../src/protocol/errors.js';

/**
 * The bus contract (the guarantees in src/bus/bus.ts), run against every engine. `createBusPair` returns two bus
 * instances standing for two server instances on one engine, and a `close` that releases both and whatever the
 * engine needs (connections, brokers). Only the `Bus` interface is used, so every engine runs the same suite.
 */
export interface BusPair {
  a: Bus;
  b: Bus;
  close(): Promise<void>;
  /**
   * For engines that can fail (a network engine): stop the engine (as a crash: its state is lost) and start it again
   * empty on the same address. The fault cases run only when given.
   */
  faults?: { stop(): Promise<void>; start(): Promise<void> };
}

/** How long a publish to an engine that is down may take to reject: "fail fast", with room for a busy machine. */
const FAIL_FAST_MS = 3_000;

interface Received {
  topic: string;
  /** The payload as text (UTF-8), for the cases that publish text. */
  payload: string;
  /** The payload's bytes, copied as received. */
  bytes: Buffer;
}

/** Time allowed for a payload to cross a real engine (Redis, NATS, Kafka), and a bounded poll interval. */
const DELIVERY_TIMEOUT_MS = 10_000;

function collect(bus: Bus): Received[] {
  const received: Received[] = [];
  bus.onMessage((topic, payload) => {
    received.push({ topic, payload: payload.toString(), bytes: Buffer.from(payload) });
  });
  return received;
}

/** What was received, as topic and text (for comparing with what text cases published). */
function asText(received: Received[]): Array<{ topic: string; payload: string }> {
  return received.map(({ topic, payload }) => ({ topic, payload }));
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = DELIVERY_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * An ordered barrier, to prove that something did NOT arrive without waiting for "long enough": `publisher` publishes
 * a unique marker on `topic` and this waits until every one of `receivers` has it. The bus orders payloads per topic
 * per publisher (src/bus/bus.ts), so anything `publisher` published on `topic` before the marker that reaches a
 * receiver at all (a duplicate, a payload for a topic it should not get) has reached it by then. Only payloads of
 * the same publisher and topic are covered: there is no order across topics or publishers. Returns the marker.
 */
let barrierCounter = 0;
async function barrier(publisher: Bus, topic: string, receivers: Array<Received[] | string[]>): Promise<string> {
  const marker = `barrier-${++barrierCounter}`;
  await publisher.publish(topic, Buffer.from(marker));
  await waitFor(`the barrier on ${topic}`, () =>
    receivers.every((r) => r.some((x) => (typeof x === 'string' ? x === marker : x.topic === topic && x.payload === marker))),
  );
  return marker;
}

const payloadsOn = (received: Received[], topic: string): string[] =>
  received.filter((r) => r.topic === topic).map((r) => r.payload);

/** Unique topic names per test so engines with shared state (one broker for the whole suite) do not interfere. */
let topicCounter = 0;
const freshTopic = (label: string): string =>
  `c.contract-${label}-${process.pid}-${Date.now().toString(36)}-${++topicCounter}`;

export function runBusContract(engineName: string, createBusPair: () => Promise<BusPair>): void {
  describe(`bus contract: ${engineName}`, () => {
    async function withPair(fn: (pair: BusPair, got: { a: Received[]; b: Received[] }) => Promise<void>) {
      const pair = await createBusPair();
      try {
        const got = { a: collect(pair.a), b: collect(pair.b) };
        await fn(pair, got);
      } finally {
        await pair.close();
      }
    }

    it('carries payloads as bytes, byte for byte: every byte value, invalid UTF-8 and a 64 KiB payload', async () => {
      await withPair(async ({ a, b }, received) => {
        const topic = freshTopic('bytes');
        const payloads = [
          Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
          Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80, 0x00]), // not UTF-8: a decode would change them
          Buffer.alloc(64 * 1024, 0x7b),
        ];
        await b.subscribe(topic);
        for (const payload of payloads) await a.publish(topic, payload);
        await waitFor('every payload at b', () => received.b.length >= payloads.length);
        assert.deepEqual(received.b.map((r) => r.bytes.toString('hex')), payloads.map((p) => p.toString('hex')));
      });
    });

    it('delivers to a subscriber on another instance what one instance publishes', async () => {
      await withPair(async ({ a, b }, got) => {
        const topic = freshTopic('cross');
        await b.subscribe(topic);
        await a.publish(topic, Buffer.from('{"hello":"b"}'));
        await waitFor('delivery to b', () => got.b.length >= 1);
        assert.deepEqual(asText(got.b), [{ topic, payload: '{"hello":"b"}' }]);
        const marker = await barrier(a, topic, [got.b]);
        assert.deepEqual(payloadsOn(got.b, topic), ['{"hello":"b"}', marker], 'delivered once');
        // a was not subscribed when it published. Subscribing now and passing a barrier through a: a wrongly delivered
        // copy of the first payload would have reached a before the marker (same topic, same publisher).
        await a.subscribe(topic);
        const marker2 = await barrier(a, topic, [got.a, got.b]);
        assert.deepEqual(asText(got.a), [{ topic, payload: marker2 }], 'a was not subscribed');
      });
    });

    it("includes the publisher's own subscription", async () => {
      await withPair(async ({ a, b }, got) => {
        const topic = freshTopic('self');
        await a.subscribe(topic);
        await b.subscribe(topic);
        await a.publish(topic, Buffer.from('p1'));
        await waitFor('delivery to a and b', () => got.a.length >= 1 && got.b.length >= 1);
        const marker = await barrier(a, topic, [got.a, got.b]);
        assert.deepEqual(payloadsOn(got.a, topic), ['p1', marker]);
        assert.deepEqual(payloadsOn(got.b, topic), ['p1', marker]);
      });
    });

    it('is interest-based: no delivery for topics the instance did not subscribe to', async () => {
      await withPair(async ({ a, b }, got) => {
        const wanted = freshTopic('wanted');
        const other = freshTopic('other');
        await b.subscribe(wanted);
        await a.subscribe(other); // someone is interested in `other`, just not b
        await a.publish(other, Buffer.from('not for b'));
        await a.publish(wanted, Buffer.from('for b'));
        await waitFor('delivery of the wanted topic', () => got.b.length >= 1 && got.a.length >= 1);
        // b subscribes to `other` only now, after 'not for b' was published: a wrong delivery of it to b would arrive
        // before the marker a publishes on `other` next (same topic, same publisher).
        await b.subscribe(other);
        const marker = await barrier(a, other, [got.a, got.b]);
        assert.deepEqual(asText(got.b), [
          { topic: wanted, payload: 'for b' },
          { topic: other, payload: marker },
        ]);
        assert.deepEqual(asText(got.a), [
          { topic: other, payload: 'not for b' },
          { topic: other, payload: marker },
        ]);
      });
    });

    it('treats subscribe as idempotent: one delivery per payload', async () => {
      await withPair(async ({ a, b }, got) => {
        const topic = freshTopic('idem');
        await b.subscribe(topic);
        await b.subscribe(topic);
        await a.publish(topic, Buffer.from('once'));
        await waitFor('delivery', () => got.b.length >= 1);
        const marker = await barrier(a, topic, [got.b]);
        assert.deepEqual(payloadsOn(got.b, topic), ['once', marker]);
      });
    });

    it('keeps order per topic per publisher over 1,000 payloads (published without awaiting each)', async () => {
      await withPair(async ({ a, b }, got) => {
        const t1 = freshTopic('order1');
        const t2 = freshTopic('order2');
        for (const bus of [a, b]) {
          await bus.subscribe(t1);
          await bus.subscribe(t2);
        }
        const expected1: string[] = [];
        const expected2: string[] = [];
        const publishes: Promise<void>[] = [];
        for (let i = 0; i < 1_000; i++) {
          const topic = i % 3 === 0 ? t2 : t1; // interleave two topics
          const payload = `{"n":${i}}`;
          (topic === t1 ? expected1 : expected2).push(payload);
          publishes.push(a.publish(topic, Buffer.from(payload)));
        }
        await Promise.all(publishes);
        await waitFor('all 1,000 payloads at both instances', () => got.a.length >= 1_000 && got.b.length >= 1_000);
        for (const [name, received] of [['a (publisher)', got.a], ['b', got.b]] as const) {
          assert.deepEqual(payloadsOn(received, t1), expected1, `${name}: order on topic 1`);
          assert.deepEqual(payloadsOn(received, t2), expected2, `${name}: order on topic 2`);
        }
      });
    });

    it('keeps order when a handler publishes while handling a payload', async () => {
      const pair = await createBusPair();
      try {
        const topic = freshTopic('reentrant');
        const gotB: string[] = [];
        pair.a.onMessage((t, payload) => {
          // The gateway may publish from inside a bus handler; what it publishes must queue behind what it handles.
          if (t === topic && payload.toString() === 'm1') void pair.a.publish(topic, Buffer.from('m2'));
        });
        pair.b.onMessage((t, payload) => {
          if (t === topic) gotB.push(payload.toString());
        });
        await pair.a.subscribe(topic);
        await pair.b.subscribe(topic);
        await pair.a.publish(topic, Buffer.from('m1'));
        await waitFor('m1 and m2 at b', () => gotB.length >= 2);
        // m2 reached b, so a published it before the marker: a duplicate of m1 or m2 would arrive before the marker.
        const marker = await barrier(pair.a, topic, [gotB]);
        assert.deepEqual(gotB, ['m1', 'm2', marker]);
      } finally {
        await pair.close();
      }
    });

    it('stops delivery after unsubscribe', async () => {
      await withPair(async ({ a, b }, got) => {
        const topic = freshTopic('unsub');
        await a.subscribe(topic);
        await b.subscribe(topic);
        await a.publish(topic, Buffer.from('before'));
        await waitFor('first payload at b', () => got.b.length >= 1);
        await b.unsubscribe(topic);
        await a.publish(topic, Buffer.from('after'));
        await waitFor('second payload at a (proves it was published)', () => got.a.length >= 2);
        // b subscribes again only to let a barrier reach it: had 'after' wrongly been delivered to b, it would have
        // arrived before the marker (same topic, same publisher).
        await b.subscribe(topic);
        const marker = await barrier(a, topic, [got.a, got.b]);
        assert.deepEqual(payloadsOn(got.b, topic), ['before', marker]);
        assert.deepEqual(payloadsOn(got.a, topic), ['before', 'after', marker]);
        // Unsubscribing a topic that is not subscribed is harmless.
        await b.unsubscribe(topic);
        await b.unsubscribe(topic);
        await b.unsubscribe(freshTopic('never'));
      });
    });

    it('carries payload bytes unchanged', async () => {
      await withPair(async ({ a, b }, got) => {
        const topic = freshTopic('bytes');
        await b.subscribe(topic);
        let big = '';
        const chunk = 'é|"\'\\ 🙂 汉字 \u00a0\u200b ';
        while (big.length < 64 * 1024) big += chunk;
        big = big.slice(0, 64 * 1024 - 2) + '|"'; // 64 Ki UTF-16 units, more than 64 KiB of UTF-8
        const payloads = [
          '{"text":"a|b|c","q":"\\"quoted\\"","single":"it\'s"}',
          'plain|pipes||and "double" and \'single\' quotes',
          '{"emoji":"👋🏽👨‍👩‍👧","cjk":"你好","rtl":"שלום","combining":"e\u0301"}',
          'line one\nline two\r\n\ttabbed \\ backslash',
          '  leading and trailing spaces  ',
          big,
        ];
        for (const payload of payloads) await a.publish(topic, Buffer.from(payload));
        await waitFor('all payloads', () => got.b.length >= payloads.length);
        assert.equal(got.b.length, payloads.length);
        got.b.forEach((r, i) => {
          assert.equal(r.topic, topic);
          assert.equal(r.payload.length, payloads[i]!.length, `payload ${i}: length`);
          assert.ok(r.payload === payloads[i], `payload ${i}: content`);
        });
        assert.ok(Buffer.byteLength(big) > 64 * 1024);
      });
    });

    it('carries topics named with every character of the id alphabet', async () => {
      await withPair(async ({ a, b }, got) => {
        // Every character an id may hold (src/protocol/ids.ts), including the glob characters of no pattern: a topic
        // is a name, never a pattern.
        const id = `ABCXYZabcxyz0189._~:@+|=-${process.pid}-${++topicCounter}`;
        const topics = [`c.${id}`, `u.${id}`, `p.${id}`, `c.${id}*`, `c.${id}?`, `c.${id}[x]`];
        for (const topic of topics) await b.subscribe(topic);
        for (const topic of topics) await a.publish(topic, Buffer.from(`for ${topic}`));
        await waitFor('one payload per topic', () => got.b.length >= topics.length);
        const marker = await barrier(a, topics[0]!, [got.b]);
        assert.deepEqual(
          asText(got.b),
          [...topics.map((topic) => ({ topic, payload: `for ${topic}` })), { topic: topics[0]!, payload: marker }],
          'each payload once, on its own topic only',
        );
      });
    });

    it('applies subscribe and unsubscribe calls made together in call order (the last call for a topic wins)', async () => {
      await withPair(async ({ a, b }, got) => {
        const topics = Array.from({ length: 120 }, (_, i) => freshTopic(`batch${i}`));
        // One turn of calls, none awaited before the next, as the gateway makes them for a user's conversations.
        const calls: Promise<void>[] = [];
        for (const topic of topics) calls.push(b.subscribe(topic));
        topics.forEach((topic, i) => { if (i % 2 === 0) calls.push(b.unsubscribe(topic)); });
        topics.forEach((topic, i) => { if (i % 4 === 0) calls.push(b.subscribe(topic)); });
        await Promise.all(calls);
        const expected = topics.filter((_, i) => i % 2 === 1 || i % 4 === 0);
        for (const topic of topics) await a.publish(topic, Buffer.from(`on ${topic}`));
        await waitFor('the wanted topics', () => got.b.length >= expected.length);
        // b now subscribes to every topic: a payload wrongly delivered to an unwanted topic would arrive before the
        // marker a publishes on that topic next (same topic, same publisher).
        await Promise.all(topics.map((topic) => b.subscribe(topic)));
        const markers = new Set<string>();
        for (const topic of topics) markers.add(await barrier(a, topic, [got.b]));
        assert.deepEqual(
          got.b.filter((r) => !markers.has(r.payload)).map((r) => r.topic).sort(),
          [...expected].sort(),
          'exactly the topics whose last call was subscribe',
        );
      });
    });

    it('keeps each publisher\'s order when both instances publish on one topic at once', async () => {
      await withPair(async ({ a, b }, got) => {
        const topic = freshTopic('two-publishers');
        await a.subscribe(topic);
        await b.subscribe(topic);
        const publishes: Promise<void>[] = [];
        for (let i = 0; i < 300; i++) {
          publishes.push(a.publish(topic, Buffer.from(`a${i}`)));
          publishes.push(b.publish(topic, Buffer.from(`b${i}`)));
        }
        await Promise.all(publishes);
        await waitFor('600 payloads at both instances', () => got.a.length >= 600 && got.b.length >= 600);
        const inOrder = Array.from({ length: 300 }, (_, i) => i);
        for (const [name, received] of [['a', got.a], ['b', got.b]] as const) {
          const payloads = payloadsOn(received, topic);
          assert.equal(payloads.length, 600, `${name}: each payload once`);
          assert.deepEqual(payloads.filter((p) => p.startsWith('a')), inOrder.map((i) => `a${i}`), `${name}: a's order`);
          assert.deepEqual(payloads.filter((p) => p.startsWith('b')), inOrder.map((i) => `b${i}`), `${name}: b's order`);
        }
      });
    });

    it('survives an engine restart: publish fails fast while it is down, then subscriptions are restored and onReset fires', async (t) => {
      const pair = await createBusPair();
      if (!pair.faults) {
        await pair.close();
        t.skip(`${engineName} cannot fail (an in-process engine)`);
        return;
      }
      const faults = pair.faults;
      try {
        const got = { a: collect(pair.a), b: collect(pair.b) };
        const resets = { a: 0, b: 0 };
        pair.a.onReset(() => resets.a++);
        pair.b.onReset(() => resets.b++);
        const topic = freshTopic('restart');
        const other = freshTopic('restart-other');
        await pair.b.subscribe(topic);
        await pair.b.subscribe(other);
        await pair.a.subscribe(topic);
        await pair.a.publish(topic, Buffer.from('before'));
        await waitFor('the first payload', () => got.b.length >= 1 && got.a.length >= 1);

        await faults.stop();
        // Publishing while the engine is down: a retryable UNAVAILABLE, promptly, never a hang. The first attempt may
        // race the client noticing the drop; every attempt must settle within the fail-fast bound.
        const deadline = Date.now() + 10_000;
        let refused: unknown = null;
        while (refused === null) {
          const started = Date.now();
          refused = await pair.a.publish(topic, Buffer.from('while down')).then(() => null, (err: unknown) => err);
          assert.ok(Date.now() - started < FAIL_FAST_MS, `publish settled in ${Date.now() - started} ms`);
          if (refused === null) {
            assert.ok(Date.now() < deadline, 'publish kept succeeding with the engine down');
            await new Promise((r) => setTimeout(r, 20));
          }
        }
        assert.ok(isParleyError(refused) && refused.code === 'UNAVAILABLE' && refused.temporary, `refused with ${String(refused)}`);
        await assert.rejects(pair.b.ping(), (err: unknown) => isParleyError(err) && err.code === 'UNAVAILABLE', 'ping fails while down');
        // b drops one interest while the engine is down: it must not come back with the others.
        await pair.b.unsubscribe(other);

        await faults.start();
        await waitFor('onReset at both instances', () => resets.a >= 1 && resets.b >= 1, 20_000);
        // Each instance answers ping again once all of its connections are back (the publishing one may come back a
        // moment after the subscriptions were restored).
        let pinged = false;
        const pingBoth = () => Promise.all([pair.a.ping(), pair.b.ping()]).then(() => (pinged = true), () => undefined);
        await pingBoth();
        const pingDeadline = Date.now() + 20_000;
        while (!pinged) {
          assert.ok(Date.now() < pingDeadline, 'ping did not succeed within 20 s of the restart');
          await new Promise((r) => setTimeout(r, 20));
          await pingBoth();
        }
        // Subscriptions were restored before onReset: a payload published now arrives, with no resubscribe call.
        await pair.a.publish(topic, Buffer.from('after'));
        await waitFor('the payload published after the restart', () => payloadsOn(got.b, topic).includes('after') && payloadsOn(got.a, topic).includes('after'), 20_000);
        await pair.a.publish(other, Buffer.from('not wanted any more'));
        await pair.b.subscribe(other);
        const marker = await barrier(pair.a, other, [got.b]);
        assert.deepEqual(payloadsOn(got.b, other), [marker], 'the topic dropped while down was not restored');
        assert.deepEqual(payloadsOn(got.b, topic), ['before', 'after'], 'nothing published while down, nothing twice');
      } finally {
        await pair.close();
      }
    });

    it('answers ping', async () => {
      await withPair(async ({ a, b }) => {
        await a.ping();
        await b.ping();
      });
    });
  });
}
