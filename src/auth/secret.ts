import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const FILE = 'secret';

/**
 * The server's own HS256 secret: read from `<dataDir>/secret`, or created there (32 random bytes, base64url, mode 0600)
 * on first start. Safe when several processes start at once: the file appears atomically and all of them read the
 * same secret.
 */
export async function loadOrCreateSecret(dataDir: string): Promise<string> {
  const file = join(dataDir, FILE);
  const existing = await readSecret(file);
  if (existing !== undefined) return existing;

  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const secret = randomBytes(32).toString('base64url');
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, secret + '\n', { mode: 0o600, flag: 'wx' });
  try {
    await link(tmp, file); // atomic; fails if another process got there first
    return secret;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const theirs = await readSecret(file);
    if (theirs === undefined) throw new Error(`${file} vanished while being created`);
    return theirs;
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

async function readSecret(file: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const secret = text.trim();
  if (secret.length < 32) throw new Error(`${file} holds no usable secret (expected at least 32 characters); delete it to generate a new one`);
  return secret;
}

/** The secret for the server's own tokens: `auth.accounts.secret` when configured, else the generated one. */
export async function resolveOwnSecret(config: { dataDir: string; auth: { accounts: { secret?: string } } }): Promise<string> {
  return config.auth.accounts.secret ?? loadOrCreateSecret(config.dataDir);
}
