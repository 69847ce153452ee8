import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';

/**
 * The folder tree is the architecture, and these are its import rules (docs/architecture.md): the protocol imports
 * nothing of Parley, the domain knows no transport, SQL or engine, the seams' engines are chosen only by the
 * composition root, and the SDK sees only the protocol package.
 */
const root = new URL('../../', import.meta.url).pathname;

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(join(root, path)).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

function importsOf(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1] ?? m[2]);
}

/** Imports of `file` resolved to repository paths (relative ones) or package names. */
function resolvedImports(file: string): string[] {
  return importsOf(file).map((spec) => (spec.startsWith('.') ? relative(root, join(root, file, '..', spec)) : spec));
}

function violations(dir: string, forbidden: (target: string) => boolean): string[] {
  return sourceFiles(dir).flatMap((file) => resolvedImports(file).filter(forbidden).map((target) => `${file} → ${target}`));
}

/** The seams; every folder inside one is an engine (sqlite, memory, postgres, redis…): found, not listed by hand. */
const SEAMS = ['store', 'bus', 'presence', 'ratelimit'];
const engineFolders = SEAMS.flatMap((seam) =>
  readdirSync(join(root, 'src', seam)).filter((name) => statSync(join(root, 'src', seam, name)).isDirectory()).map((name) => `src/${seam}/${name}/`),
);
const isEngine = (path: string): boolean => engineFolders.some((folder) => path.startsWith(folder));
/** Packages that speak to an engine or a transport: never imported by the domain. */
const ENGINE_PACKAGES = /^(ws|better-sqlite3|fastify|@fastify\/|pg|pg-|postgres|ioredis|redis|@redis\/|nats|@nats-io\/|kafkajs|@confluentinc\/)/;

describe('layering', () => {
  it('protocol imports nothing of Parley but itself', () => {
    assert.deepEqual(violations('src/protocol', (t) => t.startsWith('src/') && !t.startsWith('src/protocol/')), []);
  });

  it('domain imports only the protocol, the seam interfaces and its own modules: no transport, SQL or engine', () => {
    const allowed = /^src\/(protocol\/|domain\/|config\/schema|store\/store|bus\/bus|bus\/envelope|presence\/presence|ratelimit\/limiter)/;
    assert.deepEqual(violations('src/domain', (t) => (t.startsWith('src/') && !allowed.test(t)) || ENGINE_PACKAGES.test(t)), []);
  });

  it('only the composition root imports concrete engines', () => {
    assert.ok(engineFolders.includes('src/store/sqlite/') && engineFolders.includes('src/bus/memory/'), `engine folders found: ${engineFolders}`);
    const outside = sourceFiles('src').filter((f) => f !== 'src/main.ts' && !isEngine(f));
    const bad = outside.flatMap((file) => resolvedImports(file).filter(isEngine).map((t) => `${file} → ${t}`));
    assert.deepEqual(bad, []);
  });

  it('an engine imports no other engine (each stands alone behind its seam)', () => {
    const bad = engineFolders.flatMap((folder) =>
      sourceFiles(folder.slice(0, -1)).flatMap((file) => resolvedImports(file).filter((t) => isEngine(t) && !t.startsWith(folder)).map((t) => `${file} → ${t}`)),
    );
    assert.deepEqual(bad, []);
  });

  it('the gateway reads no store: only the domain, the protocol, auth, the bus and rate-limit seams and shared HTTP plumbing', () => {
    const allowed = /^src\/(gateway\/|domain\/|protocol\/|auth\/|bus\/bus|bus\/envelope|ratelimit\/limiter|ratelimit\/token-bucket|http\/metrics|http\/connection-guard)/;
    assert.deepEqual(violations('src/gateway', (t) => t.startsWith('src/') && !allowed.test(t)), []);
  });

  it('src/redis/ (the Redis client setup the Redis engines share) is imported only by Redis engines and the composition root', () => {
    const redisEngine = (file: string) => engineFolders.some((folder) => folder.endsWith('/redis/') && file.startsWith(folder));
    const outside = sourceFiles('src').filter((f) => f !== 'src/main.ts' && !f.startsWith('src/redis/') && !redisEngine(f));
    const bad = outside.flatMap((file) => resolvedImports(file).filter((t) => t.startsWith('src/redis/')).map((t) => `${file} → ${t}`));
    assert.deepEqual(bad, []);
  });

  it('engines do not import the domain, the gateway or the HTTP layer', () => {
    for (const dir of ['src/store', 'src/bus', 'src/presence', 'src/ratelimit', 'src/redis']) {
      assert.deepEqual(violations(dir, (t) => /^src\/(domain|gateway|http)\//.test(t)), [], dir);
    }
  });

  it('the protocol package imports nothing: not Parley, not a library', () => {
    assert.deepEqual(violations('packages/protocol/src', (t) => !t.startsWith('packages/protocol/src/')), []);
  });

  it('the SDK imports only its own modules, the protocol package and (its Node entry only) ws: nothing outside the package', () => {
    const allowed = (file: string, t: string) =>
      t.startsWith('packages/sdk/src/') || t === '@parley/protocol' || (file === 'packages/sdk/src/node.ts' && t === 'ws');
    const bad = sourceFiles('packages/sdk/src').flatMap((file) => resolvedImports(file).filter((t) => !allowed(file, t)).map((t) => `${file} → ${t}`));
    assert.deepEqual(bad, []);
  });
});
