import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * Liveness of the processes registered in the `instances` table (migration 007). A SQLite file is used by processes
 * of one machine, so a registration is alive while its process is: the pid exists and, where the OS says when a
 * process started (Linux /proc), it started when the registration says (a reused pid, or a container's pid 1 after a
 * restart, is another process).
 */
export interface InstanceRow {
  id: string;
  host: string;
  pid: number;
  pid_started: string;
  sole: number;
  description: string;
  since: number;
}

/** This process as a registration sees it. */
export function thisProcess(): { host: string; pid: number; pidStarted: string } {
  return { host: hostname(), pid: process.pid, pidStarted: processStarted(process.pid) };
}

/** Whether the registration's process still runs (registrations of another host are taken as alive). */
export function isAlive(row: InstanceRow, host = hostname()): boolean {
  if (row.host !== host) return true;
  try {
    process.kill(row.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  return row.pid_started === '' || processStarted(row.pid) === row.pid_started;
}

/** When the process started, in clock ticks since boot (/proc/<pid>/stat, field 22), or '' where unknown. */
function processStarted(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}
