import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { DecodePool } from '../../src/pki/index.ts';
import { opensslPfx } from '../fixtures/pfx.ts';
import { highIterationSpec } from '../fixtures/pki/pfx-cases.ts';

// A decode must never freeze the process: the operator's event loop also serves watches,
// leases and health probes. Decoding runs in the decode sandbox's worker threads; these
// tests show it structurally (the pool ran every task in a worker) and by the event loop,
// comparing its longest pause with the decode's own length rather than with a fixed number
// of milliseconds, so a slow or busy machine stretches both sides alike: a decode on this
// thread would give one pause as long as itself; in a worker, the loop keeps turning.

interface Turns {
  readonly count: number;
  readonly longestPause: number;
  readonly elapsed: number;
}

async function eventLoopTurnsDuring(work: () => Promise<unknown>): Promise<Turns> {
  const stamps: number[] = [performance.now()];
  const timer = setInterval(() => stamps.push(performance.now()), 5);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  stamps.push(performance.now());
  const pauses = stamps.slice(1).map((stamp, index) => stamp - stamps[index]!);
  return { count: stamps.length - 2, longestPause: Math.max(...pauses), elapsed: stamps.at(-1)! - stamps[0]! };
}

function assertResponsive(turns: Turns): void {
  const detail = `${turns.count} turns; longest pause ${turns.longestPause.toFixed(1)} ms of ${turns.elapsed.toFixed(1)} ms`;
  assert.ok(turns.count >= 3, `the event loop hardly turned: ${detail}`);
  assert.ok(turns.longestPause < turns.elapsed / 2, `one pause took most of the decode: ${detail}`);
}

describe('decoding keeps the event loop turning', () => {
  const pool = new DecodePool();
  after(() => pool.close());

  test('a PFX with 600,000 iterations (-iter 600000, MAC included)', async () => {
    const fixture = await opensslPfx(highIterationSpec);
    let subject = '';
    const before = pool.stats().tasksCompleted;
    const turns = await eventLoopTurnsDuring(async () => {
      subject = (await pool.decode({ kind: 'pfx', pfx: fixture.bytes, password: fixture.password })).facts.subject;
    });
    assert.equal(subject, fixture.leaf.expected.subject);
    assert.equal(pool.stats().tasksCompleted, before + 1, 'the decode ran in a worker');
    assertResponsive(turns);
  });

  test('200 legacy PFX files decoded at once', async () => {
    const fixture = await opensslPfx({ name: 'pfx-legacy-rc2-3des-sha1', opensslArgs: ['-legacy'] });
    const before = pool.stats().tasksCompleted;
    const turns = await eventLoopTurnsDuring(() =>
      Promise.all(Array.from({ length: 200 }, () => pool.decode({ kind: 'pfx', pfx: fixture.bytes, password: fixture.password }))),
    );
    assert.equal(pool.stats().tasksCompleted, before + 200, 'every decode ran in a worker');
    assertResponsive(turns);
  });
});
