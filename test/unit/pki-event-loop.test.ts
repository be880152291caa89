import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodePfx } from '../../src/pki/index.ts';
import { opensslPfx } from '../fixtures/pfx.ts';
import { highIterationSpec } from '../fixtures/pki/pfx-cases.ts';

// A decode must never freeze the process: the operator's event loop also serves watches,
// leases and health probes. These tests compare the event loop's longest pause with the
// decode's own length rather than with a fixed number of milliseconds, so a slow or busy
// machine stretches both sides alike: blocking code would give one pause as long as the
// whole decode; cooperative code gives many turns and pauses far shorter than the decode.

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
  test('a PFX with 600,000 iterations (-iter 600000, MAC included)', async () => {
    const fixture = await opensslPfx(highIterationSpec);
    let subject = '';
    const turns = await eventLoopTurnsDuring(async () => {
      subject = (await decodePfx(fixture.bytes, fixture.password)).facts.subject;
    });
    assert.equal(subject, fixture.leaf.expected.subject);
    assertResponsive(turns);
  });

  test('200 legacy PFX files decoded at once', async () => {
    const fixture = await opensslPfx({ name: 'pfx-legacy-rc2-3des-sha1', opensslArgs: ['-legacy'] });
    const turns = await eventLoopTurnsDuring(() => Promise.all(Array.from({ length: 200 }, () => decodePfx(fixture.bytes, fixture.password))));
    assertResponsive(turns);
  });
});
