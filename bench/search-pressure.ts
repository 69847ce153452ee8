/**
 * `npm run bench:search`: does group search, at its worst, delay other users' messages? Prints figures, asserts nothing.
 *
 * A real server (dist/, default limits except the per-address ones the test helper raises) on a store seeded with
 * BENCH_SEARCH_GROUPS (100,000) public groups named `abcab N cabd` and as many named `abc`×60 + ` abd N`: every name
 * holds every trigram of the adversarial queries, never in their order, so an index lookup finds all names and then
 * nothing: the most expensive searches a client can ask for. The queries: short, `abcabd` (6 characters), and long,
 * `abc`×65 + `abd` (198 characters). Then, each phase BENCH_SEARCH_SECONDS (8) long:
 * 1. quiet: one bystander sends a message every 50 ms and waits for its acknowledgement (send → stored → reply);
 * 2. the bystander again, while BENCH_SEARCH_ATTACKERS (4) users search the short query as fast as the server lets
 *    them (each waits `retryAfterMs` when refused); 3. the same with the long query;
 * 4. the long query with ten times as many attacking users (the process-wide cap on concurrent searches, not the
 *    per-user rate, is what holds then).
 * Per phase: the bystander's acknowledgement latency p50/p99/max, searches served per second with their latency, and
 * searches refused (RATE_LIMITED).
 *
 * Bounded: every phase has a fixed duration; every request times out after 10 s; a watchdog exits at 5 minutes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Database } from '../src/store/sqlite/driver.js';
import { createSqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { RawClient, sleep } from '../test/helpers/raw-client.js';
import { startServer, type TestServer } from '../test/helpers/server.js';
import { LatencyHistogram, envNumber, formatInt, formatMs, formatTable, monoUs } from './stats.js';

const groups = envNumber('BENCH_SEARCH_GROUPS', 100_000);
const seconds = envNumber('BENCH_SEARCH_SECONDS', 8);
const attackers = envNumber('BENCH_SEARCH_ATTACKERS', 4);
const SHORT = 'abcabd';
const LONG = `${'abc'.repeat(65)}abd`;

const watchdog = setTimeout(() => {
  console.error('bench:search still running after 5 minutes, giving up');
  process.exit(1);
}, 300_000);
watchdog.unref();

/**
 * Seed the file before the server opens it: one group made by the store, then `groups` copies of its row made by one
 * SQL statement (the store's per-group transactions would take minutes), named so that QUERY matches none. The
 * search index follows through the store's own triggers on group_names.
 */
async function seed(dataDir: string): Promise<void> {
  const file = join(dataDir, 'parley.db');
  const store = createSqliteStore({ path: file, synchronous: 'normal' });
  await store.migrate();
  await store.createUser({ id: 'seed-owner', name: 'seed-owner', passwordHash: null, now: Date.now() });
  await store.createGroup({ id: 'seed-template', name: 'template', visibility: 'public', createdBy: 'seed-owner', now: Date.now() });
  await store.close();
  const db = new Database(file);
  try {
    const columns = (db.prepare('PRAGMA table_info(conversations)').all() as Array<{ name: string }>).map((c) => c.name);
    // Trigrams abc, bca, cab and abd all occur in every name; "abcabd" never does, nor the long query.
    const short: Record<string, string> = { id: "'seed-' || n.i", name: "'abcab ' || n.i || ' cabd'" };
    const long: Record<string, string> = { id: "'seed-long-' || n.i", name: `'${'abc'.repeat(60)} abd ' || n.i` };
    db.transaction(() => {
      for (const made of [short, long]) {
        const values = columns.map((c) => made[c] ?? `t.${c}`).join(', ');
        db.prepare(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
          INSERT INTO conversations (${columns.join(', ')}) SELECT ${values} FROM n, conversations t WHERE t.id = 'seed-template'`).run(groups);
      }
      // ASCII names: lower() is the store's search folding here.
      db.prepare("INSERT INTO group_names (conversation_id, folded) SELECT id, lower(name) FROM conversations WHERE id LIKE 'seed-%' AND id <> 'seed-template'").run();
    })();
  } finally {
    db.close();
  }
}

interface PhaseResult {
  name: string;
  sends: LatencyHistogram;
  searches: LatencyHistogram;
  refused: number;
  seconds: number;
}

async function bystanderLoop(client: RawClient, conversationId: string, until: number, into: LatencyHistogram): Promise<void> {
  let n = 0;
  while (Date.now() < until) {
    const started = monoUs();
    const reply = await client.request('message.send', { conversationId, key: `k${Date.now()}-${n++}`, text: 'hello' }, 10_000);
    if (reply.error) throw new Error(`bystander send failed: ${JSON.stringify(reply.error)}`);
    into.record(monoUs() - started);
    await sleep(50);
  }
}

async function attackerLoop(client: RawClient, query: string, until: number, result: PhaseResult): Promise<void> {
  while (Date.now() < until) {
    const started = monoUs();
    const reply = await client.request('conversation.search', { query }, 60_000).catch((err: Error) => {
      throw new Error(`${err.message} (phase ${result.name}; connection ${client.closed ? `closed ${JSON.stringify(client.closed)}` : 'open'})`);
    });
    if (reply.error?.code === 'RATE_LIMITED') {
      result.refused++;
      await sleep(Math.min(reply.error.retryAfterMs, Math.max(0, until - Date.now())));
    } else if (reply.error) {
      throw new Error(`search failed: ${JSON.stringify(reply.error)}`);
    } else {
      result.searches.record(monoUs() - started);
    }
  }
}

async function phase(server: TestServer, name: string, query: string, attackerCount: number, bystander: { client: RawClient; conversationId: string }): Promise<PhaseResult> {
  const result: PhaseResult = { name, sends: new LatencyHistogram(), searches: new LatencyHistogram(), refused: 0, seconds };
  const clients = await Promise.all(Array.from({ length: attackerCount }, async (_, i) =>
    RawClient.connect(server.wsUrl, await server.token(`searcher-${query.length}-${attackerCount}-${i}`))));
  const until = Date.now() + seconds * 1000;
  await Promise.all([
    bystanderLoop(bystander.client, bystander.conversationId, until, result.sends),
    ...clients.map((c) => attackerLoop(c, query, until, result)),
  ]);
  for (const c of clients) c.close();
  return result;
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-bench-search-'));
  try {
    let t = performance.now();
    await seed(dataDir);
    console.log(`seeded ${formatInt(2 * groups)} public groups in ${formatMs((performance.now() - t) / 1000)} s`);
    const server = await startServer({}, { dataDir });
    try {
      const client = await RawClient.connect(server.wsUrl, await server.token('bystander'));
      const { conversation } = await client.ok('conversation.create', { name: 'bystander room' });
      const bystander = { client, conversationId: conversation.id };
      for (const query of [SHORT, SHORT, LONG]) {
        t = performance.now();
        const probe = await client.request('conversation.search', { query }, 60_000);
        console.log(`one ${query.length}-character search: ${formatMs(performance.now() - t)} ms, ${probe.result?.conversations.length} found`);
      }
      const results = [
        await phase(server, 'quiet', SHORT, 0, bystander),
        await phase(server, `${attackers} searchers, short`, SHORT, attackers, bystander),
        await phase(server, `${attackers} searchers, long`, LONG, attackers, bystander),
        await phase(server, `${attackers * 10} searchers, long`, LONG, attackers * 10, bystander),
      ];
      client.close();
      const ms = (us: number): string => formatMs(us / 1000);
      console.log(`\nbystander sends (ack latency, ms) while users run adversarial searches over ${formatInt(2 * groups)} public groups`);
      console.log(formatTable(
        ['phase', 'sends', 'p50', 'p99', 'max', 'searches/s', 'search p50', 'search p99', 'refused'],
        results.map((r) => [
          r.name, formatInt(r.sends.total), ms(r.sends.quantileUs(0.5)), ms(r.sends.quantileUs(0.99)), ms(r.sends.maxUs),
          formatMs(r.searches.total / r.seconds), ms(r.searches.quantileUs(0.5)), ms(r.searches.quantileUs(0.99)), formatInt(r.refused),
        ]),
      ));
    } finally {
      await server.stop();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
