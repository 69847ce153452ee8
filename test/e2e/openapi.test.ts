import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { buildHttpApp, type HttpDeps } from '../../src/http/app.js';
import { RawClient } from '../helpers/raw-client.js';
import { ADMIN_TOKEN, api, register, startServer, type TestServer } from '../helpers/server.js';

const doc = JSON.parse(readFileSync(new URL('../../docs/openapi.json', import.meta.url), 'utf8'));
const methods = ['get', 'post', 'put', 'patch', 'delete'];

/** Every route the HTTP app serves, as `METHOD /path/{param}` (read from fastify's route tree; no handler runs). */
async function servedRoutes(): Promise<string[]> {
  const app = buildHttpApp({ bodyLimit: 1024 } as unknown as HttpDeps);
  await app.ready();
  const tree = app.printRoutes({ commonPrefix: false });
  await app.close();
  const stack: string[] = [];
  const routes: string[] = [];
  for (const line of tree.split('\n')) {
    const match = /^([│ ]*)[├└]── (\S+) \(([^)]+)\)$/.exec(line);
    if (!match) continue;
    const depth = match[1].length / 4;
    stack.length = depth;
    stack.push(match[2]);
    const path = stack.join('').replace(/:([A-Za-z]+)/g, '{$1}');
    for (const method of match[3].split(', ')) if (method !== 'HEAD' && method !== 'OPTIONS') routes.push(`${method} ${path}`);
  }
  return routes;
}

describe('the OpenAPI document (docs/openapi.json)', () => {
  it('documents every route the server serves, and serves every route it documents', async () => {
    const served = await servedRoutes();
    assert.ok(served.length >= 30, `found ${served.length} routes`);
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    assert.deepEqual(served.filter((r) => !documented.includes(r)), [], 'served but not documented');
    assert.deepEqual(documented.filter((r) => !served.includes(r)), [], 'documented but not served');
  });

  it('documents the REST send as it is served: no `to` in the body (the path names the conversation), 200 for a repeat', () => {
    const send = doc.paths['/api/v1/conversations/{conversationId}/messages'].post;
    assert.deepEqual(Object.keys(send.requestBody.content['application/json'].schema.properties).sort(), ['key', 'meta', 'text']);
    assert.deepEqual(send.responses['200'].content, send.responses['201'].content);
  });

  it("gives every route's success body a schema (not a bare object) and every catalogued error status", () => {
    const errorStatuses = Object.keys(doc.components.responses).map((name) => name.replace('Error', ''));
    assert.ok(errorStatuses.includes('400') && errorStatuses.includes('503'));
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      for (const [method, op] of Object.entries(ops)) {
        const success = Object.entries(op.responses as Record<string, any>).filter(([status]) => status.startsWith('2'));
        // One success status, or two where a repeat (the same idempotency key) answers 200 with the original.
        const expected = path === '/api/v1/conversations/{conversationId}/messages' && method === 'post' ? ['200', '201'] : [success[0]?.[0]];
        assert.deepEqual(success.map(([status]) => status), expected, `${method} ${path}`);
        for (const [, response] of success) {
          const content = response.content;
          const schema = content['application/json']?.schema ?? content['text/plain']?.schema;
          assert.ok(schema?.$ref || schema?.oneOf || (content['text/plain'] && schema.type === 'string'), `${method.toUpperCase()} ${path}: success body has no schema: ${JSON.stringify(schema)}`);
        }
        for (const status of errorStatuses) assert.deepEqual(op.responses[status], { $ref: `#/components/responses/Error${status}` }, `${method} ${path} ${status}`);
      }
    }
  });
});

describe('real replies match the documented response schemas', () => {
  let server: TestServer;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  const validated: string[] = [];
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.stop();
  });

  /** Call a route and check the reply against the schema documented for its path template, method and status. */
  async function call(method: string, template: string, path: string, token: string | null, body?: unknown): Promise<any> {
    const res = await api(server, token, method, path, body);
    const documented = doc.paths[template]?.[method.toLowerCase()]?.responses?.[String(res.status)];
    assert.ok(documented, `${method} ${template}: status ${res.status} is not documented (${JSON.stringify(res.body)})`);
    const response = documented.$ref ? doc.components.responses[documented.$ref.split('/').pop()] : documented;
    const schema = response.content['application/json'].schema;
    const validate = ajv.compile({ ...schema, components: doc.components });
    assert.ok(validate(res.body), `${method} ${template} ${res.status}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(res.body)}`);
    validated.push(`${method} ${template} ${res.status}`);
    return res.body;
  }

  it('for accounts, conversations, members, invites, history, read state, presence, admin and health, errors included', async () => {
    const alice = await call('POST', '/api/v1/accounts', '/api/v1/accounts', null, { username: 'openapi-alice', password: 'correct horse battery' });
    const bob = await register(server, 'openapi-bob');
    await call('POST', '/api/v1/sessions', '/api/v1/sessions', null, { username: 'openapi-alice', password: 'correct horse battery' });
    await call('POST', '/api/v1/sessions', '/api/v1/sessions', null, { username: 'openapi-alice', password: 'wrong password!' });
    await call('GET', '/api/v1/me', '/api/v1/me', alice.token);
    await call('GET', '/api/v1/me', '/api/v1/me', null);
    const a = alice.token;
    const { conversation } = await call('POST', '/api/v1/conversations', '/api/v1/conversations', a, { name: 'openapi room' });
    const c = `/api/v1/conversations/${conversation.id}`;
    const client = await RawClient.connect(server.wsUrl, a);
    await client.ok('message.send', { conversationId: conversation.id, key: 'k1', text: 'hello', meta: { kind: 'note' } });
    client.close();
    await call('GET', '/api/v1/conversations', '/api/v1/conversations', a);
    await call('GET', '/api/v1/conversations/{conversationId}', c, a);
    await call('GET', '/api/v1/conversations/{conversationId}', '/api/v1/conversations/no-such-id', a);
    await call('PATCH', '/api/v1/conversations/{conversationId}', c, a, { name: 'renamed room' });
    await call('PATCH', '/api/v1/conversations/{conversationId}', c, a, { name: 42 });
    await call('GET', '/api/v1/conversations/search', '/api/v1/conversations/search?query=renamed', a);
    await call('POST', '/api/v1/direct', '/api/v1/direct', a, { userId: bob.id });
    const { invite } = await call('POST', '/api/v1/conversations/{conversationId}/invites', `${c}/invites`, a, {});
    await call('GET', '/api/v1/conversations/{conversationId}/invites', `${c}/invites`, a);
    await call('POST', '/api/v1/invites/{token}/accept', `/api/v1/invites/${invite.token}/accept`, bob.token);
    await call('PUT', '/api/v1/conversations/{conversationId}/members/{userId}/role', `${c}/members/${bob.id}/role`, a, { role: 'admin' });
    await call('GET', '/api/v1/conversations/{conversationId}/members', `${c}/members`, a);
    await call('GET', '/api/v1/conversations/{conversationId}/messages', `${c}/messages?after=0`, a);
    await call('GET', '/api/v1/conversations/{conversationId}/messages', `${c}/messages`, a);
    await call('POST', '/api/v1/conversations/{conversationId}/read', `${c}/read`, bob.token, { seq: 1 });
    await call('GET', '/api/v1/presence', `/api/v1/presence?userIds=${bob.id}`, a);
    await call('DELETE', '/api/v1/invites/{token}', `/api/v1/invites/${invite.token}`, a);
    await call('DELETE', '/api/v1/conversations/{conversationId}/members/{userId}', `${c}/members/${bob.id}`, a);
    await call('POST', '/api/v1/conversations/{conversationId}/join', `${c}/join`, bob.token);
    await call('POST', '/api/v1/conversations/{conversationId}/leave', `${c}/leave`, bob.token);

    await call('GET', '/api/v1/admin/users', '/api/v1/admin/users', ADMIN_TOKEN);
    await call('GET', '/api/v1/admin/users', '/api/v1/admin/users', a);
    await call('POST', '/api/v1/admin/users', '/api/v1/admin/users', ADMIN_TOKEN, { username: 'openapi-made', password: 'long enough password' });
    await call('POST', '/api/v1/admin/users/{userId}/ban', `/api/v1/admin/users/${bob.id}/ban`, ADMIN_TOKEN);
    await call('POST', '/api/v1/admin/users/{userId}/unban', `/api/v1/admin/users/${bob.id}/unban`, ADMIN_TOKEN);
    await call('POST', '/api/v1/admin/users/{userId}/unban', '/api/v1/admin/users/no-such-user/unban', ADMIN_TOKEN);
    const group = await call('POST', '/api/v1/admin/groups', '/api/v1/admin/groups', ADMIN_TOKEN, { name: 'ops group', ownerId: alice.user.id });
    await call('GET', '/api/v1/admin/conversations', '/api/v1/admin/conversations', ADMIN_TOKEN);
    await call('DELETE', '/api/v1/admin/conversations/{conversationId}', `/api/v1/admin/conversations/${group.conversation.id}`, ADMIN_TOKEN);
    await call('DELETE', '/api/v1/conversations/{conversationId}', c, a);
    await call('GET', '/healthz', '/healthz', null);
    await call('GET', '/readyz', '/readyz', null);
    await call('GET', '/openapi.json', '/openapi.json', null);

    for (const status of ['200', '201', '400', '401', '403', '404']) assert.ok(validated.some((v) => v.endsWith(` ${status}`)), `a ${status} reply was checked`);
  });
});
