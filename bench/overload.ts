/**
 * Overload (`npm run bench:overload`): a load the subscribers cannot keep up with, and what the server does with it.
 *
 * Workload (issue 9): one public group of `BENCH_OVERLOAD_CLIENTS` (1,000) subscribers, ~100-byte texts, one publisher
 * keeping `BENCH_OVERLOAD_INFLIGHT` (50) sends in flight, counted by their REPLIES (a send is done when the server
 * acknowledged it, not when every subscriber got it): the publisher goes as fast as the server accepts sends. Each
 * subscriber parses every frame it receives (`JSON.parse`, like a real client), so one client process cannot take
 * every delivery. A refused send with `retryAfterMs` is sent again after that delay; any other refusal is counted.
 *
 * Every second it prints: server RSS, its V8 heap used and external memory (ArrayBuffers: frames, socket buffers), the
 * outgoing bytes held for connections (`parley_outgoing_bytes`, queued vs socket), sends acknowledged and refused, and
 * what the subscribers received in that second: deliveries and their latency (send → receipt) p50/p99/max, and
 * subscribers closed by the server so far (by close code). Then one summary line. No assertions: figures only.
 * `BENCH_OVERLOAD_READ_KBPS` (default 0: as fast as the process parses) caps what each reading subscriber reads per
 * second, like clients on slow links: publishers then outrun the readers by bytes, not by CPU, which is what
 * `limits.maxDeliveryDelayMs` bounds. `BENCH_OVERLOAD_NONREADERS` (default 0) of the subscribers stop reading when the publisher starts (their sockets
 * paused): how long they hold the publisher (acked/s near 0) before the server closes them (4002) is the figure.
 * Server metrics are scraped from /metrics with a short timeout; a scrape that does not answer prints `-` (that alone
 * says the event loop is behind). PARLEY_* variables of the environment reach the server (to compare configurations).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { readAtMost } from '../test/helpers/raw-client.js';
import { OWN_SECRET, signToken } from '../test/helpers/server.js';
import { findToken, makeBody, nextMessage } from './fanout-client.js';
import { connectParley, pool, procStats, rest, startParley, stopServer, type ParleyConn } from './parley.js';
import { LatencyHistogram, formatInt, formatMs, formatTable, monoUs, type HistogramJSON } from './stats.js';

const thisModule = import.meta.url;
const MB = 1024 * 1024;

interface Report {
  type: 'report';
  /** Latency of what arrived in each second of the window (by the second of receipt). */
  seconds: HistogramJSON[];
  /** Subscribers closed by the server, by close code. */
  closes: Record<string, number>;
}

const subscriberId = (index: number) => `overload-sub-${index}`;

/** Selected lines of the server's /metrics, or null if it did not answer in time. */
async function scrape(url: string, timeoutMs: number): Promise<Record<string, number> | null> {
  try {
    const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    const out: Record<string, number> = {};
    for (const line of text.split('\n')) {
      const m = /^(parley_nodejs_heap_size_used_bytes|parley_nodejs_external_memory_bytes|parley_outgoing_bytes\{where="(?:queued|socket)"\}|parley_paused_connections|parley_closes_total\{reason="SLOW_CONSUMER"\}) (\S+)/.exec(line);
      if (m) out[m[1]!] = Number(m[2]);
    }
    return out;
  } catch {
    return null;
  }
}

export async function runOverloadBench(): Promise<void> {
  const clients = Number(process.env.BENCH_OVERLOAD_CLIENTS ?? 1000);
  const seconds = Math.min(60, Number(process.env.BENCH_OVERLOAD_SECONDS ?? 10));
  const inflight = Number(process.env.BENCH_OVERLOAD_INFLIGHT ?? 50);
  const nonReaders = Math.min(clients, Number(process.env.BENCH_OVERLOAD_NONREADERS ?? 0));
  const readKbps = Number(process.env.BENCH_OVERLOAD_READ_KBPS ?? 0);
  console.log(
    `overload: 1 group x ${clients} subscribers (each parses every frame${nonReaders > 0 ? `; ${nonReaders} of them stop reading at the start` : ''}` +
      `${readKbps > 0 ? `; the readers read at most ${readKbps} KB/s each, like clients on slow links` : ''}), ` +
      `~100-byte texts, publisher keeps ${inflight} sends in flight (by reply), ${seconds} s`,
  );
  const server = await startParley();
  const pid = server.process.pid!;
  let worker: ChildProcess | null = null;
  let sender: ParleyConn | null = null;
  try {
    const ownerToken = await signToken(OWN_SECRET, 'parley', 'overload-owner');
    const { conversation } = await rest(server, ownerToken, 'POST', '/api/v1/conversations', { name: 'overload', visibility: 'public' });
    await pool(clients, 16, async (i) => {
      const token = await signToken(OWN_SECRET, 'parley', subscriberId(i));
      await rest(server, token, 'POST', `/api/v1/conversations/${conversation.id}/join`);
    });
    worker = fork(fileURLToPath(thisModule), ['--overload-worker'], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    worker.send({ type: 'init', wsUrl: server.wsUrl, clients, nonReaders, readKbps });
    await nextMessage(worker, 'ready', 120_000);
    const rssIdle = procStats(pid).rss;

    // The publisher: `inflight` sends outstanding, each reply releases the next one.
    let acked = 0;
    const refused: Record<string, number> = {};
    let seq = 0;
    let running = true;
    let senderClosed: number | null = null;
    const conversationId = conversation.id as string;
    const sendOne = (): void => {
      if (!running || !sender) return;
      seq++;
      sender.send(`{"id":${seq},"type":"message.send","data":{"conversationId":"${conversationId}","key":"k${seq}","text":${JSON.stringify(makeBody(seq, monoUs()))}}}`);
    };
    sender = await connectParley(server.wsUrl, ownerToken, (frame) => {
      if (frame[2] !== 0x69 /* i of {"id" */) return;
      const reply = JSON.parse(frame.toString()) as { result?: unknown; error?: { code: string; retryAfterMs?: number } };
      if (reply.error) {
        refused[reply.error.code] = (refused[reply.error.code] ?? 0) + 1;
        setTimeout(sendOne, reply.error.retryAfterMs ?? 10);
      } else {
        acked++;
        sendOne();
      }
    }, (code) => (senderClosed = code));

    // Server-side figures are sampled here each second; what the subscribers received is bucketed by the second of
    // its receipt in the worker (whose own timers run late under this load) and reported at the end.
    const samples: Array<{ rss: number; metrics: Record<string, number> | null; acked: number; refused: number }> = [];
    const t0Us = monoUs();
    worker.send({ type: 'start', t0Us });
    for (let i = 0; i < inflight; i++) sendOne();
    for (let second = 1; second <= seconds; second++) {
      const due = t0Us / 1000 + second * 1000;
      await new Promise((r) => setTimeout(r, Math.max(0, due - 400 - monoUs() / 1000)));
      const metrics = await scrape(server.url, 350);
      samples.push({ rss: procStats(pid).rss, metrics, acked, refused: Object.values(refused).reduce((a, b) => a + b, 0) });
      await new Promise((r) => setTimeout(r, Math.max(0, due - monoUs() / 1000)));
    }
    running = false;
    worker.send({ type: 'report' });
    const report = await nextMessage<Report>(worker, 'report', 60_000);
    const rows: string[][] = [];
    const total = new LatencyHistogram();
    let delivered = 0;
    let lastAcked = 0;
    let lastRefused = 0;
    samples.forEach((sample, i) => {
      const h = LatencyHistogram.fromJSON(report.seconds[i] ?? { counts: [], total: 0, maxUs: 0 });
      total.merge(h);
      delivered += h.total;
      const m = (key: string) => (sample.metrics && key in sample.metrics ? formatMs(sample.metrics[key]! / MB) : '-');
      rows.push([
        String(i + 1),
        formatMs(sample.rss / MB),
        m('parley_nodejs_heap_size_used_bytes'),
        m('parley_nodejs_external_memory_bytes'),
        m('parley_outgoing_bytes{where="socket"}'),
        formatInt(sample.acked - lastAcked),
        formatInt(sample.refused - lastRefused),
        formatInt(h.total),
        formatMs(h.quantileUs(0.5) / 1000),
        formatMs(h.quantileUs(0.99) / 1000),
        formatMs(h.maxUs / 1000),
        sample.metrics ? formatInt(sample.metrics['parley_closes_total{reason="SLOW_CONSUMER"}'] ?? 0) : '-',
      ]);
      lastAcked = sample.acked;
      lastRefused = sample.refused;
    });
    console.log(formatTable(
      ['s', 'RSS MB', 'heap MB', 'ext MB', 'sockets MB', 'acked/s', 'refused/s', 'delivered/s', 'p50 ms', 'p99 ms', 'max ms', '4002 closes'],
      rows,
    ));
    const maxRss = Math.max(...samples.map((x) => x.rss));
    if (nonReaders > 0) {
      const closedBy = samples.findIndex((x) => (x.metrics?.['parley_closes_total{reason="SLOW_CONSUMER"}'] ?? 0) >= nonReaders);
      console.log(`non-readers: all ${nonReaders} closed (4002) by second ${closedBy < 0 ? `- (not within ${seconds} s)` : closedBy + 1} (acked/s above: how long they held the publisher)`);
    }
    const refusedText = Object.entries(refused).map(([code, n]) => `${n} ${code}`).join(', ') || 'none';
    console.log(
      `overload summary: RSS ${formatMs(rssIdle / MB)} MB idle -> max ${formatMs(maxRss / MB)} MB; ${formatInt(acked / seconds)} sends acked/s ` +
        `(refused: ${refusedText}); ${formatInt(delivered / seconds)} deliveries/s, p50 ${formatMs(total.quantileUs(0.5) / 1000)} ms, ` +
        `p99 ${formatMs(total.quantileUs(0.99) / 1000)} ms, max ${formatMs(total.maxUs / 1000)} ms; subscribers closed: ` +
        `${Object.entries(report.closes).map(([code, n]) => `${n} (${code})`).join(', ') || 'none'}; publisher ${senderClosed === null ? 'open' : `closed ${senderClosed}`}`,
    );
  } finally {
    sender?.close();
    if (worker && worker.exitCode === null) worker.kill('SIGKILL');
    await stopServer(server);
  }
}

/** The subscribers' process: parse every frame; latency per second of receipt, reported when asked. */
async function overloadWorker(): Promise<void> {
  process.on('disconnect', () => process.exit(0));
  const init = await new Promise<{ wsUrl: string; clients: number; nonReaders: number; readKbps: number }>((r) => process.once('message', r as never));
  const seconds: LatencyHistogram[] = [];
  let t0Us = -1;
  const closes: Record<string, number> = {};
  const onFrame = (frame: Buffer): void => {
    JSON.parse(frame.toString()); // what a real client does with each event
    const token = findToken(frame);
    if (!token || t0Us < 0) return;
    const now = monoUs();
    const second = Math.floor((now - t0Us) / 1e6);
    if (second < 0 || second > 120) return;
    (seconds[second] ??= new LatencyHistogram()).record(now - token.sentUs);
  };
  const conns = await pool(init.clients, 64, async (i) => {
    const token = await signToken(OWN_SECRET, 'parley', subscriberId(i));
    return connectParley(init.wsUrl, token, onFrame, (code) => (closes[code] = (closes[code] ?? 0) + 1));
  });
  process.on('message', (msg: { type: string; t0Us?: number }) => {
    if (msg.type === 'start') {
      t0Us = msg.t0Us!;
      for (const conn of conns.slice(0, init.nonReaders)) conn.socket.pause();
      if (init.readKbps > 0) for (const conn of conns.slice(init.nonReaders)) readAtMost(conn.socket, init.readKbps * 1024);
    }
    if (msg.type !== 'report') return;
    for (const conn of conns) conn.close();
    const empty = { counts: [], total: 0, maxUs: 0 };
    process.send!({ type: 'report', seconds: Array.from(seconds, (h) => h?.toJSON() ?? empty), closes } satisfies Report);
  });
  process.send!({ type: 'ready', connected: conns.length });
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain && process.argv.includes('--overload-worker')) {
  overloadWorker().catch((error) => {
    console.error(error);
    process.exit(1);
  });
} else if (isMain) {
  const watchdog = setTimeout(() => {
    console.error('overload bench: watchdog (120 s)');
    process.exit(1);
  }, 120_000);
  watchdog.unref();
  runOverloadBench().then(
    () => process.exit(0),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
