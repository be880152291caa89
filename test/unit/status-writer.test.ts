import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ClientCertificateBindingStatus } from '../../src/api/v1alpha1/types.ts';
import { StatusWriter, type StatusToWrite } from '../../src/controller/status-writer.ts';
import { statusTransitionEvents } from '../../src/status/evaluate.ts';
import { TokenBucket } from '../../src/runner/token-bucket.ts';
import { binding, t0 } from '../fixtures/bindings.ts';
import { ManualClock } from '../support/manual-clock.ts';

const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
};

function status(type: string, reason = type): ClientCertificateBindingStatus {
  const ok = reason !== 'Pending';
  return { observedGeneration: 1, conditions: [{ type, status: ok ? 'True' : 'False', reason, message: reason, lastTransitionTime: '2026-06-01T00:00:00Z' }] };
}

/** A status for `name`, computed against `since`, announcing what evaluation would. */
function toWrite(name: string, conditionType: string, options: { reason?: string; since?: ClientCertificateBindingStatus } = {}): StatusToWrite {
  const computed = status(conditionType, options.reason);
  return { binding: binding({ name }), status: computed, since: options.since, events: statusTransitionEvents(options.since, computed), now: t0 };
}

const holdPendingMs = 1000;

/** A writer over an API that answers when the test says so, with a bucket on a manual clock; a 'Pending' reason is held. */
function harness(options: { qps: number; burst: number; maxInFlight?: number }) {
  const clock = new ManualClock();
  const sent: Array<{ name: string; condition: string; answer: (err?: Error) => void }> = [];
  const written: Array<{ key: string; events: string[] }> = [];
  const failed: string[] = [];
  let coalesced = 0;
  const writer = new StatusWriter({
    limiter: new TokenBucket({ qps: options.qps, burst: options.burst, clock }),
    clock,
    transitions: statusTransitionEvents,
    holdMs: (w) => (w.status.conditions?.[0]?.reason === 'Pending' ? holdPendingMs : 0),
    ...(options.maxInFlight ? { maxInFlight: options.maxInFlight } : {}),
    write: (b, s) =>
      new Promise<void>((resolve, reject) =>
        sent.push({ name: b.metadata.name, condition: s.conditions![0]!.reason, answer: (err) => (err ? reject(err) : resolve()) }),
      ),
    written: (key, w) => written.push({ key, events: w.events.map((e) => `${e.type}:${e.reason}`) }),
    failed: (key) => failed.push(key),
    observe: { waiting: () => undefined, coalesced: () => void coalesced++ },
  });
  return { clock, writer, sent, written, failed, coalesced: () => coalesced };
}

describe('StatusWriter', () => {
  test('writes wait for tokens, first come first served', async () => {
    const h = harness({ qps: 10, burst: 2, maxInFlight: 10 });
    for (const name of ['a', 'b', 'c', 'd']) h.writer.enqueue(`ns/${name}`, toWrite(name, 'CertificateValid'));
    await settle();
    assert.deepEqual(
      h.sent.map((s) => s.name),
      ['a', 'b'],
    );
    assert.equal(h.writer.waiting, 2);
    h.clock.advance(100);
    await settle();
    h.clock.advance(100);
    await settle();
    assert.deepEqual(
      h.sent.map((s) => s.name),
      ['a', 'b', 'c', 'd'],
    );
  });

  test('a second status for a binding whose write still waits replaces it: one write, the newer status, the transition since the status before both', async () => {
    const h = harness({ qps: 1, burst: 1 });
    const before = status('Programmed');
    h.writer.enqueue('ns/first', toWrite('first', 'CertificateValid'));
    h.writer.enqueue('ns/b', toWrite('b', 'CertificateValid', { since: before }));
    h.writer.enqueue('ns/c', toWrite('c', 'CertificateValid'));
    h.writer.enqueue('ns/b', toWrite('b', 'Programmed', { reason: 'Rotated', since: status('CertificateValid') }));
    assert.equal(h.coalesced(), 1);
    await settle();
    h.sent[0]!.answer();
    for (let i = 0; i < 2; i++) {
      h.clock.advance(1000);
      await settle();
      h.sent.at(-1)!.answer();
    }
    await settle();
    assert.deepEqual(
      h.sent.map((s) => `${s.name}:${s.condition}`),
      ['first:CertificateValid', 'b:Rotated', 'c:CertificateValid'],
      'b keeps its place in line',
    );
    assert.deepEqual(
      h.written.find((w) => w.key === 'ns/b')?.events,
      ['Normal:Rotated'],
      'from Programmed to Rotated: the CertificateValid step was never written',
    );
  });

  test('a write that only says work is in progress is held, and the status that ends it goes alone: one write, no Warning', async () => {
    const h = harness({ qps: 10, burst: 10 });
    const ready = status('Ready');
    const pending = toWrite('a', 'Ready', { reason: 'Pending', since: ready });
    assert.deepEqual(pending.events, [{ type: 'Warning', reason: 'Pending', message: 'Pending' }]);
    h.writer.enqueue('ns/a', pending);
    await settle();
    assert.equal(h.sent.length, 0, 'held');
    assert.equal(h.writer.waiting, 1);
    assert.equal(h.writer.due, 0, 'a held write keeps nothing else waiting');
    h.clock.advance(holdPendingMs / 2);
    h.writer.enqueue('ns/a', toWrite('a', 'Ready', { since: pending.status }));
    await settle();
    assert.deepEqual(
      h.sent.map((s) => `${s.name}:${s.condition}`),
      ['a:Ready'],
    );
    h.sent[0]!.answer();
    await settle();
    assert.deepEqual(h.written, [{ key: 'ns/a', events: [] }], 'Ready before, Ready after: nothing to announce');
    h.clock.advance(holdPendingMs);
    await settle();
    assert.equal(h.sent.length, 1, 'the hold ended with nothing left to send');
  });

  test('a hold ends on time, and never restarts: a status still in progress is written once its first hold is over', async () => {
    const h = harness({ qps: 10, burst: 10 });
    const ready = status('Ready');
    h.writer.enqueue('ns/a', toWrite('a', 'Ready', { reason: 'Pending', since: ready }));
    h.writer.enqueue('ns/b', toWrite('b', 'Ready', { reason: 'Pending' }));
    h.clock.advance(holdPendingMs - 1);
    h.writer.enqueue('ns/a', toWrite('a', 'Ready', { reason: 'Pending', since: status('Ready', 'Pending') }));
    await settle();
    assert.equal(h.sent.length, 0);
    h.clock.advance(1);
    await settle();
    assert.deepEqual(
      h.sent.map((s) => `${s.name}:${s.condition}`),
      ['a:Pending', 'b:Pending'],
    );
    for (const s of h.sent) s.answer();
    await settle();
    assert.deepEqual(h.written, [
      { key: 'ns/a', events: ['Warning:Pending'] },
      { key: 'ns/b', events: ['Warning:Pending'] },
    ]);
  });

  test('a write already due is never held back by a newer status in progress: it is replaced in place', async () => {
    const h = harness({ qps: 0, burst: 1 });
    h.writer.enqueue('ns/a', toWrite('a', 'CertificateValid'));
    await settle();
    h.writer.enqueue('ns/b', toWrite('b', 'CertificateValid'));
    h.writer.enqueue('ns/b', toWrite('b', 'Ready', { reason: 'Pending', since: status('CertificateValid') }));
    assert.equal(h.writer.due, 1);
    h.sent[0]!.answer();
    await settle();
    assert.deepEqual(
      h.sent.map((s) => `${s.name}:${s.condition}`),
      ['a:CertificateValid', 'b:Pending'],
    );
  });

  test("one binding's writes are never in flight together: the next waits for the answer", async () => {
    const h = harness({ qps: 0, burst: 1 });
    h.writer.enqueue('ns/a', toWrite('a', 'CertificateValid'));
    await settle();
    h.writer.enqueue('ns/a', toWrite('a', 'Programmed'));
    h.writer.enqueue('ns/b', toWrite('b', 'CertificateValid'));
    await settle();
    assert.deepEqual(
      h.sent.map((s) => `${s.name}:${s.condition}`),
      ['a:CertificateValid', 'b:CertificateValid'],
      'b passes a, whose first write is still out',
    );
    h.sent[0]!.answer();
    await settle();
    assert.deepEqual(h.sent.at(-1) && `${h.sent.at(-1)!.name}:${h.sent.at(-1)!.condition}`, 'a:Programmed');
  });

  test('a failed write is reported with its binding; the writer goes on with the rest', async () => {
    const h = harness({ qps: 0, burst: 1 });
    h.writer.enqueue('ns/a', toWrite('a', 'CertificateValid'));
    h.writer.enqueue('ns/b', toWrite('b', 'CertificateValid'));
    await settle();
    h.sent[0]!.answer(new Error('409'));
    h.sent[1]!.answer();
    await settle();
    assert.deepEqual(h.failed, ['ns/a']);
    assert.deepEqual(
      h.written.map((w) => w.key),
      ['ns/b'],
    );
  });

  test('clear() drops what waits or is held (a lost lease); forget() drops one binding', async () => {
    const h = harness({ qps: 1, burst: 1 });
    for (const name of ['a', 'b', 'c']) h.writer.enqueue(`ns/${name}`, toWrite(name, 'CertificateValid'));
    h.writer.enqueue('ns/held', toWrite('held', 'Ready', { reason: 'Pending' }));
    h.writer.enqueue('ns/forgotten', toWrite('forgotten', 'Ready', { reason: 'Pending' }));
    h.writer.forget('ns/b');
    h.writer.forget('ns/forgotten');
    await settle();
    h.writer.clear();
    assert.equal(h.writer.waiting, 0);
    h.clock.advance(10_000);
    await settle();
    assert.deepEqual(
      h.sent.map((s) => s.name),
      ['a'],
    );
  });
});
