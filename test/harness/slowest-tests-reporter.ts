// A node:test reporter that prints the slowest tests at the end of a run, beside the spec
// reporter: slowness shows up in every `npm test` before it turns into flakiness.
//
//   node --test --test-reporter=spec --test-reporter-destination=stdout \
//        --test-reporter=./test/harness/slowest-tests-reporter.ts --test-reporter-destination=stdout

import { relative } from 'node:path';

interface TestEventData {
  name: string;
  file?: string;
  nesting: number;
  details: { duration_ms: number; type?: 'suite' | 'test' };
}

const shown = Number(process.env.MTLS_EGRESS_SLOWEST_TESTS ?? 10);

export default async function* slowestTests(source: AsyncIterable<{ type: string; data: unknown }>): AsyncGenerator<string> {
  const durations: Array<{ name: string; file: string; ms: number; failed: boolean }> = [];
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const data = event.data as TestEventData;
    // Suites are the sum of their tests, and a file's top level is the whole file.
    if (data.details.type === 'suite' || data.file === undefined) continue;
    durations.push({ name: data.name, file: relative(process.cwd(), data.file), ms: data.details.duration_ms, failed: event.type === 'test:fail' });
  }
  if (durations.length === 0 || shown <= 0) return;
  const slowest = durations.sort((a, b) => b.ms - a.ms).slice(0, shown);
  const width = Math.max(...slowest.map((d) => (d.ms / 1000).toFixed(2).length));
  yield `\nℹ the ${slowest.length} slowest of ${durations.length} tests:\n`;
  for (const d of slowest) yield `ℹ   ${(d.ms / 1000).toFixed(2).padStart(width)} s  ${d.file}: ${d.name}${d.failed ? ' (failed)' : ''}\n`;
}
