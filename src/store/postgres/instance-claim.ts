import { hostname } from 'node:os';
import pg from 'pg';
import { ParleyError } from '../../protocol/errors.js';
import { type InstanceClaimRequest, differingSettings } from '../store.js';
import { toParleyError } from './errors.js';

/**
 * Store.claimInstance on PostgreSQL: a session-level advisory lock on one key, held by a connection of its own for the
 * life of the instance. A sole instance takes it exclusively, every other instance shared, so the database itself
 * refuses the second of two sole instances, a sole one beside others, and others beside a sole one, atomically. The
 * lock ends with the session: a crashed instance's connection closes and its claim with it, so nothing stale remains.
 * A session that ends while the instance runs (a PostgreSQL restart or failover ends every session) is taken again
 * every `retakeMs` until it holds; `onLost` reports each loss and each refusal meanwhile. The session's
 * application_name carries the instance's description, which is how a refusal names the others.
 */
const INSTANCES_LOCK = 1_886_544_236; // an int4 key: pg_locks shows it as objid with classid 0

export interface InstanceClaimOptions {
  url: string;
  connectTimeoutMs: number;
  /** Between attempts to take the claim again after its session ended, ms. @default 1000 */
  retakeMs?: number;
  /** The claim's session ended, or taking it again failed (the error says why). */
  onLost?: (error: unknown) => void;
}

export class InstanceClaim {
  private client: pg.Client | null = null;
  private released = false;
  private retakeTimer: NodeJS.Timeout | null = null;

  private constructor(
    private readonly claim: InstanceClaimRequest,
    private readonly options: InstanceClaimOptions,
  ) {}

  static async take(claim: InstanceClaimRequest, options: InstanceClaimOptions): Promise<InstanceClaim> {
    const instance = new InstanceClaim(claim, options);
    await instance.lock();
    return instance;
  }

  /** One attempt: connect, try the lock; CONFLICT naming the holders when another instance excludes this one. */
  private async lock(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.options.url,
      // The settings fingerprint first, where the 63-character limit cannot cut it: `parley s:<fingerprint> …`.
      application_name: `parley ${this.claim.settings ? `s:${this.claim.settings} ` : ''}${this.claim.description} (${hostname()})`.slice(0, 63),
      connectionTimeoutMillis: this.options.connectTimeoutMs,
      keepAlive: true,
    });
    // Without a listener a dropped session would crash the process; its end is handled below.
    client.on('error', () => {});
    try {
      await client.connect();
      const fn = this.claim.sole ? 'pg_try_advisory_lock' : 'pg_try_advisory_lock_shared';
      const { rows } = await client.query<{ taken: boolean }>(`SELECT ${fn}($1::int) AS taken`, [INSTANCES_LOCK]);
      const holders = async () => (await client.query<{ name: string; mode: string }>(
        `SELECT a.application_name AS name, l.mode FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = $1 AND l.granted AND l.pid <> pg_backend_pid()
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
        [INSTANCES_LOCK])).rows;
      if (!rows[0]?.taken) {
        const others = (await holders()).map((h) => `${h.name}${h.mode === 'ExclusiveLock' ? ', sole' : ''}`);
        throw new ParleyError('CONFLICT', `other instances use this store: ${others.join('; ') || 'unknown'}`, { others });
      }
      if (this.claim.settings !== undefined) {
        const others = await holders();
        const otherSettings = differingSettings(this.claim.settings, others.map((h) => /^parley s:(\w+) /.exec(h.name)?.[1] ?? null));
        if (otherSettings.length > 0) {
          const names = others.map((h) => h.name);
          throw new ParleyError('CONFLICT', `instances with other settings use this store: ${names.join('; ')}`, { others: names, settingsDiffer: true, otherSettings });
        }
      }
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err instanceof ParleyError ? err : toParleyError(err);
    }
    this.client = client;
    client.once('end', () => this.lost(new Error('the session holding the instance claim ended')));
  }

  private lost(error: unknown): void {
    this.client = null;
    if (this.released) return;
    this.options.onLost?.(error);
    this.retakeTimer = setTimeout(() => {
      this.retakeTimer = null;
      if (this.released) return;
      this.lock().catch((err: unknown) => this.lost(err));
    }, this.options.retakeMs ?? 1000);
    this.retakeTimer.unref();
  }

  async release(): Promise<void> {
    this.released = true;
    if (this.retakeTimer) clearTimeout(this.retakeTimer);
    await this.client?.end().catch(() => undefined);
    this.client = null;
  }
}
