import { isIP } from 'node:net';
import { z } from 'zod';

/**
 * Parley's whole configuration: one typed object, validated once at start (src/config/load.ts merges the YAML file,
 * PARLEY_* environment variables and flags into it) and passed down. Every field has its default here.
 */
const rateSchema = z.object({
  /** Tokens added per second. */
  perSecond: z.number().positive().default(10),
  /** Bucket size: how many may be spent at once. */
  burst: z.number().int().positive().default(20),
}).strict();

/**
 * A server's URL (`scheme://[user[:password]@]host[:port][/path][?options]`) with a scheme of `schemes`. A password
 * holding `#`, `?`, `/` or `@` must be percent-encoded: unencoded, the URL parser cuts the password there and takes
 * the rest for a host or a fragment, and the connection error would then show part of the password as a host name.
 */
function serverUrl(schemes: RegExp, expected: string, example: string) {
  return z.string().regex(schemes, expected).superRefine((url, ctx) => {
    if (!schemes.test(url)) return;
    if (!URL.canParse(url)) {
      ctx.addIssue({ code: 'custom', message: `not a valid URL (like ${example}): percent-encode @ # ? / : in the user name and password (# as %23)` });
    } else if (url.includes('#')) {
      ctx.addIssue({ code: 'custom', message: 'holds a # (a URL fragment, which is dropped): percent-encode it as %23 in the password' });
    }
  });
}

export const configSchema = z.object({
  server: z.object({
    /** @default '0.0.0.0' */
    host: z.string().default('0.0.0.0'),
    /** @default 8080 (0 picks a free port) */
    port: z.number().int().min(0).max(65535).default(8080),
    /** Address clients use, for printed hints and invite links; @default derived from host and port */
    publicUrl: z.string().url().optional(),
    /** An instance name for logs and metrics; @default the host name and pid */
    instanceId: z.string().optional(),
    /**
     * Addresses (IPv4 or IPv6, optionally with a /prefix) of reverse proxies, such as nginx, whose `X-Forwarded-For` the
     * server believes: a request from one of them counts against the budgets of the client address it forwards (REST
     * rate, registrations, login throttling). Requests from any other address use their TCP peer address, and their
     * `X-Forwarded-For` is ignored (anyone can send one). In the environment: comma-separated. @default none
     */
    trustedProxies: z.array(z.string().refine(isAddressOrCidr, 'an IP address, optionally with a /prefix: 10.0.0.1, 10.0.0.0/8, ::1')).default([]),
    /** Serve the web chat client (built into dist/web by `npm run build`) at `/`. @default true */
    webClient: z.boolean().default(true),
    cors: z.object({
      /**
       * Web page origins (`https://chat.example.com`: scheme, host, port) allowed to call the REST API and open the
       * WebSocket from a browser; `*` allows any. Same-origin pages and clients that send no Origin (not browsers)
       * are always allowed. In the environment: comma-separated. @default none (no cross-origin page)
       */
      origins: z.array(z.string().regex(/^(\*|https?:\/\/[^/\s,]+)$/, 'an origin like https://chat.example.com (no path), or *')).default([]),
    }).strict().prefault({}),
  }).strict().prefault({}),
  /** Folder for the embedded store and the generated signing secret. @default './data' */
  dataDir: z.string().default('./data'),
  store: z.object({
    /**
     * The store engine: 'sqlite' (one file, one instance; the default) or 'postgres' (one PostgreSQL database shared by
     * any number of instances; set store.postgres.url). @default 'sqlite'
     */
    kind: z.enum(['sqlite', 'postgres']).default('sqlite'),
    sqlite: z.object({
      /** @default '<dataDir>/parley.db' */
      path: z.string().optional(),
      /** 'full' syncs every commit to disk (group commit keeps it fast); 'normal' may lose the last commits on power loss. */
      synchronous: z.enum(['full', 'normal']).default('full'),
      /** Run SQLite on a worker thread, so commits do not stop the event loop. @default true */
      thread: z.boolean().default(true),
      /**
       * Free space, in bytes, that the disk of the database must keep: below it /readyz answers 503 (naming the free
       * space), `parley_store_disk_free_bytes` shows it and a warn line is logged, before messages fail to fit.
       * 0 turns the check off. @default 67108864 (64 MiB)
       */
      minFreeBytes: z.number().int().min(0).default(64 * 1024 * 1024),
      /**
       * Message appends waiting for their group commit, at most; one more is refused with RATE_LIMITED (temporary,
       * `retryAfterMs` ≈ the time the queue takes to drain, spread up to twice that, at least 10 ms) before anything is written. @default 10000
       */
      maxQueuedWrites: z.number().int().min(1).default(10_000),
      /**
       * Store calls posted to the store thread and not yet answered, at most (thread: true); one more is refused with
       * RATE_LIMITED (temporary, `retryAfterMs` ≈ how long the last call waited, spread up to twice that, at least 10 ms) before it is posted.
       * @default 10000
       */
      maxPendingCalls: z.number().int().min(1).default(10_000),
    }).strict().prefault({}),
    postgres: z.object({
      /**
       * The database, as a libpq URL: `postgres://user:password@host:5432/parley` (`?sslmode=require` and the like are
       * honoured). Required when store.kind is 'postgres'; `parley migrate` creates the tables (so does every start).
       */
      url: serverUrl(/^postgres(ql)?:\/\//, 'a URL like postgres://user:password@host:5432/parley', 'postgres://user:password@host:5432/parley').optional(),
      /** Connections this instance opens at most (each instance has its own pool: keep the sum under max_connections). @default 10 */
      poolSize: z.number().int().min(1).default(10),
      /**
       * How long a call waits to get a connection (opening one, or a free one from a busy pool) before failing with
       * UNAVAILABLE (temporary), in ms: with the server down, calls fail within this instead of hanging. @default 5000
       */
      connectTimeoutMs: z.number().int().positive().default(5000),
      /** Server-side bound of one statement, in ms; past it the call fails with UNAVAILABLE. @default 30000 */
      statementTimeoutMs: z.number().int().positive().default(30_000),
      /**
       * Message appends waiting for their group commit, at most; one more is refused with RATE_LIMITED (temporary,
       * `retryAfterMs` ≈ the time the queue takes to drain, spread up to twice that, at least 10 ms). @default 10000
       */
      maxQueuedWrites: z.number().int().min(1).default(10_000),
    }).strict().prefault({}),
  }).strict().prefault({}),
  /**
   * The Redis that the engines set to `redis` share (bus.kind, presence.kind, ratelimit.kind): one server (or a
   * Sentinel-managed primary) for all three, as an operator runs one Redis for a cluster of instances. Every instance
   * of a cluster must use the same Redis and `keyPrefix`.
   */
  redis: z.object({
    /**
     * `redis://[user:password@]host:port[/db]`, or `rediss://…` for TLS. Required when an engine is `redis`.
     * @default none
     */
    url: serverUrl(/^rediss?:\/\/[^\s]+$/, 'a redis:// or rediss:// URL', 'redis://:password@host:6379/0').optional(),
    /**
     * Put before every key and channel Parley uses (`<prefix>c.<conversationId>`, `<prefix>presence:…`,
     * `<prefix>rl:…`), so that several deployments can share one Redis. @default 'parley:'
     */
    keyPrefix: z.string().default('parley:'),
    /**
     * Longest wait for one Redis reply, in ms: past it a publish fails with UNAVAILABLE, a rate check admits, and a
     * subscription is restored on a new connection. @default 2000
     */
    commandTimeoutMs: z.number().int().min(10).default(2000),
    /** Longest wait for a connection to Redis, in ms; at start, the server refuses to start past it. @default 5000 */
    connectTimeoutMs: z.number().int().min(100).default(5000),
  }).strict().prefault({}),
  bus: z.object({
    /**
     * `memory`: one process. `redis`: Redis pub/sub (redis.url), for several instances behind a load balancer; each
     * instance subscribes only to its own connections' conversations and users. @default 'memory'
     */
    kind: z.enum(['memory', 'redis']).default('memory'),
    /**
     * With a network bus, how often each instance re-reads its connected users from the store and brings its
     * interests in step (a removal or ban whose event no instance could deliver, such as one owed by an instance that
     * died, stops delivery here by then); a connection whose conversations changed gets `resync`. One read of a user's
     * account, session and conversation ids per connected user per period, a few at a time. 0 turns it off; the
     * memory bus never loses events and never reconciles. ms. @default 60000
     */
    reconcileMs: z.number().int().min(0).max(3_600_000).default(60_000),
  }).strict().prefault({}),
  ratelimit: z.object({
    /**
     * Where per-user and per-address rates and login throttling are counted. `memory`: per process. `redis`: shared by
     * every instance on redis.url, so N instances do not allow N times the rate. @default 'memory'
     */
    kind: z.enum(['memory', 'redis']).default('memory'),
  }).strict().prefault({}),
  presence: z.object({
    /**
     * `memory`: one process. `redis`: shared by every instance on redis.url; a dead instance's users go offline
     * within `ttlMs` plus one sweep (sweeps run every `ttlMs` / 2, at least 1 s apart). @default 'memory'
     */
    kind: z.enum(['memory', 'redis']).default('memory'),
    /** A connection not touched for this long counts as gone. @default 60000 */
    ttlMs: z.number().int().positive().default(60_000),
    /** Presence changes are collected this long and pushed as one event per conversation. @default 500 */
    batchMs: z.number().int().min(0).default(500),
    /**
     * Presence is pushed to the members of direct conversations and of groups of at most this many members; in a
     * larger group only to connections that asked with `presence.subscribe` (so the cost of a change is its watchers,
     * not the group size). @default 100
     */
    maxGroupSize: z.number().int().min(0).default(100),
    /** Users one connection may hold with `presence.subscribe`; more is refused with LIMIT_EXCEEDED. @default 500 */
    maxSubscriptions: z.number().int().min(0).default(500),
  }).strict().prefault({}),
  membership: z.object({
    /**
     * In a group with more members than this, joins and departures are summed into one `member.summary` event per
     * `batchMs` instead of one `member.joined` / `member.left` each. @default 100
     */
    summaryAbove: z.number().int().min(0).default(100),
    /** The window of `member.summary` events. @default 1000 */
    batchMs: z.number().int().min(0).default(1000),
  }).strict().prefault({}),
  auth: z.object({
    accounts: z.object({
      /** Built-in username/password accounts. @default true */
      enabled: z.boolean().default(true),
      /** HS256 secret for the server's own tokens; @default generated once and kept in <dataDir>/secret */
      secret: z.string().min(32).optional(),
      /** Issuer claim of the server's own tokens. @default 'parley' */
      issuer: z.string().default('parley'),
      /**
       * Lifetime of the server's own tokens (login, register, `parley token`). One day, like the session of a typical
       * web app: a stolen token is useful for a day at most, and logout / "log out everywhere" revoke sooner.
       * Clients log in again when it runs out (the WebSocket closes with 4004 first). @default 86400 (24 hours)
       */
      tokenTtlSeconds: z.number().int().positive().default(24 * 3600),
      /**
       * Minimum password length in characters (code points), for new passwords. NIST SP 800-63B asks for at least 8
       * (15 when the password is the only factor). @default 8
       */
      minPasswordLength: z.number().int().min(8).max(64).default(8),
      /**
       * Minimum zxcvbn strength score (0–4) of a new password (src/auth/password-policy.ts): 3 refuses common and
       * breached-list passwords, keyboard walks, repeats and passwords built on the username. 0 turns the check off.
       * @default 3
       */
      minPasswordScore: z.number().int().min(0).max(4).default(3),
    }).strict().prefault({}),
    /** Tokens issued by the integrating product. Any of the three key sources may be set. */
    jwt: z.object({
      /** Shared secret for HS256 tokens. */
      secret: z.string().min(32).optional(),
      /** PEM (SPKI) public key for RS256 / ES256 tokens. */
      publicKey: z.string().optional(),
      /** JWKS URL for RS256 / ES256 tokens. */
      jwksUrl: z.string().url().optional(),
      /** Required `iss`, if set. */
      issuer: z.string().optional(),
      /** Required `aud`, if set. */
      audience: z.string().optional(),
      /**
       * Allowed clock skew in seconds, for the server's own tokens and external ones: a token is accepted until exp
       * plus this, and a live connection is closed (4004) at that same moment. @default 30
       */
      clockToleranceSeconds: z.number().int().min(0).default(30),
      /**
       * Name of a claim in product tokens that, when exactly `true`, grants the admin API. @default none: product
       * tokens never grant admin rights.
       */
      adminClaim: z.string().min(1).max(128).optional(),
    }).strict().prefault({}),
  }).strict().prefault({}),
  admin: z.object({
    /** Static bearer token for /api/v1/admin (besides users with the admin flag). */
    token: z.string().min(16).optional(),
  }).strict().prefault({}),
  limits: z.object({
    /** Largest WebSocket frame accepted; larger ones close the connection with 1009. @default 65536 */
    maxFrameBytes: z.number().int().min(1024).default(64 * 1024),
    /** Largest message text in UTF-8 bytes. @default 4096 */
    maxMessageBytes: z.number().int().min(1).default(4096),
    /** Largest serialised metadata in bytes. @default 4096 */
    maxMetaBytes: z.number().int().min(0).default(4096),
    maxConversationsPerUser: z.number().int().min(1).default(1000),
    maxMembersPerGroup: z.number().int().min(2).default(10_000),
    /**
     * Backlog level of a connection's outgoing bytes: pending bytes above it that do not shrink within
     * `slowConsumerMs` close the connection as a slow consumer (4002). One large reply to a reading client never does.
     * @default 1 MiB
     */
    maxOutgoingBytes: z.number().int().min(1024).default(1024 * 1024),
    /** How long a backlog above `maxOutgoingBytes` may go without shrinking before the connection is closed. @default 5000 */
    slowConsumerMs: z.number().int().min(10).default(5000),
    /**
     * Hard cap on a connection's unconfirmed outgoing bytes, whatever the time: passing it closes at once (4002). Large
     * enough for a legal burst to a reading member (six members each sending their message burst of 50 texts of 4,096
     * control characters put 7.5 MB on the way to everyone within a second); memory is bounded process-wide by
     * maxOutgoingTotalBytes, which slows publishers down first. @default 16 MiB
     */
    maxOutgoingHardBytes: z.number().int().min(4096).default(16 * 1024 * 1024),
    /**
     * Process-wide bound of outgoing backlog: bytes written and not yet confirmed read by their clients (what fan-out
     * has not got to its readers, wherever it waits), beyond the `outgoingProbeBytes` each may have in flight, plus
     * the fan-out the requests being served are expected to add. Above it, the requests of every connection that sends
     * one are held, not served (TCP backpressure once a frame's worth is held), until that sum is back under 3/4 of it:
     * publishers slow down to what readers take, instead of the server buffering. Bounds server memory and the delay
     * of deliveries (≈ this / the readers' byte rate). At least twice `maxReplyBytes` (a page request reserves that
     * much while it is served).
     * @default 32 MiB
     */
    maxOutgoingTotalBytes: z.number().int().min(64 * 1024).default(32 * 1024 * 1024),
    /**
     * How far behind (ms) most readers of a conversation may fall before sends to it slow down. A reader's delay is how
     * long what is written to it now will wait: its unconfirmed bytes at the rate it read while bytes waited for it, or
     * the age of its oldest unanswered position ping (see `outgoingProbeBytes`), whichever is more. When more than half
     * of a conversation's connections on this instance are behind by more than this, a connection that sends, edits or
     * deletes a message there is served that request and then held (its next requests wait, as for
     * `maxOutgoingTotalBytes`) until they are not. Bounds the delay of deliveries under a load the readers cannot
     * take, where `maxOutgoingTotalBytes` bounds memory. A minority of slow readers slows nobody.
     * @default 500
     */
    maxDeliveryDelayMs: z.number().int().min(10).max(60_000).default(500),
    /**
     * Least time between two position pings (a ping whose pong confirms how far a client has read) on a connection
     * while bytes flow to it. Lower: finer accounting, more pongs. @default 100
     */
    outgoingProbeMs: z.number().int().min(1).max(10_000).default(100),
    /**
     * Unconfirmed bytes a connection may have in flight without a position ping; past it, writes carry one (at most
     * every `outgoingProbeMs`). What a reading client normally has on the way, so not counted as backlog by
     * `maxOutgoingTotalBytes`. Lower: finer accounting, more pongs. At most half of `maxOutgoingBytes`.
     * Higher: fewer pongs, but more of a slow reader's delay goes unseen (see DEFAULT_OUTGOING_PROBE_BYTES).
     * @default 128 KiB, or a quarter of `maxOutgoingBytes` when that is less (see `outgoingProbeBytesOf`)
     */
    outgoingProbeBytes: z.number().int().min(0).optional(),
    /**
     * Byte budget of one reply that can grow (history and sync pages, lists): pages stop before passing it and say
     * `more`. A page always holds at least one item. The budget used is at most half of `maxOutgoingBytes`.
     * @default 256 KiB
     */
    maxReplyBytes: z.number().int().min(4096).default(256 * 1024),
    /**
     * Requests of one connection served at once: past it, the connection is not read until one is answered (TCP
     * backpressure). Bounds what one connection can put in motion before the fan-out it causes is counted by
     * `maxOutgoingTotalBytes`. @default 32
     */
    maxInflightRequests: z.number().int().min(1).max(10_000).default(32),
    /** Every request of a connection spends a token. @default 50/s, burst 100 */
    connectionRate: rateSchema.prefault({ perSecond: 50, burst: 100 }),
    /** Every message send/edit/delete of a user, across devices, spends a token. @default 20/s, burst 50 */
    userMessageRate: rateSchema.prefault({ perSecond: 20, burst: 50 }),
    /** Every group search of a user (`conversation.search`, WebSocket or REST), across devices, spends a token. @default 5/s, burst 20 */
    userSearchRate: rateSchema.prefault({ perSecond: 5, burst: 20 }),
    /** Every user lookup by username (`user.find`, WebSocket or REST) of a user, across devices, spends a token. @default 1/s, burst 20 */
    userLookupRate: rateSchema.prefault({ perSecond: 1, burst: 20 }),
    /**
     * Group searches the process runs at once; one more is answered RATE_LIMITED. Searches run on a read-only
     * connection of their own and never delay writes; this bounds how much CPU they may take together. @default 4
     */
    maxConcurrentSearches: z.number().int().min(1).default(4),
    /** Requests refused for rate in a row before the connection is closed as a flood. @default 200 */
    floodCloseAfter: z.number().int().min(1).default(200),
    /** Largest page of history. @default 100 */
    maxPageSize: z.number().int().min(1).max(500).default(100),
    /**
     * Deepest nesting of arrays and objects accepted in any JSON that enters (WebSocket frames, REST bodies, `meta`);
     * deeper input is answered INVALID_REQUEST. @default 32
     */
    maxJsonDepth: z.number().int().min(4).max(1000).default(32),
    /** Every REST request (/api/v1/…) of one client address spends a token. @default 50/s, burst 100 */
    restRate: rateSchema.prefault({ perSecond: 50, burst: 100 }),
    /** Account registrations (POST /api/v1/accounts, successful or not) per client address. @default burst 10, then one per 6 minutes */
    registrationRate: rateSchema.prefault({ perSecond: 1 / 360, burst: 10 }),
    /**
     * Login throttling (POST /api/v1/sessions); docs/protocol.md "Login throttling" gives the policy. Failures are
     * counted per account and address, per address, and per account (from addresses the account has not recently
     * logged in from); past the free failures each one doubles the delay, from `baseDelayMs` up to the maximum.
     */
    login: z.object({
      /** Failed logins to one account from one address before delays start. @default 5 */
      pairFreeFailures: z.number().int().min(1).default(5),
      /** Failed logins from one address, over all accounts, before delays start. @default 30 */
      addressFreeFailures: z.number().int().min(1).default(30),
      /** Failed logins to one account from addresses it has not logged in from, before delays start. @default 50 */
      accountFreeFailures: z.number().int().min(1).default(50),
      /** The first delay, in ms; each further failure doubles it. @default 1000 */
      baseDelayMs: z.number().int().min(1).default(1000),
      /** Longest delay for an address, or an account from one address, in ms. @default 900000 (15 minutes) */
      maxDelayMs: z.number().int().min(1).default(15 * 60_000),
      /** Longest delay for an account from unknown addresses, in ms: kept short, so no one can lock an account. @default 30000 */
      accountMaxDelayMs: z.number().int().min(1).default(30_000),
      /** Failures are forgotten after this long without one (and once the delay has passed), in ms. @default 900000 */
      forgetAfterMs: z.number().int().min(1).default(15 * 60_000),
      /** An address stays "known" to an account this long after a successful login, in ms. @default 2592000000 (30 days) */
      knownAddressTtlMs: z.number().int().min(1).default(30 * 24 * 3600_000),
      /** Login attempts one address may have in progress at once; more are answered RATE_LIMITED. @default 4 */
      maxConcurrentPerAddress: z.number().int().min(1).default(4),
    }).strict().prefault({}),
    /** Open connections of the process (HTTP and WebSocket); past it new ones are answered 503 and closed. @default 10000 */
    maxConnections: z.number().int().min(1).default(10_000),
    /** WebSocket connections of one user on this instance; one more is closed with 4006 TOO_MANY_CONNECTIONS. @default 20 */
    maxConnectionsPerUser: z.number().int().min(1).default(20),
    /**
     * WebSocket connection attempts of one user (counted after authentication, across instances with a shared limiter);
     * past it the new connection is closed with 4006 TOO_MANY_CONNECTIONS. @default 2/s, burst 30
     */
    userConnectRate: rateSchema.prefault({ perSecond: 2, burst: 30 }),
    /**
     * Time a connection has to send a request's complete HTTP headers (for a WebSocket, the whole upgrade request), in
     * ms: from accepting the TCP connection for its first request, and from the end of the previous reply for every
     * later request on a keep-alive connection; a connection still silent or incomplete then is closed. @default 10000
     */
    headersTimeoutMs: z.number().int().min(100).default(10_000),
    /**
     * Time from a request's complete headers until its reply is sent, in ms: the body upload must finish within it
     * (a body dribbled byte by byte cannot hold a connection); past it the connection is closed. @default 30000
     */
    requestTimeoutMs: z.number().int().min(100).default(30_000),
    /**
     * A keep-alive HTTP connection with no request in progress is closed after this long idle, in ms. (fastify's own
     * default is 72 s, which let idle sockets fill maxConnections.) @default 5000
     */
    keepAliveTimeoutMs: z.number().int().min(100).default(5000),
  }).strict().prefault({}),
  heartbeat: z.object({
    /** The server pings every connection this often. @default 25000 */
    intervalMs: z.number().int().min(50).default(25_000),
    /** A connection that has not answered a ping within this time is closed (4001). @default 10000 */
    timeoutMs: z.number().int().min(50).default(10_000),
  }).strict().prefault({}),
  typing: z.object({
    /** A typing indicator expires by itself after this long without a refresh. @default 5000 */
    ttlMs: z.number().int().min(100).default(5000),
    /** Repeated "typing: true" from a user is forwarded at most this often. @default 1000 */
    throttleMs: z.number().int().min(0).default(1000),
    /**
     * Groups with more members than this forward at most `largeGroupPerSecond` typing starts per second in all (burst
     * twice that), so what each member receives does not grow with how many type at once. @default 100
     */
    largeGroupSize: z.number().int().min(0).default(100),
    /** Typing starts forwarded per second in one large group, from all its members together. @default 2 */
    largeGroupPerSecond: z.number().positive().default(2),
  }).strict().prefault({}),
  log: z.object({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  }).strict().prefault({}),
  shutdown: z.object({
    /**
     * How long SIGTERM's drain may take, ms: WebSocket connections are closed (4000) once the requests being served on
     * them are answered, within half of it; REST uploads not finished by then have their connection closed. @default 5000
     */
    drainMs: z.number().int().min(0).default(5000),
  }).strict().prefault({}),
}).strict().superRefine((config, ctx) => {
  if (config.store.kind === 'postgres' && config.store.postgres.url === undefined) {
    ctx.addIssue({ code: 'custom', path: ['store', 'postgres', 'url'], message: "is required when store.kind is 'postgres'" });
  }
  if (config.limits.outgoingProbeBytes !== undefined && config.limits.outgoingProbeBytes * 2 > config.limits.maxOutgoingBytes) {
    ctx.addIssue({ code: 'custom', path: ['limits', 'outgoingProbeBytes'], message: 'must be at most half of limits.maxOutgoingBytes' });
  }
  // A page request reserves maxReplyBytes of the budget while it is served: a budget smaller than two pages served
  // them one at a time at best, and a reader that stopped after its page held every connection for slowConsumerMs
  // (outside check: 4 sends in 60 s at a 64 KiB budget).
  const replyBudget = replyBudgetOf(config.limits);
  if (config.limits.maxOutgoingTotalBytes < replyBudget * 2) {
    ctx.addIssue({
      code: 'custom',
      path: ['limits', 'maxOutgoingTotalBytes'],
      message: `must be at least twice the reply budget (${2 * replyBudget} bytes; limits.maxReplyBytes, at most half of limits.maxOutgoingBytes): each page request reserves that much of it while it is served`,
    });
  }
  if (config.limits.maxOutgoingHardBytes < config.limits.maxOutgoingBytes * 2) {
    ctx.addIssue({ code: 'custom', path: ['limits', 'maxOutgoingHardBytes'], message: 'must be at least twice limits.maxOutgoingBytes' });
  }
  // One message's event is up to 6 bytes per text byte (control characters are JSON-escaped as \u00XX), plus its meta
  // and the fixed fields; a page always holds one. A backlog level below two of them would close every reader of
  // such a message, and make catch-up impossible.
  const largestEvent = 6 * config.limits.maxMessageBytes + config.limits.maxMetaBytes + 2048;
  if (config.limits.maxOutgoingBytes < 2 * largestEvent) {
    ctx.addIssue({
      code: 'custom',
      path: ['limits', 'maxOutgoingBytes'],
      message: `must be at least ${2 * largestEvent} bytes: twice the largest event one message makes (6 × limits.maxMessageBytes + limits.maxMetaBytes + 2048)`,
    });
  }
  const onRedis = (['bus', 'presence', 'ratelimit'] as const).filter((engine) => config[engine].kind === 'redis');
  if (onRedis.length > 0 && config.redis.url === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['redis', 'url'],
      message: `required when ${onRedis.map((engine) => `${engine}.kind`).join(', ')} ${onRedis.length > 1 ? 'are' : 'is'} 'redis'`,
    });
  }
  // Instances of a cluster must accept each other's tokens: the generated secret lives in each instance's own data
  // folder, so a user logged in on one instance would be refused by the others (4500, "do not reconnect").
  if (config.bus.kind === 'redis' && config.auth.accounts.secret === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['auth', 'accounts', 'secret'],
      message: "required when bus.kind is 'redis' (several instances): every instance must sign and verify the same tokens; set the same value (32 characters or more) on each",
    });
  }
  // A cluster (bus on Redis) with presence or limits in each process's memory runs, but wrongly: users connected to
  // another instance look offline, and N instances allow N times every rate. Refused rather than left to be found.
  if (config.bus.kind === 'redis') {
    for (const engine of ['presence', 'ratelimit'] as const) {
      if (config[engine].kind === 'redis') continue;
      ctx.addIssue({
        code: 'custom',
        path: [engine, 'kind'],
        message: engine === 'presence'
          ? "must be 'redis' when bus.kind is 'redis': with presence in each instance's memory, users connected to another instance look offline"
          : "must be 'redis' when bus.kind is 'redis': with limits in each instance's memory, N instances allow N times every rate and login attempt",
      });
    }
  }
  if (config.auth.jwt.issuer !== undefined && config.auth.jwt.issuer === config.auth.accounts.issuer) {
    ctx.addIssue({
      code: 'custom',
      path: ['auth', 'jwt', 'issuer'],
      message: 'must differ from auth.accounts.issuer: tokens are routed to a key by their issuer',
    });
  }
});

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

/** `10.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`: an address, and a prefix length that fits it. */
function isAddressOrCidr(value: string): boolean {
  const [address, prefix, ...rest] = value.split('/');
  const family = isIP(address ?? '');
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

/** The byte budget of one page in force: `limits.maxReplyBytes`, at most half of `limits.maxOutgoingBytes`. */
export function replyBudgetOf(limits: { maxReplyBytes: number; maxOutgoingBytes: number }): number {
  return Math.min(limits.maxReplyBytes, Math.floor(limits.maxOutgoingBytes / 2));
}

/**
 * `limits.outgoingProbeBytes` by default. A reader that keeps up answers about one ping per this much read (pings past
 * 90% of it, then at least every half while past): each pong is a wakeup on both sides, so at 64 KiB the saturated
 * fan-out bench (1,000 readers, each taking ~360 KB/s) spent ~12,000 pongs/s and delivered 9% less than before
 * position pings existed (medians of 10 interleaved rounds: 1.23M against 1.36M deliveries/s); at 128 KiB it is at
 * parity (1.365M against 1.317M, 5 rounds). The price is in the overload bench, whose readers cannot keep up: more of
 * what each one has in flight counts as normal, so deliveries wait longer before publishers are held (p99 1.5-1.6 s
 * against 1.0-1.1 s with 1,000 CPU-bound readers, 3.0-3.2 s against 2.0-2.1 s with 100 readers taking 100 KB/s; 2
 * runs each), RSS unchanged (~200 and ~165 MB). Before position pings those were 6.5 s and 19.3 s at 720-730 MB.
 */
export const DEFAULT_OUTGOING_PROBE_BYTES = 128 * 1024;

/** The effective `limits.outgoingProbeBytes`: as configured, else 128 KiB or a quarter of `maxOutgoingBytes` if less. */
export function outgoingProbeBytesOf(limits: Config['limits']): number {
  return limits.outgoingProbeBytes ?? Math.min(DEFAULT_OUTGOING_PROBE_BYTES, Math.floor(limits.maxOutgoingBytes / 4));
}
