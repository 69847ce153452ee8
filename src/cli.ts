#!/usr/bin/env node
/**
 * The `parley` command. This entry only turns on Node's on-disk compile cache (Node 22.1+: loading the modules is
 * most of a start, and a restarted server should open its port as soon as it can), then loads the commands; static
 * imports would all be compiled before the cache is on.
 */
import module from 'node:module';

(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();
await import('./commands.js');
