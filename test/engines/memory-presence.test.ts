import { createMemoryPresence } from '../../src/presence/memory/memory-presence.js';
import { runPresenceContract } from './presence.contract.js';

runPresenceContract('memory', async (ttlMs) => createMemoryPresence({ ttlMs }));
