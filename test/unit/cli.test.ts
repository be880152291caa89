import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { commandNames, runCli } from '../../src/cli.ts';
import { captureIo } from '../support/captured-io.ts';

// Every command runs in one shape, (argv, io) → exit code, and writes only through its io:
// a test that captures the io sees all of it, and the process's own streams see nothing.

/** What any command's usage begins with; a stray copy on the process's streams gives it away. */
const usageHead = 'Usage: mtls-egress';

/**
 * Runs `fn` while counting what reaches process.stdout and process.stderr that looks like a
 * usage. The writes still go through: the test runner reports on the same streams.
 */
async function strayUsage(fn: () => Promise<void>): Promise<string[]> {
  const stray: string[] = [];
  const streams = [process.stdout, process.stderr];
  const originals = streams.map((stream) => stream.write);
  streams.forEach((stream, i) => {
    const original = originals[i]!;
    stream.write = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]): boolean {
      const text = typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) || chunk instanceof Uint8Array ? Buffer.from(chunk).toString('utf8') : '';
      if (text.includes(usageHead)) stray.push(text);
      return (original as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof stream.write;
  });
  try {
    await fn();
  } finally {
    streams.forEach((stream, i) => (stream.write = originals[i]!));
  }
  return stray;
}

describe('mtls-egress: the command table', () => {
  test('lists the five commands', () => {
    assert.deepEqual([...commandNames].sort(), ['agent', 'controller', 'inspect', 'render', 'validate']);
  });

  for (const name of commandNames) {
    for (const flag of ['--help', '-h']) {
      test(`${name} ${flag} writes its usage to the io it is given, exit 0, and nothing to the process's streams`, async () => {
        const run = captureIo();
        let code: number | undefined;
        const stray = await strayUsage(async () => {
          code = await runCli([name, flag], run.io);
        });
        assert.equal(code, 0, run.stderr);
        assert.ok(run.stdout.startsWith(`${usageHead} ${name} `), run.stdout);
        assert.equal(run.stderr, '');
        assert.deepEqual(stray, []);
      });
    }

    test(`${name} with an unknown flag says so on the io's stderr with the usage, exit 2`, async () => {
      const run = captureIo();
      let code: number | undefined;
      const stray = await strayUsage(async () => {
        code = await runCli([name, '--no-such-flag'], run.io);
      });
      assert.equal(code, 2);
      assert.match(run.stderr, new RegExp(`^mtls-egress ${name}: .*--no-such-flag.*\\n\\n${usageHead} ${name} `, 's'));
      assert.equal(run.stdout, '');
      assert.deepEqual(stray, []);
    });
  }

  test('the overview names both data planes where a command serves either', async () => {
    const run = captureIo();
    assert.equal(await runCli(['--help'], run.io), 0);
    const line = (name: string): string => run.stdout.split('\n').find((l) => l.trimStart().startsWith(`${name} `)) ?? '';
    for (const name of ['agent', 'render']) assert.match(line(name), /nginx or HAProxy/, line(name));
  });
});
