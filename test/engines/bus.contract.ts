import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Bus } from '../../src/bus/bus.js';

/**
 * The bus contract (the guarantees in src/bus/bus.ts), run against every engine. `createBusPair` returns two bus
 * instances standing for two server instances on one engine, and a `close` that releases both and whatever the
 * engine needs (connections, brokers). Only the `Bus` interface is used, so every engine runs the same suite.
 */
export interface BusPair {
  a: Bus;
  b: Bus;
  close(): Promise<void>;
}

interface Received {
  topic: string;
  payload: string;
}

/** Time allowed for a payload to cross a real engine (Redis, NATS, Kafka), and a bounded poll interval. */
const DELIVERY_TIMEOUT_MS = 10_000;

function collect(bus: Bus): Received[] {
  const received: Received[] = [];
  bus.onMessage((topic, payload) => {
    received.push({ topic, payload });
  });
  return received;
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
  await publisher.publish(topic, marker);
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

    it('delivers to a subscriber on another instance what one instance publishes', async () => {
      await withPair(async ({ a, b }, got) => {
        const topic = freshTopic('cross');
        await b.subscribe(topic);
        await a.publish(topic, '{"hello":"b"}');
        await waitFor('delivery to b', () => got.b.length >= 1);
        assert.deepEqual(got.b, [{ topic, payload: '{"hello":"b"}' }]);
        const marker = await barrier(a, topic, [got.b]);
        assert.deepEqual(payloadsOn(got.b, topic), ['{"hello":"b"}', marker], 'delivered once');
        // a was not subscribed when it published. Subscribing now and passing a barrier through a: a wrongly delivered
        // copy of the first payload would have reached a before the marker (same topic, same publisher).
        await a.subscribe(topic);
        const marker2 = await barrier(a, topic, [got.a, got.b]);
        assert.deepEqual(got.a, [{ topic, payload: marker2 }], 'a was not subscribed');
      });
    });

    it("includes the publisher's own subscription", async () => {
      await withPair(async ({ a, b }, got) => {
        const topic = freshTopic('self');
        await a.subscribe(topic);
        await b.subscribe(topic);
        await a.publish(topic, 'p1');
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
        await a.publish(other, 'not for b');
        await a.publish(wanted, 'for b');
        await waitFor('delivery of the wanted topic', () => got.b.length >= 1 && got.a.length >= 1);
        // b subscribes to `other` only now, after 'not for b' was published: a wrong delivery of it to b would arrive
        // before the marker a publishes on `other` next (same topic, same publisher).
        await b.subscribe(other);
        const marker = await barrier(a, other, [got.a, got.b]);
        assert.deepEqual(got.b, [
          { topic: wanted, payload: 'for b' },
          { topic: other, payload: marker },
        ]);
        assert.deepEqual(got.a, [
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
        await a.publish(topic, 'once');
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
          publishes.push(a.publish(topic, payload));
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
          if (t === topic && payload === 'm1') void pair.a.publish(topic, 'm2');
        });
        pair.b.onMessage((t, payload) => {
          if (t === topic) gotB.push(payload);
        });
        await pair.a.subscribe(topic);
        await pair.b.subscribe(topic);
        await pair.a.publish(topic, 'm1');
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
        await a.publish(topic, 'before');
        await waitFor('first payload at b', () => got.b.length >= 1);
        await b.unsubscribe(topic);
        await a.publish(topic, 'after');
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
        for (const payload of payloads) await a.publish(topic, payload);
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

    it('answers ping', async () => {
      await withPair(async ({ a, b }) => {
        await a.ping();
        await b.ping();
      });
    });
  });
}
