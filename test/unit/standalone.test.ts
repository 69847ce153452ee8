import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';

/**
 * The project's documents and sources stand alone: nothing points to a file outside the repository (a sibling folder
 * of notes, a path on one machine). Figures a document needs are written into the repository's own docs.
 */
const root = new URL('../../', import.meta.url).pathname;
const skipped = new Set(['node_modules', '.git', 'dist', 'data']);

function files(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((name) => {
    // package.json's scripts `cd` before their relative paths; the lock file holds registry names only.
    if (skipped.has(name) || name === 'package-lock.json' || name === 'package.json') return [];
    const path = join(dir, name);
    if (statSync(join(root, path)).isDirectory()) return files(path);
    return /\.(ts|mjs|js|md|json|sh|ya?ml)$/.test(name) || name === 'run' ? [path] : [];
  });
}

describe('the repository stands alone', () => {
  it('no file names a path outside the repository', () => {
    const outside: string[] = [];
    for (const file of files('.')) {
      const text = readFileSync(join(root, file), 'utf8');
      for (const [line, content] of text.split('\n').entries()) {
        // Relative paths climbing out of the repository, and absolute paths of the machine it was written on.
        for (const match of content.matchAll(/(?:\.\.\/)+[\w.-]+|\/work\/[\w.-]+|\/home\/[\w.-]+/g)) {
          if (match[0].startsWith('/')) {
            outside.push(`${file}:${line + 1}: ${match[0]}`);
            continue;
          }
          // A relative path must stay inside and name something the repository has (dist/ is built by `npm run build`).
          const target = relative(root, resolve(dirname(join(root, file)), match[0]));
          const exists = existsSync(join(root, target)) || existsSync(join(root, target.replace(/\.js$/, '.ts')));
          if (target.startsWith('..') || (!exists && !target.startsWith('dist'))) outside.push(`${file}:${line + 1}: ${match[0]}`);
        }
      }
    }
    assert.deepEqual(outside, []);
  });
});
