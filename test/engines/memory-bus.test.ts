import { createMemoryBus, createMemoryBusHub } from '../../src/bus/memory/memory-bus.js';
import { runBusContract } from './bus.contract.js';

runBusContract('memory', async () => {
  const hub = createMemoryBusHub();
  const a = createMemoryBus({ hub });
  const b = createMemoryBus({ hub });
  return {
    a,
    b,
    async close() {
      await a.close();
      await b.close();
    },
  };
});
