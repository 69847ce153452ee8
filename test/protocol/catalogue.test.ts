/**
 * Holds docs/protocol.md equal to the protocol code, and the SDK's error and close handling to the same catalogues:
 * - the error table equals errorCatalogue (codes, temporary, HTTP status);
 * - the close-code table equals closeCatalogue (codes, names, reconnect);
 * - every request type has a "### `type`" section under "## Requests" (with a JSON example), and no other exists;
 * - every event has a "### `event`" section under "## Events" (with a JSON example), and no other exists;
 * - the SDK re-exports the protocol's catalogues, hard-codes no code that disagrees, and reconnects exactly when
 *   closeCatalogue says so.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { closeCatalogue, shouldReconnect } from '@parley/protocol';
import { errorCatalogue, type ErrorCode } from '../../src/protocol/errors.js';
import { eventNames } from '../../src/protocol/events.js';
import { requestSchemas, requestTypes } from '../../src/protocol/requests.js';
import * as sdk from '../../packages/sdk/src/index.js';
import { SYNC_BATCH } from '../../packages/sdk/src/sync.js';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const doc = readFileSync(join(root, 'docs', 'protocol.md'), 'utf8');
const lines = doc.split(/\r?\n/);

/** The rows of the table whose header line is exactly `header`, as trimmed cells. */
function table(header: string): string[][] {
  const start = lines.findIndex((l) => l.trim() === header);
  assert.ok(start >= 0, `docs/protocol.md has no table with the header "${header}"`);
  assert.equal(lines.filter((l) => l.trim() === header).length, 1, `exactly one table with the header "${header}"`);
  assert.match(lines[start + 1] ?? '', /^\|(\s*:?-{3,}:?\s*\|)+\s*$/, `a separator row follows "${header}"`);
  const rows: string[][] = [];
  for (let i = start + 2; i < lines.length && lines[i].trim().startsWith('|'); i++) {
    const cells = lines[i].trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim());
    rows.push(cells);
  }
  return rows;
}

const yesNo = (cell: string, where: string): boolean => {
  assert.ok(cell === 'yes' || cell === 'no', `${where}: expected yes or no, got "${cell}"`);
  return cell === 'yes';
};

/** `### \`name\`` headings grouped by the `## ` section they are in. */
function sections(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let h2 = '';
  let inFence = false;
  for (const line of lines) {
    if (line.startsWith('```')) inFence = !inFence;
    if (inFence) continue;
    const h2m = /^##\s+(.+?)\s*$/.exec(line);
    if (h2m && !line.startsWith('###')) {
      h2 = h2m[1];
      continue;
    }
    if (line.startsWith('### ')) {
      const list = out.get(h2) ?? [];
      list.push(line.slice(4).trim());
      out.set(h2, list);
    }
  }
  return out;
}

/** The body of the `### \`name\`` section inside the `## parent` section. */
function sectionBody(parent: string, name: string): string {
  const parentStart = lines.findIndex((l) => l.trim() === `## ${parent}`);
  const heading = `### \`${name}\``;
  const start = lines.findIndex((l, i) => i > parentStart && l.trim() === heading);
  assert.ok(start > parentStart, `no ${heading} in ## ${parent}`);
  let end = start + 1;
  while (end < lines.length && !/^#{2,3}\s/.test(lines[end])) end++;
  return lines.slice(start + 1, end).join('\n');
}

describe('docs/protocol.md matches the protocol code', () => {
  it('the error table equals errorCatalogue', () => {
    const rows = table('| code | temporary | HTTP status | meaning |');
    const documented: Record<string, { temporary: boolean; status: number }> = {};
    for (const [code, temporary, status, meaning] of rows) {
      const m = /^`([A-Z_]+)`$/.exec(code);
      assert.ok(m, `error code cell must be a backticked code: ${code}`);
      assert.ok(!(m[1] in documented), `${m[1]} is listed twice`);
      assert.ok(meaning && meaning.length > 0, `${m[1]} has a meaning`);
      assert.match(status, /^\d{3}$/, `${m[1]}: HTTP status`);
      documented[m[1]] = { temporary: yesNo(temporary, m[1]), status: Number(status) };
    }
    const expected = Object.fromEntries(
      Object.entries(errorCatalogue).map(([code, e]) => [code, { temporary: e.temporary, status: e.status }]),
    );
    assert.deepEqual(documented, expected);
    assert.deepEqual(Object.keys(documented), Object.keys(errorCatalogue), 'rows are in catalogue order');
  });

  it('the close-code table equals closeCatalogue', () => {
    const rows = table('| close code | name | reconnect | meaning |');
    const documented: Record<string, { code: number; reconnect: boolean }> = {};
    for (const [code, name, reconnect, meaning] of rows) {
      assert.match(code, /^\d{4}$/, `close code cell: ${code}`);
      assert.match(name, /^[A-Z_]+$/, `name cell: ${name}`);
      assert.ok(!(name in documented), `${name} is listed twice`);
      assert.ok(meaning && meaning.length > 0, `${name} has a meaning`);
      documented[name] = { code: Number(code), reconnect: yesNo(reconnect, name) };
    }
    const expected = Object.fromEntries(
      Object.entries(closeCatalogue).map(([name, c]) => [name, { code: c.code, reconnect: c.reconnect }]),
    );
    assert.deepEqual(documented, expected);
  });

  it('closeCatalogue agrees with the reconnect ranges of shouldReconnect', () => {
    for (const [name, c] of Object.entries(closeCatalogue)) {
      assert.equal(shouldReconnect(c.code), c.reconnect, `${name} (${c.code})`);
      assert.equal(c.reconnect, c.code < 4500, `${name}: 4000–4499 reconnect, 4500–4999 do not`);
    }
    const codes = Object.values(closeCatalogue).map((c) => c.code);
    assert.equal(new Set(codes).size, codes.length, 'close codes are unique');
  });

  it('every request type has exactly one section under ## Requests, with a JSON example, and no other', () => {
    const headings = sections().get('Requests') ?? [];
    const names = headings.map((h) => {
      const m = /^`([a-z.]+)`$/.exec(h);
      assert.ok(m, `every heading under ## Requests names a request type in backticks: "${h}"`);
      return m[1];
    });
    assert.equal(new Set(names).size, names.length, 'no request is documented twice');
    assert.deepEqual([...names].sort(), [...requestTypes].sort());
    for (const type of requestTypes) {
      const body = sectionBody('Requests', type);
      assert.match(body, /```json/, `${type} has a JSON example`);
      assert.ok(body.includes(`"type": "${type}"`), `${type}'s example sends "type": "${type}"`);
      assert.match(body, /"result"/, `${type}'s example shows a result`);
    }
  });

  it('every request field of every schema is named in its section', () => {
    for (const type of requestTypes) {
      const schema = requestSchemas[type] as unknown as { shape?: Record<string, unknown>; _zod?: { def?: { in?: { shape?: Record<string, unknown> } } } };
      // message.send is refined: its object schema sits inside the pipe.
      const shape = schema.shape ?? schema._zod?.def?.in?.shape;
      assert.ok(shape, `${type}: cannot read the schema's fields`);
      const body = sectionBody('Requests', type);
      for (const field of Object.keys(shape)) assert.ok(body.includes(`\`${field}\``), `${type}: field \`${field}\` is documented`);
    }
  });

  it('every event has exactly one section under ## Events, with a JSON example, and no other', () => {
    const headings = sections().get('Events') ?? [];
    const names = headings.map((h) => {
      const m = /^`([a-z.]+)`$/.exec(h);
      assert.ok(m, `every heading under ## Events names an event in backticks: "${h}"`);
      return m[1];
    });
    assert.equal(new Set(names).size, names.length, 'no event is documented twice');
    assert.deepEqual([...names].sort(), [...eventNames].sort());
    for (const name of eventNames) {
      assert.ok(sectionBody('Events', name).includes(`"event": "${name}"`), `${name} has a JSON example`);
    }
  });

  it('no backticked ### section exists outside ## Requests and ## Events', () => {
    for (const [h2, headings] of sections()) {
      if (h2 === 'Requests' || h2 === 'Events') continue;
      for (const h of headings) assert.ok(!h.startsWith('`'), `"### ${h}" under "## ${h2}" looks like an undocumented request or event section`);
    }
  });

  it('the data shapes have sections', () => {
    const shapes = sections().get('Data shapes') ?? [];
    for (const shape of ['Message', 'Conversation', 'MyConversation', 'Member', 'Invite', 'PresenceInfo']) {
      assert.ok(shapes.includes(shape), `### ${shape} under ## Data shapes`);
    }
  });
});

describe('the SDK uses the protocol catalogues', () => {
  it('re-exports the catalogues and shouldReconnect themselves, not copies', () => {
    assert.equal(sdk.errorCatalogue, errorCatalogue);
    assert.equal(sdk.closeCatalogue, closeCatalogue);
    assert.equal(sdk.shouldReconnect, shouldReconnect);
    assert.equal(sdk.eventNames, eventNames);
  });

  it('classifies every server code as the catalogue does', () => {
    for (const [code, e] of Object.entries(errorCatalogue)) {
      assert.equal(sdk.isTemporary(code), e.temporary, code);
      const err = sdk.errorFromBody({ code: code as ErrorCode, message: 'x' });
      assert.equal(err.code, code);
      assert.equal(err.temporary, e.temporary, `${code}: a body without "temporary" falls back to the catalogue`);
      assert.equal(new sdk.ParleyClientError(code).message, e.message);
    }
    // The server's own word wins over the catalogue.
    assert.equal(sdk.errorFromBody({ code: 'INTERNAL', message: 'x', temporary: false }).temporary, false);
  });

  it('local codes never disagree with server codes of the same name', () => {
    for (const [code, local] of Object.entries(sdk.localErrorCatalogue)) {
      if (code in errorCatalogue) assert.equal(local.temporary, errorCatalogue[code as ErrorCode].temporary, `${code}`);
      assert.equal(sdk.isTemporary(code), local.temporary);
    }
  });

  it('names every catalogued close code', () => {
    for (const [name, c] of Object.entries(closeCatalogue)) assert.equal(sdk.closeNameOf(c.code), name);
    assert.equal(sdk.closeNameOf(1000), undefined);
  });

  it('hard-codes no Parley close code or unknown error code in its source', () => {
    const dir = join(root, 'packages', 'sdk', 'src');
    // HTTP methods (the accounts REST helper) are the only other upper-case words the SDK's code may quote.
    const httpMethods = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];
    const known = new Set([...Object.keys(errorCatalogue), ...Object.keys(sdk.localErrorCatalogue), ...Object.keys(closeCatalogue), ...httpMethods]);
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      const code = readFileSync(join(dir, file), 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/\/\/.*$/gm, '');
      const literals = code.match(/\b4\d{3}\b/g) ?? [];
      assert.deepEqual(literals, [], `${file}: close codes come from closeCatalogue, not literals`);
      for (const m of code.matchAll(/'([A-Z][A-Z_]{2,})'/g)) {
        assert.ok(known.has(m[1]), `${file}: '${m[1]}' is neither a catalogued error/close code nor a local SDK code`);
      }
    }
  });

  it('sends the version and token subprotocols the server expects', () => {
    assert.deepEqual(sdk.subprotocols('abc.def.ghi'), [`${sdk.SUBPROTOCOL_PREFIX}${sdk.CURRENT_VERSION}`, `${sdk.TOKEN_SUBPROTOCOL_PREFIX}abc.def.ghi`]);
    assert.deepEqual(sdk.subprotocols('t'), ['parley.v1', 'bearer.t']);
  });

  it('batches sync requests at the schema maximum', () => {
    const batch = (n: number) => ({ conversations: Array.from({ length: n }, (_, i) => ({ conversationId: `c${i}`, afterSeq: 0 })) });
    assert.equal(requestSchemas.sync.safeParse(batch(SYNC_BATCH)).success, true);
    assert.equal(requestSchemas.sync.safeParse(batch(SYNC_BATCH + 1)).success, false);
  });

  it('reconnects after exactly the close codes closeCatalogue marks "reconnect"', async () => {
    class Fake implements sdk.WebSocketLike {
      static last: Fake | null = null;
      readyState = 0;
      protocol = '';
      onopen: ((ev: unknown) => void) | null = null;
      onmessage: ((ev: { data: unknown }) => void) | null = null;
      onclose: ((ev: { code: number; reason: string }) => void) | null = null;
      onerror: ((ev: unknown) => void) | null = null;
      constructor() {
        Fake.last = this;
      }
      send(): void {}
      close(): void {}
    }
    for (const [name, c] of Object.entries(closeCatalogue)) {
      Fake.last = null;
      // A token function: a fixed string is not retried after 4004 (it cannot be refreshed), whatever the catalogue says.
      const client = new sdk.ParleyClient({ url: 'ws://x/ws', token: () => 't', WebSocket: Fake, backoff: { initialMs: 1000, maxMs: 1000 } });
      const seen: sdk.DisconnectInfo[] = [];
      client.on('disconnect', (d) => seen.push(d));
      const connecting = client.connect().catch((e: unknown) => e);
      await new Promise((r) => setTimeout(r, 0));
      assert.ok(Fake.last, 'a socket was created');
      (Fake.last as Fake).onclose?.({ code: c.code, reason: name });
      assert.deepEqual(seen, [{ code: c.code, reason: name, willReconnect: c.reconnect }], name);
      assert.equal(client.state, c.reconnect ? 'reconnecting' : 'closed', name);
      client.close();
      const outcome = await connecting;
      assert.ok(outcome instanceof sdk.ParleyClientError);
      assert.equal(outcome.code, 'CLOSED');
      if (!c.reconnect) assert.equal(outcome.closeName, name);
    }
  });
});
