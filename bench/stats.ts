/**
 * Measurement helpers shared by the bench processes.
 *
 * Clock: `monoUs()` is CLOCK_MONOTONIC in microseconds. That clock is system-wide on Linux, so a timestamp taken
 * in the sender process can be compared with one taken in a client process on the same machine (the bench is
 * loopback only). It reads `performance.now()` (cheap, no bigint) plus this process's offset to
 * `process.hrtime` (which is CLOCK_MONOTONIC), measured once at load.
 */
const hrOffsetUs = ((): number => {
  // The first calls of each clock are slow (lazy setup: ~1 ms seen), so sample a few times and keep the last.
  let offset = 0;
  for (let i = 0; i < 5; i++) offset = Number(process.hrtime.bigint()) / 1000 - performance.now() * 1000;
  return offset;
})();

export function monoUs(): number {
  return Math.round(performance.now() * 1000 + hrOffsetUs);
}

/**
 * Latency histogram with bounded size and ~1.6 % relative precision (HDR-style: 64 linear sub-buckets per power of
 * two), in integer microseconds. Mergeable across processes through `toJSON()` / `fromJSON()`.
 */
const SUB_BITS = 6;
const SUB = 1 << SUB_BITS; // 64
const LINEAR = SUB * 2; // values below 128 µs are exact
const MAX_MAGNITUDE = 31; // up to 2^31 µs (~36 min); larger values are clamped
const BUCKETS = LINEAR + (MAX_MAGNITUDE - SUB_BITS) * SUB;

function bucketOf(us: number): number {
  if (us < LINEAR) return us < 0 ? 0 : us | 0;
  if (us >= 2 ** MAX_MAGNITUDE) return BUCKETS - 1;
  const v = us >>> 0;
  const magnitude = 31 - Math.clz32(v); // floor(log2 v), >= 7
  const shift = magnitude - SUB_BITS;
  return LINEAR + (magnitude - SUB_BITS - 1) * SUB + ((v >>> shift) - SUB);
}

/** Middle of a bucket's value range, in µs. */
function valueOf(bucket: number): number {
  if (bucket < LINEAR) return bucket;
  const k = bucket - LINEAR;
  const magnitude = Math.floor(k / SUB) + SUB_BITS + 1;
  const shift = magnitude - SUB_BITS;
  const low = (SUB + (k % SUB)) * 2 ** shift;
  return low + 2 ** shift / 2;
}

export interface HistogramJSON {
  counts: Array<[bucket: number, count: number]>;
  total: number;
  maxUs: number;
}

export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  total = 0;
  maxUs = 0;

  record(us: number): void {
    this.counts[bucketOf(us)]! += 1;
    this.total++;
    if (us > this.maxUs) this.maxUs = us;
  }

  merge(other: LatencyHistogram | HistogramJSON): void {
    const json = other instanceof LatencyHistogram ? other.toJSON() : other;
    for (const [bucket, count] of json.counts) this.counts[bucket]! += count;
    this.total += json.total;
    if (json.maxUs > this.maxUs) this.maxUs = json.maxUs;
  }

  /** Value at quantile q (0..1), in µs; NaN when empty. */
  quantileUs(q: number): number {
    if (this.total === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(valueOf(i), this.maxUs);
    }
    return this.maxUs;
  }

  toJSON(): HistogramJSON {
    const counts: Array<[number, number]> = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i]! > 0) counts.push([i, this.counts[i]!]);
    return { counts, total: this.total, maxUs: this.maxUs };
  }

  static fromJSON(json: HistogramJSON): LatencyHistogram {
    const h = new LatencyHistogram();
    h.merge(json);
    return h;
  }
}

/** Format a number with thousands separators and no decimals. */
export const formatInt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');

export const formatMs = (ms: number, digits = 1): string => (Number.isFinite(ms) ? ms.toFixed(digits) : '-');

/** A plain-text table with right-aligned columns after the first. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** A non-negative number from the environment variable `name`, or `fallback` when it is unset or not one. */
export function envNumber(name: string, fallback: number): number {
  const value = Number(process.env[name]);
  return process.env[name] !== undefined && Number.isFinite(value) && value >= 0 ? value : fallback;
}
