import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { closeCatalogue, type CloseName } from '@parley/protocol';
import { errorCatalogue, isParleyError, type ErrorBody } from '../protocol/errors.js';
import { TokenBucket } from '../ratelimit/token-bucket.js';
import { framePing, frameText } from './frame.js';
import type { WriteScheduler } from './write-scheduler.js';

const NO_CONVERSATIONS: ReadonlySet<string> = new Set<string>();

export const ConnectionState = { Open: 0, Closing: 1, Closed: 2 } as const;
export type ConnectionState = (typeof ConnectionState)[keyof typeof ConnectionState];

/** Who handles a connection's socket events (the gateway); kept on the connection so listeners are shared functions. */
export interface ConnectionOwner {
  handleFrame(connection: Connection, data: import('ws').RawData, isBinary: boolean): void;
  /** A pong arrived (its payload confirms a position, see `confirm`). */
  markAlive(connection: Connection, payload: Buffer): void;
  unregister(connection: Connection): void;
  /** Count a close the connection decided itself (slow consumer), like the closes the owner makes. */
  countClose(name: CloseName): void;
  /** The connection's backlog (see `Connection.backlogBytes`) changed by `delta` (the owner keeps the process-wide total). */
  backlogChanged(delta: number): void;
  /**
   * The connection now has unanswered position pings (1), or no longer has any (-1: answered, or it closed). With
   * none in the whole process, no reader is behind (`Connection.delayMs` is 0 for all: see `Gateway.readersBehind`).
   */
  unansweredChanged(delta: 1 | -1): void;
}

export interface ConnectionLimits {
  /** Backlog level: pending bytes above it must shrink within `slowConsumerMs`, or the connection is closed. */
  maxOutgoingBytes: number;
  /** How long a backlog above `maxOutgoingBytes` may go without shrinking. */
  slowConsumerMs: number;
  /** Hard memory cap on pending bytes: a frame that would pass it closes the connection at once. */
  maxOutgoingHardBytes: number;
  /** Least time between two position pings of a connection while bytes flow to it. */
  outgoingProbeMs: number;
  /** Unconfirmed bytes a reading connection may have in flight without a position ping; not counted as backlog. */
  outgoingProbeBytes: number;
  connectionRate: { perSecond: number; burst: number };
}

/**
 * One authenticated WebSocket connection: a small state machine whose fields are all set here, so every connection
 * has the same shape. Everything the server sends it (replies and events, in order) goes through `send`, which
 * queues the ready-made frame and lets the WriteScheduler write the turn's frames as one socket write.
 *
 * What the peer has not yet taken is counted end to end, not only in our socket buffer: the kernel's buffers on both
 * sides of a loopback or LAN connection hold megabytes, so a client that reads too slowly leaves the socket's own
 * buffer empty while its backlog (and the delay of everything sent to it) grows. Once more than `outgoingProbeBytes`
 * are unconfirmed (somewhat less: see `probeAfter`, which keeps the members of a group from pinging together), a write
 * carries (at most every `outgoingProbeMs`) a ping whose payload is the byte position after it; the peer's pong (sent
 * once it read up to there) confirms that position. Unconfirmed bytes = written − confirmed
 * + queued: an upper bound of what is waiting for this peer anywhere (our memory, the kernels, the client's own queue).
 * Below `outgoingProbeBytes` no ping is needed: that much in flight is what a reading client normally has, so it is
 * not backlog, and a reader that keeps up costs one pong per `outgoingProbeBytes` it reads, not one per write (pongs
 * are work for both sides: at 10 per second to each of 1,000 readers they cost a fifth of the fan-out rate).
 *
 * Slow consumers are judged by unconfirmed bytes that do not drain, never by the size of one turn's writes: a reading
 * client may receive a large reply (a sync page) that briefly puts more than `maxOutgoingBytes` in flight. When
 * unconfirmed bytes exceed `maxOutgoingBytes`, a check runs every `slowConsumerMs`; if they are still above the limit
 * and have not shrunk since the previous check, the peer is not reading and the connection is closed (4002).
 * `maxOutgoingHardBytes` bounds them regardless of time.
 */
export class Connection {
  state: ConnectionState = ConnectionState.Open;
  awaitingPong = false;
  // Fields that come to hold a time (ms since the epoch) or a rate start as -0, a double equal to 0: starting as the
  // small integer 0 made V8 change their representation at the first timestamp, and the optimized fan-out code
  // (send, flush, deliver) was thrown away and rebuilt again and again in a 1,000-member group as connections took
  // the new shape one by one (perf: flush optimized 5-6 times, against once without position pings).
  pingSentAt = -0;
  /** The session id of the token it authenticated with (logout closes that session's connections), or null. */
  sessionId: string | null = null;
  /** The token generation of a token of our own ("log out everywhere" moves the user's on), or null. */
  tokenGeneration: number | null = null;
  /** Requests refused for rate in a row; past the flood limit the connection is closed. */
  refusedInRow = 0;
  /**
   * Conversations this connection receives events of (the gateway keeps its interest index from these). Allocated on
   * the first one: an idle connection without conversations then costs no Set (~150 B).
   */
  private conversationSet: Set<string> | null = null;
  /**
   * Frames queued this turn. One array per connection, emptied after each write and never replaced: a new array per
   * flush let V8 pretenure that allocation site (old-space allocation, then major GCs and page faults: +0.1 core and
   * +25% p99 at 50,000 deliveries/s).
   */
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private marked = false;
  /** Bytes written to the socket since the connection opened. */
  private writtenBytes = 0;
  /** Bytes the peer confirmed reading (the payload of its latest pong to a position ping). */
  private confirmedBytes = 0;
  /**
   * What position pings and the slow-consumer check track: allocated when the connection first needs it (its first
   * ping, backlog or held socket). An idle connection never does: these fields cost every idle connection ~170 bytes
   * (heap snapshots of the memory bench, live bytes per connection: 4,257 with this, 4,442 without, 4,323 before
   * issue 9).
   */
  private track: Tracking | null = null;
  /**
   * Unconfirmed bytes past which the next write carries a ping: for the first ping drawn uniformly in
   * [1/2, 1] × outgoingProbeBytes, after every ping PROBE_SPACING × outgoingProbeBytes. The members of a group receive
   * the same bytes at the same moments, so one threshold for all made them ping in the same turn and answer in one
   * burst of pongs (1,000 pongs read between two deliveries: the fixed-rate bench's p99 doubled); with a drawn first
   * threshold their pings start spread over the range, and equal spacing afterwards keeps them as spread. Drawing every
   * threshold afresh spread them no better and pinged a quarter more often (mean 3/4 of outgoingProbeBytes): each
   * pong is a wakeup on both sides, and the saturated fan-out bench lost ~10% (median 1.09M against 1.21M deliveries/s
   * with fixed spacing, 11 and 8 rounds).
   */
  private probeAfter: number;
  /** False once the owner removed this connection from its totals (closed). */
  private counted = true;
  /** The backlog the owner counted for this connection (see `backlogBytes`). */
  private countedBacklog = 0;
  /**
   * Its requests are held, not served, because the process is over its outgoing budget, or its own backlog with what
   * its running requests may add is over limits.maxOutgoingBytes (backpressure).
   */
  paused = false;
  /**
   * The conversation whose readers are behind (limits.maxDeliveryDelayMs) that this connection published to: while
   * set, it is paused until they are not. null otherwise.
   */
  heldFor: string | null = null;
  /** Its requests are held, not served, because `maxInflightRequests` of them are being served. */
  throttled = false;
  /** Requests of this connection being served (dispatched, not yet answered). */
  inflight = 0;
  /** What those requests' replies may add to its own backlog (a page each), reserved until each is answered, bytes. */
  reserved = 0;

  /** Its backlog with what its running requests' replies may add: what pausing it for its own sake is judged by. */
  owedBytes(): number {
    return this.backlogBytes() + this.reserved;
  }
  /** Bytes of the requests in `held`; past one frame's worth the socket itself stops being read. */
  heldBytes = 0;
  private socketPausedFlag = false;
  /**
   * Its pongs wait unread: set when its socket stops being read, cleared once a pong read after it is read again
   * confirms a position at least `Tracking.pongsHeldUntil` (what was written when it resumed; older pongs queued
   * meanwhile would make it look far behind). Meanwhile its unconfirmed bytes say nothing about how it reads, so the
   * slow-consumer rule and the hard cap judge our memory only.
   */
  private pongsHeld = false;
  /**
   * Requests read while not serving (paused or throttled), in arrival order; served when it serves again. The socket
   * keeps being read (so pongs still confirm positions) until they pass one frame's worth; then it is paused too, and
   * what ws already read of the chunk lands here: bounded by one socket read (64 KiB) plus two frames.
   */
  held: Array<[import('ws').RawData, boolean]> | null = null;
  readonly requests: TokenBucket;

  constructor(
    readonly id: string,
    readonly userId: string,
    readonly userName: string,
    /** Token expiry in ms since the epoch, or null for none. */
    readonly expiresAt: number | null,
    readonly ws: WebSocket,
    private readonly socket: Socket,
    readonly owner: ConnectionOwner,
    private readonly scheduler: WriteScheduler,
    private readonly limits: ConnectionLimits,
    now: number,
  ) {
    this.requests = new TokenBucket(limits.connectionRate.perSecond, limits.connectionRate.burst, now);
    this.probeAfter = drawProbeThreshold(limits.outgoingProbeBytes);
  }

  /** The connection's tracking state, allocated on first use (see `track`). */
  private tracking(): Tracking {
    return (this.track ??= new Tracking());
  }

  /** Neither paused nor throttled: its requests are served as they arrive. */
  get serving(): boolean {
    return !this.paused && !this.throttled;
  }

  /** Its socket is not read (TCP backpressure): too many requests held. */
  get socketPaused(): boolean {
    return this.socketPausedFlag;
  }

  pauseSocket(): void {
    if (this.socketPausedFlag) return;
    this.socketPausedFlag = true;
    this.pongsHeld = true;
    this.ws.pause();
    this.recount();
  }

  resumeSocket(): void {
    if (!this.socketPausedFlag) return;
    this.socketPausedFlag = false;
    this.tracking().pongsHeldUntil = this.writtenBytes;
    this.ws.resume();
  }

  get conversations(): ReadonlySet<string> {
    return this.conversationSet ?? NO_CONVERSATIONS;
  }

  addConversation(conversationId: string): void {
    (this.conversationSet ??= new Set()).add(conversationId);
  }

  removeConversation(conversationId: string): void {
    this.conversationSet?.delete(conversationId);
  }

  /** Queue a ready-made frame. Returns false if the connection is closing or was just closed as a slow consumer. */
  send(frame: Buffer): boolean {
    if (this.state !== ConnectionState.Open) return false;
    // While its pongs wait unread, only what a connection holds in our memory can be judged.
    const held = this.pongsHeld ? this.pendingBytes() : this.unconfirmedBytes();
    if (held + frame.length > this.limits.maxOutgoingHardBytes) {
      this.abandon('SLOW_CONSUMER');
      return false;
    }
    this.queue.push(frame);
    this.queuedBytes += frame.length;
    this.markDirty();
    // Counted when queued, not at the end-of-turn flush: requests answered in this turn end their reservations now,
    // and a held request served before the flush must see what their fan-out already added.
    this.recount();
    return true;
  }

  /** Have the scheduler flush this connection at the end of the turn (once per turn). */
  private markDirty(): void {
    if (this.marked) return;
    this.marked = true;
    this.scheduler.mark(this);
  }

  sendText(text: string): boolean {
    return this.send(frameText(text));
  }

  reply(id: string | number, result: unknown): void {
    this.sendText(JSON.stringify({ id, result }));
  }

  replyError(id: string | number | null, error: unknown): ErrorBody {
    const body: ErrorBody = isParleyError(error)
      ? error.toBody()
      : { code: 'INTERNAL', message: errorCatalogue.INTERNAL.message, temporary: true };
    this.sendText(JSON.stringify({ id, error: body }));
    return body;
  }

  flush(): void {
    this.marked = false;
    const queue = this.queue;
    const track = this.track;
    const trailing = track !== null && track.trailingProbe;
    if (trailing) track.trailingProbe = false;
    const probedBytes = track === null ? 0 : track.probedBytes;
    if (queue.length === 0 && !(trailing && this.writtenBytes > probedBytes)) return;
    if (this.socket.destroyed) return;
    const bytes = this.queuedBytes;
    const wantsProbe = this.writtenBytes + bytes - this.confirmedBytes > this.probeAfter;
    const now = this.scheduler.now;
    // Time-spaced, and also every outgoingProbeBytes / 2 written, inside one large write too: a reader taking a burst
    // slowly confirms progress as it goes. With pings 4 × outgoingProbeBytes apart (and a write's first one counted
    // from its own start, so up to twice that), readers of a held group taking 30 KB/s confirmed nothing for 9 s and
    // were closed 4002 while still reading (outside check).
    const spacing = probeSpacing(this.limits.outgoingProbeBytes);
    const probeDue =
      wantsProbe && (track === null || now - track.sentAt >= this.limits.outgoingProbeMs || this.writtenBytes + bytes - probedBytes >= spacing);
    if (queue.length === 0 && !probeDue) return wantsProbe ? this.trail() : undefined;
    this.queuedBytes = 0;
    if (probeDue) {
      this.writeWithPings(queue, now, spacing);
    } else {
      this.writtenBytes += bytes;
      this.socket.write(queue.length === 1 ? queue[0] : Buffer.concat(queue, bytes));
      // Too soon for another ping: the sweep sends one after the burst if no write carries one before.
      if (wantsProbe) this.trail();
    }
    queue.length = 0;
    this.recount();
    if (this.unconfirmedBytes() > this.limits.maxOutgoingBytes && this.track?.backlogTimer == null) this.watchBacklog();
  }

  /**
   * Write `queue` as one write (no extra syscall) with a position ping at its end, and also after every `spacing` bytes
   * of frames: one large write (a group commit's worth of big events) then carries pings along its length, so a reader
   * taking it slowly confirms progress within it. A newer ping supersedes an unanswered one.
   */
  private writeWithPings(queue: Buffer[], now: number, spacing: number): void {
    const parts: Buffer[] = [];
    const track = this.tracking();
    // Counted from the last ping, not from this write's start: the bytes written since it are unconfirmed too.
    let sincePing = this.writtenBytes - track.probedBytes;
    for (const frame of queue) {
      parts.push(frame);
      this.writtenBytes += frame.length;
      sincePing += frame.length;
      if (sincePing >= spacing) {
        parts.push(framePing(this.pingPayload(track, this.writtenBytes, now)));
        sincePing = 0;
      }
    }
    if (sincePing > 0 || parts.length === 0) parts.push(framePing(this.pingPayload(track, this.writtenBytes, now)));
    track.sentAt = now;
    track.probedBytes = this.writtenBytes;
    this.probeAfter = Math.floor(this.limits.outgoingProbeBytes * PROBE_SPACING);
    this.socket.write(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
  }

  /** Ask the scheduler's sweep for a ping after this burst (once per connection while it waits). */
  private trail(): void {
    const track = this.tracking();
    if (track.trailScheduled) return;
    track.trailScheduled = true;
    this.scheduler.trail(this);
  }

  /** The scheduler's sweep: bytes written since the last ping get a ping of their own (in the next flush, when due). */
  probeTrailing(): void {
    const track = this.tracking();
    track.trailScheduled = false;
    if (this.state !== ConnectionState.Open || this.writtenBytes === track.probedBytes) return;
    track.trailingProbe = true;
    this.markDirty();
  }

  /**
   * Tell the owner how this connection's backlog changed since it last counted it. Called on every write and
   * confirmation; the owner also calls it while the connection's pongs wait unread, since then the backlog is what our
   * socket buffer holds, which shrinks as the kernel takes it without any event of ours.
   */
  recount(): void {
    if (!this.counted) return;
    const backlog = this.backlogBytes();
    if (backlog === this.countedBacklog) return;
    // It starts owing now: the time it may take to confirm runs from here (see stalledMs).
    if (this.countedBacklog === 0) this.tracking().progressAt = Date.now();
    this.owner.backlogChanged(backlog - this.countedBacklog);
    this.countedBacklog = backlog;
  }

  /**
   * The payload of a position ping: the position, then a random suffix the peer cannot guess, so that only a peer that
   * read the ping (and so everything before it) can answer it. Remembered until answered or superseded.
   */
  private pingPayload(track: Tracking, position: number, now: number): string {
    const payload = `${position}.${randomSuffix()}`;
    const outstanding = track.outstanding;
    // Past the bound, the ping closest to its neighbours is forgotten (never the oldest or the newest): the rest cover
    // the whole backlog as evenly as they can. Dropping the oldest left a reader far behind (pings every
    // outgoingProbeMs, each covering little) without a ping it could answer: it confirmed nothing for seconds while
    // reading and was closed 4002; forgetting every other one made the oldest stretch sparsest, right where it reads.
    const count = outstanding.push([payload, position, now, position - this.confirmedBytes]);
    if (count === 1 && this.counted) this.owner.unansweredChanged(1);
    // forgetClosest keeps the first and the last: never empties the list.
    if (count > this.maxOutstandingPings()) forgetClosest(outstanding);
    return payload;
  }

  /**
   * The rate the peer reads at, measured from its pongs over windows of at least READ_RATE_WINDOW_MS in which bytes
   * waited for it all along (it was behind at the pong that opened the window): a reader idle for want of data says
   * nothing about how fast it reads, and pongs that arrive together (one socket read) say nothing about time.
   */
  private measureReadRate(track: Tracking, position: number, now: number): void {
    const wasBehind = track.behindAtPong;
    track.behindAtPong = this.writtenBytes - position > this.probeAfter;
    if (wasBehind && now - track.rateFromAt < READ_RATE_WINDOW_MS) return;
    if (wasBehind) {
      const rate = (position - track.rateFromBytes) / (now - track.rateFromAt);
      track.readRate = track.readRate === 0 ? rate : (track.readRate + rate) / 2;
    }
    track.rateFromAt = now;
    track.rateFromBytes = position;
  }

  /**
   * How long (ms) the peer has left its oldest position ping unanswered: bytes written that long ago are unread, a
   * measured fact where `delayMs` also estimates. 0 with none unanswered and while its pongs wait unread.
   */
  unreadForMs(now: number): number {
    const oldest = this.track?.outstanding[0];
    return oldest === undefined || this.pongsHeld ? 0 : now - oldest[2];
  }

  /**
   * How far behind the peer reads (ms): how long what is written to it now will wait before it is read. The most of:
   * - the age of its oldest unanswered position ping (how long ago the server wrote bytes it has not read yet);
   * - a bound from that ping: the peer has not read the bytes that were unconfirmed when it went out in all that
   *   time, so it reads slower than they were per ms, and what was written since takes it at least that long. This
   *   sees a reader fall behind within one round trip, before its rate can be measured (without it, a publisher
   *   put 3 MB per reader in flight in the first second to readers taking 100 KB/s);
   * - its unconfirmed bytes at the rate it read while bytes waited for it (measured between its pongs).
   * 0 with no ping unanswered and no more than its ping threshold unconfirmed (up to `outgoingProbeBytes`: that much in
   * flight is not seen as delay), and while its pongs wait unread (its lag cannot be seen then).
   */
  delayMs(now: number): number {
    const track = this.track;
    if (this.pongsHeld || track === null) return 0;
    const waiting = this.unreadForMs(now);
    const oldest = track.outstanding[0];
    const bound = oldest !== undefined && waiting > 0 && oldest[3] > 0 ? ((this.writtenBytes + this.queuedBytes - oldest[1]) * waiting) / oldest[3] : 0;
    // Only past the ping threshold: those bytes are sure to get a ping, so their projection ends once they are read.
    // Below it nothing may ever confirm them (no ping is due), and a projection of them could hold publishers forever.
    const unconfirmed = this.unconfirmedBytes();
    const projected = track.readRate > 0 && unconfirmed > this.probeAfter ? unconfirmed / track.readRate : 0;
    return Math.max(waiting, bound, projected);
  }

  /** One per outgoingProbeBytes of a backlog at the hard cap (264 at the defaults): kept evenly, they confirm progress often. */
  private maxOutstandingPings(): number {
    return Math.ceil(this.limits.maxOutgoingHardBytes / Math.max(1, this.limits.outgoingProbeBytes)) + 8;
  }

  /**
   * A pong arrived: if it echoes one of our outstanding position pings, the peer has read up to that ping's position.
   * Anything else confirms nothing: pongs to heartbeat pings (no payload), unsolicited pongs, made-up positions.
   */
  confirm(payload: Buffer): void {
    const track = this.track;
    if (payload.length === 0 || track === null || track.outstanding.length === 0) return;
    const text = payload.toString('latin1');
    const index = track.outstanding.findIndex((entry) => entry[0] === text);
    if (index < 0) return;
    const position = track.outstanding[index]![1];
    track.outstanding.splice(0, index + 1);
    if (track.outstanding.length === 0 && this.counted) this.owner.unansweredChanged(-1);
    if (position <= this.confirmedBytes) return;
    const now = Date.now();
    this.confirmedBytes = position;
    track.progressAt = now;
    this.measureReadRate(track, position, now);
    if (!this.socketPausedFlag && position >= track.pongsHeldUntil) this.pongsHeld = false;
    this.recount();
  }

  /**
   * How long (ms) the peer has owed bytes without confirming any; 0 while it owes nothing. While its pongs wait unread
   * it cannot confirm: then progress is the kernel taking what our socket buffer holds, seen at each call (the owner
   * calls it every `outgoingProbeMs` while it holds requests).
   */
  stalledMs(now: number): number {
    if (this.backlogBytes() === 0) return 0;
    const track = this.tracking();
    if (this.pongsHeld) {
      const position = this.writtenBytes - this.socket.writableLength;
      if (position !== track.progressMark) {
        track.progressMark = position;
        track.progressAt = now;
      }
    } else track.progressMark = -1;
    if (track.progressAt === 0) track.progressAt = now;
    return now - track.progressAt;
  }

  /** Bytes written and not yet confirmed by the peer, plus those queued this turn. */
  unconfirmedBytes(): number {
    return this.writtenBytes - this.confirmedBytes + this.queuedBytes;
  }

  /**
   * Bytes queued or written and not yet confirmed, beyond the `outgoingProbeBytes` a reading client may have in
   * flight: what the process-wide budget counts. Bytes past the allowance are always covered by pings (see `flush`), so this backlog
   * shrinks as soon as the peer reads. While its pongs wait unread (its socket is not read, or was not until a pong
   * confirmed a position written since), confirmations cannot come: then it is what our socket buffer holds (the
   * memory it costs us) beyond the allowance, so that holding a publisher's requests never freezes its count.
   */
  backlogBytes(): number {
    const outstanding = (this.pongsHeld ? this.socket.writableLength : this.writtenBytes - this.confirmedBytes) + this.queuedBytes;
    return Math.max(0, outstanding - this.limits.outgoingProbeBytes);
  }

  /** Remove this connection from the owner's totals (once, when it closes); returns the backlog it had counted. */
  uncount(): number {
    if (!this.counted) return 0;
    this.counted = false;
    if (this.track !== null && this.track.outstanding.length > 0) this.owner.unansweredChanged(-1);
    return this.countedBacklog;
  }

  /** Bytes queued this turn and not yet written to the socket. */
  get queuedByteCount(): number {
    return this.queuedBytes;
  }

  /** Bytes written to the socket and not yet accepted by the kernel. */
  get socketBufferedBytes(): number {
    return this.socket.writableLength;
  }

  /** Bytes handed to this connection and not yet accepted by the kernel. */
  pendingBytes(): number {
    return this.socket.writableLength + this.queuedBytes;
  }

  private watchBacklog(): void {
    const track = this.tracking();
    track.confirmedSample = this.confirmedBytes;
    // A shared function with the connection as its argument: a bound arrow per connection cost 64 bytes on each idle one.
    track.backlogTimer = setTimeout(checkBacklogOf, this.limits.slowConsumerMs, this);
    track.backlogTimer.unref();
  }

  /** The slow-consumer timer fired (see watchBacklog). */
  checkBacklog(): void {
    const track = this.tracking();
    track.backlogTimer = null;
    if (this.state !== ConnectionState.Open || this.socket.destroyed) return;
    const pending = this.unconfirmedBytes();
    if (pending <= this.limits.maxOutgoingBytes) return;
    // Still above the limit: a reader that confirmed progress in the window gets another one, one that did not is
    // closed. A connection whose pongs wait unread (backpressure on a publisher) is not judged: it cannot confirm.
    if (this.confirmedBytes === track.confirmedSample && !this.pongsHeld) {
      this.abandon('SLOW_CONSUMER');
      return;
    }
    this.watchBacklog();
  }

  /** Write what is queued, then close with a catalogued code. */
  close(name: CloseName): void {
    if (this.state !== ConnectionState.Open) return;
    const track = this.track;
    if (track !== null && track.backlogTimer !== null) {
      clearTimeout(track.backlogTimer);
      track.backlogTimer = null;
    }
    this.owner.countClose(name);
    this.flush();
    this.state = ConnectionState.Closing;
    const { code, reason } = closeCatalogue[name];
    this.ws.close(code, reason);
    // A peer that never answers the close handshake must not hold the socket for ws's 30 s default.
    setTimeout(() => this.ws.terminate(), 2000).unref();
  }

  /** Drop what is queued (the peer is not reading it) and close. */
  abandon(name: CloseName): void {
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.close(name);
    // Out of the process-wide budget at once, not when its socket ends (up to 2 s later, behind its backlog): closing
    // slow readers is what frees the budget, and counting them meanwhile held every publisher those 2 s.
    if (this.counted) this.owner.backlogChanged(-this.uncount());
  }
}

/**
 * What a connection's position pings and slow-consumer check track (see Connection.track). Every field is set here, so
 * all instances share one shape; times and rates start as -0, a double (see Connection.pingSentAt).
 */
class Tracking {
  /** When the last position ping was written (ms since the epoch); 0 before the first. */
  sentAt = -0;
  /** The position the last ping carried. */
  probedBytes = 0;
  /** The scheduler's sweep will call `probeTrailing` (the connection is in its set). */
  trailScheduled = false;
  /** The next flush writes a ping even with nothing queued (set by the sweep). */
  trailingProbe = false;
  /**
   * Pings not yet answered, oldest first, as [payload, position, sent at (ms since the epoch), bytes unconfirmed when
   * sent]; at most `maxOutstandingPings()`: past it the one closest to its neighbours is forgotten, so they span the
   * whole backlog evenly. Only these payloads confirm anything: a pong the server did not ask for, or a made-up
   * position, cannot pass for reading.
   */
  readonly outstanding: Array<[string, number, number, number]> = [];
  /** Whether bytes still waited for the peer at its latest confirming pong (see measureReadRate). */
  behindAtPong = false;
  /** Where and when (ms since the epoch) the current read-rate window began. */
  rateFromAt = -0;
  rateFromBytes = 0;
  /** The rate the peer read at while bytes waited for it (bytes per ms, averaged over its pongs); 0 until measured. */
  readRate = -0;
  /** See Connection.pongsHeld: the position a pong must confirm to end it (what was written when the socket resumed). */
  pongsHeldUntil = 0;
  /**
   * Since when it has owed bytes without confirming any (ms since the epoch; see `stalledMs`): set when its backlog
   * becomes non-zero and at each confirmation of a newer position.
   */
  progressAt = -0;
  /** While its pongs wait unread: the position the kernel had taken at the last stall check (see `stalledMs`). */
  progressMark = -1;
  /** The confirmed position when the armed backlog check started its window. */
  confirmedSample = 0;
  backlogTimer: ReturnType<typeof setTimeout> | null = null;
}

function checkBacklogOf(connection: Connection): void {
  connection.checkBacklog();
}

/** The most bytes written between two position pings (see Connection.flush). */
function probeSpacing(outgoingProbeBytes: number): number {
  return Math.max(1, Math.floor(outgoingProbeBytes / 2));
}

/**
 * Unconfirmed bytes, as a share of `outgoingProbeBytes`, past which a write carries a ping after the first (see
 * Connection.probeAfter): the rest of the allowance is the margin a keeping-up reader's pong has to come back in before
 * its bytes count as backlog.
 */
const PROBE_SPACING = 0.9;

/** A connection's first ping threshold, uniformly in [1/2, 1] × `outgoingProbeBytes` (see Connection.probeAfter). */
function drawProbeThreshold(outgoingProbeBytes: number): number {
  return Math.floor(outgoingProbeBytes * (0.5 + Math.random() / 2));
}

/**
 * Forget the unanswered ping whose neighbours are closest together (by position), never the first or the last: what
 * is left covers the backlog as evenly as it can. O(n) over at most maxOutstandingPings entries, once per ping past it.
 */
export function forgetClosest(outstanding: Array<[string, number, number, number]>): void {
  let forget = 1;
  let narrowest = Number.POSITIVE_INFINITY;
  for (let i = 1; i < outstanding.length - 1; i++) {
    const span = outstanding[i + 1]![1] - outstanding[i - 1]![1];
    if (span < narrowest) {
      narrowest = span;
      forget = i;
    }
  }
  outstanding.splice(forget, 1);
}

/** Least time (ms) a read rate is measured over (see Connection.measureReadRate). */
const READ_RATE_WINDOW_MS = 250;

let suffixPool = Buffer.alloc(0);
let suffixAt = 0;

/**
 * 8 unguessable characters for a ping payload. Cut from a pool of random bytes refilled every 512 pings: one
 * `randomBytes` call per ping cost about as much as the rest of the ping (a profile at 50,000 deliveries/s).
 */
function randomSuffix(): string {
  if (suffixAt + 6 > suffixPool.length) {
    suffixPool = randomBytes(6 * 512);
    suffixAt = 0;
  }
  suffixAt += 6;
  return suffixPool.toString('base64url', suffixAt - 6, suffixAt);
}
