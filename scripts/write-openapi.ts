// Writes docs/openapi.json from the server's route table and schemas (test/e2e/operations.test.ts holds them equal).
import { writeFileSync } from 'node:fs';
import { buildOpenApi } from '../src/http/openapi.js';

writeFileSync(new URL('../docs/openapi.json', import.meta.url), `${JSON.stringify(buildOpenApi(), null, 2)}\n`);
