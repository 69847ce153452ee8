import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Prometheus metrics of one instance, served at /metrics. One registry per server (not prom-client's global), so
 * several servers in one process (tests) do not collide. Label values are bounded sets (request types, error codes).
 */
export class Metrics {
  readonly registry = new Registry();
  readonly connections = new Gauge({ name: 'parley_connections', help: 'Open WebSocket connections', registers: [this.registry] });
  readonly connectionsTotal = new Counter({ name: 'parley_connections_total', help: 'WebSocket connections accepted', registers: [this.registry] });
  readonly closes = new Counter({ name: 'parley_closes_total', help: 'Connections closed by the server, by close code name', labelNames: ['reason'], registers: [this.registry] });
  readonly requests = new Counter({ name: 'parley_requests_total', help: 'Requests received, by type', labelNames: ['type'], registers: [this.registry] });
  readonly errors = new Counter({ name: 'parley_errors_total', help: 'Error replies sent, by code', labelNames: ['code'], registers: [this.registry] });
  readonly messagesIn = new Counter({ name: 'parley_messages_in_total', help: 'Messages stored from clients', registers: [this.registry] });
  readonly framesOut = new Counter({ name: 'parley_frames_out_total', help: 'Event frames queued to connections', registers: [this.registry] });
  readonly storeErrors = new Counter({ name: 'parley_store_errors_total', help: 'Store calls that failed (engine unavailable: disk full, read-only, thread gone), by store method', labelNames: ['op'], registers: [this.registry] });
  readonly storeDiskFree = new Gauge({ name: 'parley_store_disk_free_bytes', help: 'Free bytes on the disk of the embedded store (SQLite), as of the last check (every 10 s and each /readyz)', registers: [this.registry] });
  readonly storeReady = new Gauge({ name: 'parley_store_ready', help: '1 while store writes succeed, 0 from a failed write until the next successful one', registers: [this.registry] });
  readonly busReceived = new Counter({
    name: 'parley_bus_received_total',
    help: 'Payloads this instance received from the bus (only topics of its own connections: interest routing)',
    registers: [this.registry],
  });
  readonly busReceivedBytes = new Counter({
    name: 'parley_bus_received_bytes_total',
    help: 'Bytes of the payloads this instance received from the bus',
    registers: [this.registry],
  });
  readonly busPublishFailures = new Counter({
    name: 'parley_bus_publish_failures_total',
    help: 'Events this instance could not publish to the bus (stored, but lost to live clients until a resync)',
    registers: [this.registry],
  });
  /** Topics owed a `resync` (src/domain/publisher.ts), and 1 while a cluster-wide one is owed; read at scrape time. */
  readonly busResyncsOwed = new Gauge({
    name: 'parley_bus_resyncs_owed',
    help: 'Resyncs this instance owes for events it could not publish: per topic, or cluster-wide (0 or 1)',
    labelNames: ['scope'],
    registers: [this.registry],
    collect: () => {
      const owed = this.sources.resyncsOwed?.();
      if (!owed) return;
      this.busResyncsOwed.set({ scope: 'topic' }, owed.topics);
      this.busResyncsOwed.set({ scope: 'cluster' }, owed.cluster ? 1 : 0);
    },
  });
  readonly requestSeconds = new Histogram({
    name: 'parley_request_duration_seconds',
    help: 'Time from a request frame to its reply, by type',
    labelNames: ['type'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  /**
   * Outgoing bytes held for connections, read at scrape time: `queued` (frames queued this event-loop turn, not yet
   * written), `socket` (written to a socket, not yet taken by the kernel) and `backlog` (written and not yet
   * confirmed read by the peer, wherever they wait: our memory, the kernels, the client; beyond the
   * limits.outgoingProbeBytes each reading connection may have in flight; bounded by limits.maxOutgoingTotalBytes
   * plus one turn's fan-out).
   */
  readonly outgoingBytes = new Gauge({
    name: 'parley_outgoing_bytes',
    help: 'Outgoing bytes for connections: queued this turn, buffered in sockets, or backlog (written, not confirmed read)',
    labelNames: ['where'],
    registers: [this.registry],
    collect: () => {
      const held = this.sources.outgoing?.();
      if (!held) return;
      this.outgoingBytes.set({ where: 'queued' }, held.queued);
      this.outgoingBytes.set({ where: 'socket' }, held.socket);
      this.outgoingBytes.set({ where: 'backlog' }, held.backlog);
      this.pausedConnections.set(held.paused);
    },
  });
  readonly pausedConnections = new Gauge({
    name: 'parley_paused_connections',
    help: 'Connections whose requests are held (backpressure on senders): the process over limits.maxOutgoingTotalBytes, their own backlog over limits.maxOutgoingBytes, or a conversation they publish to behind limits.maxDeliveryDelayMs',
    registers: [this.registry],
  });
  readonly backpressurePauses = new Counter({
    name: 'parley_backpressure_pauses_total',
    help: 'Times a requesting connection was held (see parley_paused_connections for the reasons)',
    registers: [this.registry],
  });
  /** Where scrape-time gauges read their figures; set by the gateway. */
  readonly sources: {
    outgoing?: () => { queued: number; socket: number; backlog: number; paused: number };
    resyncsOwed?: () => { topics: number; cluster: boolean };
  } = {};

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'parley_' });
    this.storeReady.set(1);
  }
}
