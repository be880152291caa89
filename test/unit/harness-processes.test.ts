import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';

// The harness's one spawner, as a bench uses it: a script whose last step awaits a
// component's exit, with nothing else keeping its event loop alive. The component's
// output pipes close before its exit event arrives; an unref'd child then let the script
// end at that moment with the await unsettled (exit code 13, "unsettled top-level await").

const spawner = new URL('../harness/processes.ts', import.meta.url).pathname;
const script = `
import { spawnComponent } from ${JSON.stringify(spawner)};
const lines = [];
const component = spawnComponent({
  name: 'component',
  binary: process.execPath,
  // The handler first, then the line: a SIGTERM sent on 'serving' must find it installed.
  args: ['-e', "process.on('SIGTERM', () => setTimeout(() => process.exit(0), 50)); console.log('serving'); setInterval(() => {}, 1000)"],
  onOutputLine: (line) => lines.push(line),
  killOnExit: true,
});
while (!lines.includes('serving')) await new Promise((resolve) => setTimeout(resolve, 10));
component.child.kill('SIGTERM');
console.log('component exited with', await component.exitCode);
`;

test('a script that stops a component and awaits its exit sees the exit', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { timeout: 30_000 });
  assert.match(stdout, /component exited with 0/);
});
