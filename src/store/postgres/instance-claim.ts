import { hostname } from 'node:os';
import pg from 'pg';
import { ParleyError } from '../../protocol/errors.js';
import { toParleyError } from './errors.js';

/**
 * Store.claimInstance on PostgreSQL: a session-level advisory lock on one key, held by a connection of its own for the
 * life of the instance. A sole instance takes it exclusively, every other instance shared, so the database itself
 * refuses the second of two sole instances, a sole one beside others, and others beside a sole one, atomically. The
 * lock ends with the session: a crashed instance's connection closes and its claim with it, so nothing stale remains.
 * The session's application_name carries the instance's description, which is how a refusal names the others.
 */
const INSTANCES_LOCK = 1_886_544_236; // an int4 key: pg_locks shows it as objid with classid 0

export class InstanceClaim {
  private constructor(private readonly client: pg.Client) {}

  static async take(url: string, claim: { sole: boolean; description: string }, connectTimeoutMs: number): Promise<InstanceClaim> {
    const client = new pg.Client({
      connectionString: url,
      application_name: `parley ${claim.description} (${hostname()})`.slice(0, 63),
      connectionTimeoutMillis: connectTimeoutMs,
      keepAlive: true,
    });
    // A session that drops ends the claim; the instance goes on (its bus still works) and the pool reports the outage.
    client.on('error', () => {});
    try {
      await client.connect();
      const fn = claim.sole ? 'pg_try_advisory_lock' : 'pg_try_advisory_lock_shared';
      const { rows } = await client.query<{ taken: boolean }>(`SELECT ${fn}($1::int) AS taken`, [INSTANCES_LOCK]);
      if (rows[0]?.taken) return new InstanceClaim(client);
      const holders = await client.query<{ name: string; mode: string }>(
        `SELECT a.application_name AS name, l.mode FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = $1 AND l.granted AND l.pid <> pg_backend_pid()`,
        [INSTANCES_LOCK]);
      const others = holders.rows.map((h) => `${h.name}${h.mode === 'ExclusiveLock' ? ', sole' : ''}`);
      throw new ParleyError('CONFLICT', `other instances use this store: ${others.join('; ') || 'unknown'}`, { others });
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err instanceof ParleyError ? err : toParleyError(err);
    }
  }

  async release(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }
}
