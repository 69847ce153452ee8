/**
 * Preload for profiling a server process whose command line we do not control (`--cpu-prof` is refused in
 * NODE_OPTIONS): `BENCH_PARLEY_NODE_OPTIONS="--import=<abs path>/bench/cpu-profile.mjs"`. Samples every 100 µs and
 * writes `parley-<pid>.cpuprofile` to $BENCH_CPU_PROF_DIR (default the OS temp folder) when the process exits.
 * The in-process inspector session answers synchronously, so the exit handler can collect the profile.
 */
import { writeFileSync } from 'node:fs';
import inspector from 'node:inspector';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const session = new inspector.Session();
session.connect();
session.post('Profiler.enable');
session.post('Profiler.setSamplingInterval', { interval: 100 });
session.post('Profiler.start');
process.once('exit', () => {
  session.post('Profiler.stop', (error, result) => {
    if (error) return;
    const file = join(process.env.BENCH_CPU_PROF_DIR || tmpdir(), `parley-${process.pid}.cpuprofile`);
    writeFileSync(file, JSON.stringify(result.profile));
  });
});
