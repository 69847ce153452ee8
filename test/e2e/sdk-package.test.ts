/**
 * @parley/sdk as a stranger gets it: the tarballs `npm pack` makes of @parley/protocol and @parley/sdk, unpacked into
 * an application folder's node_modules (with `ws`, the SDK's one other dependency, linked from this repository), and
 * imported by name from plain Node processes — no tsx, no path into this repository — that talk to a real server.
 *
 * The README's examples (every ```ts block of packages/sdk/README.md) are type-checked against the packed declarations
 * and run as written; the only change is the server's origin (`http://localhost:8080` → the test server's).
 *
 * PARLEY_TEST_NODE names another Node binary for the application's processes (e.g. a Node 24 one), to try the package
 * on another Node version by hand; the default is the Node running the tests.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import ts from 'typescript';
import { api, register, startServer, type TestServer } from '../helpers/server.js';

const root = new URL('../../', import.meta.url).pathname;
const nodeBin = process.env.PARLEY_TEST_NODE || process.execPath;
/** The accounts the README's examples log in to. */
const ALICE = { username: 'alice', password: 'violet tugboat fifty lantern' };
const BOB = { username: 'bob', password: 'amber walrus ninety kettle' };

interface Packed {
  filename: string;
  files: Array<{ path: string }>;
}

let server: TestServer;
let app: string;
let packed: Map<string, Packed>;
let alice: { id: string; token: string };
let bob: { id: string; token: string };

/** Runs a module of the application folder in a plain Node process; resolves with its output once it exits. */
function runApp(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // A clean environment: in particular no NODE_OPTIONS, so that nothing (such as tsx) is loaded into the process.
    const child = spawn(nodeBin, args, { cwd: app, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += String(d)));
    child.stderr.on('data', (d) => (stderr += String(d)));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function runOk(args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await runApp(args, env);
  assert.equal(r.code, 0, `node ${args.join(' ')} exited with ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return r.stdout;
}

/** The run-time module graph from `entry` (a file of the application's node_modules), as file paths and bare specifiers. */
function moduleGraph(entry: string, conditions: string[]): { files: string[]; bare: string[] } {
  const files = new Set<string>();
  const bare = new Set<string>();
  const visit = (file: string): void => {
    if (files.has(file)) return;
    files.add(file);
    const source = readFileSync(file, 'utf8');
    for (const m of source.matchAll(/(?:^|\n)\s*(?:import|export)\s+(?!type\b)[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s+['"]([^'"]+)['"]/g)) {
      const spec = m[1] ?? m[2] ?? m[3];
      if (spec.startsWith('.')) visit(join(dirname(file), spec));
      else if (spec === '@parley/protocol') visit(packageEntry('@parley/protocol', conditions));
      else bare.add(spec);
    }
  };
  visit(entry);
  return { files: [...files], bare: [...bare] };
}

/** The file a package's `exports["."]` maps to under these conditions (first match in the map's order, as Node does). */
function packageEntry(name: string, conditions: string[]): string {
  const dir = join(app, 'node_modules', name);
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
  let target: unknown = pkg.exports['.'];
  while (target && typeof target === 'object') {
    const entry = Object.entries(target).find(([condition]) => condition === 'default' || conditions.includes(condition));
    assert.ok(entry, `${name}: no export matches ${conditions.join(', ')}`);
    target = entry[1];
  }
  assert.equal(typeof target, 'string');
  return join(dir, target as string);
}

/** The ```ts blocks of the SDK's README, in order. */
function readmeExamples(): string[] {
  const readme = readFileSync(join(root, 'packages/sdk/README.md'), 'utf8');
  return [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
}

before(async () => {
  server = await startServer();
  alice = await register(server, ALICE.username, ALICE.password);
  bob = await register(server, BOB.username, BOB.password);

  app = mkdtempSync(join(tmpdir(), 'parley-sdk-app-'));
  const tarballs = join(app, 'tarballs');
  mkdirSync(tarballs);
  // --ignore-scripts: pack what `npm run build` built (prepack would rebuild dist/ while other test files import it).
  const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tarballs, '-w', '@parley/protocol', '-w', '@parley/sdk'], {
    cwd: root, encoding: 'utf8',
  });
  assert.equal(pack.status, 0, pack.stderr);
  packed = new Map((JSON.parse(pack.stdout) as Array<Packed & { name: string }>).map((p) => [p.name, p]));
  for (const [name, p] of packed) {
    const dir = join(app, 'node_modules', name);
    mkdirSync(dir, { recursive: true });
    const untar = spawnSync('tar', ['-xzf', join(tarballs, p.filename), '-C', dir, '--strip-components=1'], { encoding: 'utf8' });
    assert.equal(untar.status, 0, untar.stderr);
  }
  symlinkSync(join(root, 'node_modules', 'ws'), join(app, 'node_modules', 'ws'));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
});

after(async () => {
  await server?.stop();
  if (app) rmSync(app, { recursive: true, force: true });
});

describe('@parley/sdk as a packed package', () => {
  it('packs built ES modules with their declarations, and nothing from outside the package', () => {
    for (const name of ['@parley/protocol', '@parley/sdk']) {
      const files = packed.get(name)!.files.map((f) => f.path);
      for (const f of files) assert.match(f, /^(dist\/|src\/|README\.md$|package\.json$)/, `${name}: ${f}`);
      assert.ok(files.includes('dist/index.js') && files.includes('dist/index.d.ts'), `${name}: dist/index.js and .d.ts`);
    }
    const sdkFiles = packed.get('@parley/sdk')!.files.map((f) => f.path);
    assert.ok(sdkFiles.includes('dist/node.js') && sdkFiles.includes('dist/node.d.ts'));
    for (const name of ['@parley/protocol', '@parley/sdk']) {
      const dist = join(app, 'node_modules', name, 'dist');
      const { files } = moduleGraph(join(dist, 'index.js'), ['import']);
      for (const f of files) assert.ok(f.startsWith(join(app, 'node_modules')), `${name} reaches ${f}`);
    }
  });

  it('its browser entry (and the default one) imports no Node module: only its own and the protocol\'s', () => {
    for (const conditions of [['browser', 'import'], ['import']]) {
      const entry = packageEntry('@parley/sdk', conditions);
      assert.ok(entry.endsWith('/dist/index.js'), `${conditions.join(',')} → ${entry}`);
      assert.deepEqual(moduleGraph(entry, conditions).bare, [], `bare imports under ${conditions.join(', ')}`);
    }
    // The Node entry is the one that brings ws.
    assert.deepEqual(moduleGraph(packageEntry('@parley/sdk', ['node', 'import']), ['node', 'import']).bare, ['ws']);
  });

  it('is imported by name in a plain Node process, defaults to ws there, and talks to a real server', async () => {
    writeFileSync(join(app, 'connect.mjs'), `
      import { ParleyClient, errorCatalogue } from '@parley/sdk';
      const [url, token, to] = process.argv.slice(2);
      const client = new ParleyClient({ url, token }); // no WebSocket option: the Node entry brings ws
      const welcome = await client.connect();
      const sent = await client.send({ to }, 'from a plain Node process');
      console.log(JSON.stringify({ node: process.version, user: welcome.user.id, seq: sent.seq, conversationId: sent.conversationId,
        catalogue: Object.keys(errorCatalogue).length }));
      client.close();
    `);
    const out = JSON.parse((await runOk(['connect.mjs', server.wsUrl, alice.token, bob.id])).trim()) as {
      node: string; user: string; seq: number; conversationId: string; catalogue: number;
    };
    assert.equal(out.node, spawnSync(nodeBin, ['--version'], { encoding: 'utf8' }).stdout.trim(), 'ran on the Node asked for');
    assert.equal(out.user, alice.id);
    assert.ok(out.catalogue > 0);
    const history = await api(server, bob.token, 'GET', `/api/v1/conversations/${out.conversationId}/messages?after=0`);
    assert.equal(history.status, 200, JSON.stringify(history.body));
    assert.ok(
      (history.body.messages as Array<{ seq: number; text: string }>).some((m) => m.seq === out.seq && m.text === 'from a plain Node process'),
      'bob sees the message',
    );
    // The browser entry leaves the WebSocket to the platform: Node 20 has none, so it asks for one.
    if (!('WebSocket' in globalThis) && nodeBin === process.execPath) {
      writeFileSync(join(app, 'browser-entry.mjs'), `
        import { ParleyClient } from '@parley/sdk';
        try { new ParleyClient({ url: 'ws://localhost/ws', token: 't' }); console.log('constructed'); }
        catch (e) { console.log(e.message); }
      `);
      assert.match(await runOk(['--conditions=browser', 'browser-entry.mjs']), /no global WebSocket/);
    }
  });

  it('runs the README\'s examples as written, type-checked against the packed declarations', async () => {
    const examples = readmeExamples();
    assert.ok(examples.length >= 2, 'the README has its examples');
    const origin = 'http://localhost:8080';
    const paths = examples.map((source, i) => {
      assert.ok(source.includes(origin), `example ${i + 1} talks to ${origin}`);
      const path = join(app, `example-${i + 1}.ts`);
      writeFileSync(path, source.replaceAll(origin, server.url));
      return path;
    });

    const program = ts.createProgram(paths, {
      target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
      lib: ['lib.es2023.d.ts', 'lib.dom.d.ts'], strict: true, noEmit: true, types: ['node'], typeRoots: [join(root, 'node_modules', '@types')],
    });
    const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.formatDiagnostic(d, {
      getCanonicalFileName: (f) => f, getCurrentDirectory: () => app, getNewLine: () => '\n',
    }));
    assert.deepEqual(diagnostics, []);
    for (const path of paths) {
      const js = ts.transpileModule(readFileSync(path, 'utf8'), { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } });
      writeFileSync(path.replace(/\.ts$/, '.mjs'), js.outputText);
    }

    // A browser's localStorage for the page example: Web Storage kept in a file, so that it outlives the process
    // (a page reload is a new process here).
    writeFileSync(join(app, 'local-storage.mjs'), `
      import { existsSync, readFileSync, writeFileSync } from 'node:fs';
      const file = process.env.STORAGE_FILE;
      const items = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
      globalThis.localStorage = {
        getItem: (key) => (key in items ? items[key] : null),
        setItem: (key, value) => { items[key] = String(value); writeFileSync(file, JSON.stringify(items)); },
      };
    `);
    const page = ['--import', './local-storage.mjs', 'example-2.mjs'];
    const storage = { STORAGE_FILE: join(app, 'local-storage.json') };

    // Alice says hello to bob; bob's first visit starts from the newest message, so nothing is "new" yet.
    const sent = await runOk(['example-1.mjs']);
    assert.match(sent, /^connected as alice$/m);
    assert.match(sent, /^stored as #\d+ of /m);
    assert.equal((await runOk(page, storage)).trim(), '0 new');
    // While bob is away alice writes again: the next visit delivers exactly that, once.
    const again = /^stored as #(\d+) of /m.exec(await runOk(['example-1.mjs']))![1];
    assert.equal((await runOk(page, storage)).trim(), `1 new\n#${again} ${alice.id}: hello`);
    assert.equal((await runOk(page, storage)).trim(), '0 new');
    const saved = JSON.parse(readFileSync(storage.STORAGE_FILE, 'utf8')) as Record<string, string>;
    assert.deepEqual(Object.keys(saved), [`parley.positions.${bob.id}`], 'positions are kept per user');
  });
});
