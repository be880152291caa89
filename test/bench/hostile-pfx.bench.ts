// npm run bench:hostile-pfx — every hostile class (test/fixtures/hostile/generate.ts) through
// the decode sandbox, each beside 20 good files, as a tenant's Secret would reach the
// controller. Per class: the time to its reason, the process's peak RSS (workers
// included), the longest event-loop block, and the time until all 20 good files decoded.
// Goals: peak RSS ≤ 512 MB, longest block < 50 ms, the 20 good files < 5 s. Then what the
// real-world corpus uses of each decode limit. Prints figures; asserts nothing.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { DecodePool, defaultDecodeLimits, type BudgetUse } from '../../src/pki/index.ts';
import { FIXTURE_PASSWORD, opensslPfx } from '../fixtures/pfx.ts';
import { hostileCases } from '../fixtures/hostile/generate.ts';
import { sharedDirectory } from '../support/shared-corpus.ts';

const MB = 1024 * 1024;
const GOOD_FILES = 20;

console.log(`Node ${process.version}; decode limits ${JSON.stringify(defaultDecodeLimits)}`);
process.stdout.write('building the cases ... ');
let started = performance.now();
const cases = await hostileCases();
const good = await Promise.all(Array.from({ length: GOOD_FILES }, (_, i) => opensslPfx({ name: `pfx-bench-good-${i}` })));
console.log(`${((performance.now() - started) / 1000).toFixed(1)} s\n`);

const pool = new DecodePool();
// Warm the pool, so the first class does not pay for starting workers.
await Promise.all(good.slice(0, 2).map((fixture) => pool.decode({ kind: 'pfx', pfx: fixture.bytes, password: FIXTURE_PASSWORD })));

console.log(
  `RSS with the cases built and ${pool.stats().workersStarted} workers running: ${(process.memoryUsage().rss / MB).toFixed(0)} MB (the cases' own buffers are most of it)\n`,
);
console.log(
  `${'class'.padEnd(42)} ${'outcome'.padEnd(22)} ${'to reason'.padStart(10)} ${'peak RSS'.padStart(9)} ${'max block'.padStart(10)} ${'20 good'.padStart(9)}`,
);
let worst = { rss: 0, block: 0, good: 0 };
for (const hostile of cases) {
  let peakRss = process.memoryUsage().rss;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 2);
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  started = performance.now();
  const hostileDone = pool.decode(hostile.request).then(
    () => ({ outcome: 'decoded', ms: performance.now() - started }),
    (error: { reason?: string; code?: string }) => ({ outcome: error.reason ?? error.code ?? 'error', ms: performance.now() - started }),
  );
  const goodDone = Promise.all(good.map((fixture) => pool.decode({ kind: 'pfx', pfx: fixture.bytes, password: FIXTURE_PASSWORD }))).then(
    () => performance.now() - started,
  );
  const [result, goodMs] = await Promise.all([hostileDone, goodDone]);
  histogram.disable();
  clearInterval(sampler);
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  const blockMs = histogram.max / 1e6;
  worst = { rss: Math.max(worst.rss, peakRss), block: Math.max(worst.block, blockMs), good: Math.max(worst.good, goodMs) };
  console.log(
    `${hostile.name.padEnd(42)} ${result.outcome.padEnd(22)} ${`${result.ms.toFixed(1)} ms`.padStart(10)} ${`${(peakRss / MB).toFixed(0)} MB`.padStart(9)} ${`${blockMs.toFixed(1)} ms`.padStart(10)} ${`${goodMs.toFixed(0)} ms`.padStart(9)}`,
  );
}
console.log(
  `\nworst over all classes: peak RSS ${(worst.rss / MB).toFixed(0)} MB (goal ≤ 512), longest event-loop block ${worst.block.toFixed(1)} ms (goal < 50), 20 good files ${(worst.good / 1000).toFixed(2)} s (goal < 5)`,
);

// What the real-world corpus uses of each limit: the margin the limits leave.
const corpus = join(sharedDirectory, 'pfx-corpus');
if (existsSync(join(corpus, 'manifest.tsv'))) {
  const rows = readFileSync(join(corpus, 'manifest.tsv'), 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => line.split('\t'));
  const most = new Map<keyof BudgetUse, { value: number; id: string }>();
  await Promise.all(
    rows.map(async ([id, file, , , password]) => {
      const passwordFile = join(corpus, 'pw', `${id!.replaceAll('/', '__')}.pw`);
      const bytes = password === 'none' ? undefined : existsSync(passwordFile) ? readFileSync(passwordFile) : new Uint8Array(0);
      await pool
        .decode(
          { kind: 'pfx', pfx: readFileSync(join(corpus, file!)), password: bytes },
          {
            onBudgetUse: (use) => {
              for (const [measure, value] of Object.entries(use) as [keyof BudgetUse, number][]) {
                if (value > (most.get(measure)?.value ?? -1)) most.set(measure, { value, id: id! });
              }
            },
          },
        )
        .catch(() => {});
    }),
  );
  console.log(`\nthe corpus (${rows.length} files) uses at most:`);
  for (const [measure, { value, id }] of most) console.log(`  ${measure.padEnd(18)} ${value.toLocaleString('en-US').padStart(10)}  (${id})`);
} else {
  console.log(`\nthe corpus is not at ${corpus} (it lives beside the repository): its margins are left out`);
}
await pool.close();
