import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { createLogger } from '../../src/log.ts';
import { parseCoreLimit, turnOffCoreDumps, type CoreDumpIo } from '../../src/server/core-dumps.ts';

// The start-up check of RLIMIT_CORE in the controller and the agent, with /proc and
// prlimit replaced by scripted answers. The image's own entrypoint is proven on the node
// (test/node/product.test.ts reads /proc/<pid>/limits of the running agent and HAProxy).

const header = 'Limit                     Soft Limit           Hard Limit           Units     \n';
const limits = (soft: string, hard: string): string =>
  `${header}Max cpu time              unlimited            unlimited            seconds   \nMax core file size        ${soft.padEnd(20)} ${hard.padEnd(20)} bytes     \nMax open files            1048576              1048576              files     \n`;

function capturedLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger({ level: 'debug', destination }), lines };
}

/** /proc that answers `before` until prlimit runs, then `after` (or prlimit fails with `failure`). */
function scripted(before: string, after: string | undefined, failure?: string): CoreDumpIo & { calls: number } {
  let current = before;
  const io = {
    calls: 0,
    readLimits: async () => current,
    turnOff: async () => {
      io.calls++;
      if (failure !== undefined) throw new Error(failure);
      if (after !== undefined) current = after;
    },
  };
  return io;
}

describe('parseCoreLimit', () => {
  const cases: Array<[string, string, ReturnType<typeof parseCoreLimit>]> = [
    ['both zero', limits('0', '0'), { soft: 0, hard: 0 }],
    ['soft zero, hard unlimited', limits('0', 'unlimited'), { soft: 0, hard: Infinity }],
    ['bytes', limits('1048576', '2097152'), { soft: 1048576, hard: 2097152 }],
    ['no such line', header, undefined],
    ['not a number', limits('lots', '0'), undefined],
  ];
  for (const [name, text, expected] of cases) test(name, () => assert.deepEqual(parseCoreLimit(text), expected));

  test('reads this machine’s /proc/self/limits, where there is one', { skip: process.platform !== 'linux' }, () => {
    assert.ok(parseCoreLimit(readFileSync('/proc/self/limits', 'utf8')));
  });
});

describe('turnOffCoreDumps', () => {
  test('already off (the image’s prlimit): nothing to do, nothing said', async () => {
    const { logger, lines } = capturedLogger();
    const io = scripted(limits('0', '0'), undefined);
    assert.equal(await turnOffCoreDumps(logger, io), 'off');
    assert.equal(io.calls, 0);
    assert.deepEqual(lines, []);
  });

  test('soft 0 but hard unlimited is not off: a child may raise its soft limit to the hard one, so both are lowered', async () => {
    const { logger, lines } = capturedLogger();
    const io = scripted(limits('0', 'unlimited'), limits('0', '0'));
    assert.equal(await turnOffCoreDumps(logger, io), 'turned-off');
    assert.equal(io.calls, 1);
    assert.deepEqual(
      lines.map((l) => [l.level, l.rlimitCore]),
      [['info', { soft: 0, hard: 'unlimited' }]],
    );
  });

  test('on, and prlimit cannot lower it: a warning that says what to do', async () => {
    const { logger, lines } = capturedLogger();
    const io = scripted(limits('unlimited', 'unlimited'), undefined, 'spawn prlimit ENOENT');
    assert.equal(await turnOffCoreDumps(logger, io), 'on');
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.level, 'warn');
    assert.deepEqual(lines[0]!.rlimitCore, { soft: 'unlimited', hard: 'unlimited' });
    assert.equal(lines[0]!.error, 'spawn prlimit ENOENT');
    assert.match(String(lines[0]!.msg), /prlimit --core=0/);
  });

  test('no /proc (not Linux): unknown, said at debug only', async () => {
    const { logger, lines } = capturedLogger();
    const io: CoreDumpIo = { readLimits: () => Promise.reject(new Error('ENOENT')), turnOff: () => Promise.reject(new Error('unused')) };
    assert.equal(await turnOffCoreDumps(logger, io), 'unknown');
    assert.deepEqual(
      lines.map((l) => l.level),
      ['debug'],
    );
  });

  test('the real prlimit on this process, where there is one: afterwards /proc/self/limits says 0 and 0', { skip: process.platform !== 'linux' }, async () => {
    const { logger } = capturedLogger();
    const outcome = await turnOffCoreDumps(logger);
    assert.ok(outcome === 'off' || outcome === 'turned-off', outcome);
    assert.deepEqual(parseCoreLimit(readFileSync('/proc/self/limits', 'utf8')), { soft: 0, hard: 0 });
  });
});
