/**
 * Free space on the disk of the SQLite file, as readiness sees it. A store can only find out that a write does not
 * fit by failing it: on a nearly full disk the server's tiny probe write still fits, and with nobody writing, /readyz
 * would answer 200 until the first message is refused. So below `minFreeBytes` the store counts as not ready: a load
 * balancer sends traffic elsewhere and the operator is told (a warn line on crossing, a gauge) before messages fail.
 */
import { statfsSync } from 'node:fs';

export interface DiskSpaceHooks {
  /** The free bytes each time they are read (for a gauge). */
  onMeasured?(freeBytes: number): void;
  /** The free space went below the minimum (`low`), or back above it. */
  onLowChange?(low: boolean, freeBytes: number): void;
}

export class DiskSpace {
  private low = false;

  constructor(
    /** A folder on the disk to watch: the SQLite file's. */
    private readonly folder: string,
    private readonly minFreeBytes: number,
    private readonly hooks: DiskSpaceHooks = {},
  ) {}

  /** Bytes an unprivileged process may still write on the disk (null when the system cannot say). */
  freeBytes(): number | null {
    try {
      const { bavail, bsize } = statfsSync(this.folder);
      return Number(bavail) * Number(bsize);
    } catch {
      return null;
    }
  }

  /** Why the store is not ready for lack of space, or null; tells the hooks what changed. */
  check(): string | null {
    const free = this.freeBytes();
    if (free === null) return null;
    this.hooks.onMeasured?.(free);
    const low = free < this.minFreeBytes;
    if (low !== this.low) {
      this.low = low;
      this.hooks.onLowChange?.(low, free);
    }
    return low ? `only ${formatBytes(free)} free on the disk of the store, below store.sqlite.minFreeBytes (${formatBytes(this.minFreeBytes)})` : null;
  }
}

function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} B`;
}
