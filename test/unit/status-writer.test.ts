import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ClientCertificateBindingStatus } from '../../src/api/v1alpha1/types.ts';
import { StatusWriter, type StatusToWrite } from '../../src/controller/status-writer.ts';
import { TokenBucket } from '../../src/runner/token-bucket.ts';
import { binding, t0 } from '../fixtures/bindings.ts';
import { ManualClock } from '../support/manual-clock.ts';

const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
};

function status(type: string): ClientCertificateBindingStatus {
  return { observedGeneration: 1, conditions: [{ type, status: 'True', reason: type, message: type, lastTransitionTime: '2026-06-01T00:00:00Z' }] };
}

function toWrite(name: string, conditionType: string): StatusToWrite {
  return { binding: binding({ name }), status: status(conditionType), events: [{ type: 'Normal', reason: conditionType, message: conditionType }], now: t0 };
}

/** A writer over an API that answers when the test says so, with a bucket on a manual clock. */
function harness(options: { qps: number; burst: number; maxInFlight?: number }) {
  const clock = new ManualClock();
  const sent: Array<{ name: string; condition: string; answer: (err?: Error) => void }> = [];
  const written: Array<{ key: string; events: string[] }> = [];
  const failed: string[] = [];
  let coalesced = 0;
  const writer = new StatusWriter({
    limiter: new TokenBucket({ qps: options.qps, burst: options.burst, clock }),
    ...(options.maxInFlight ? { maxInFlight: options.maxInFlight } : {}),
    write: (b, s) =>
      new Promise<void>((resolve, reject) =>
        sent.push({ name: b.metadata.name, condition: s.conditions![0]!.type, answer: (err) => (err ? reject(err) : resolve()) }),
      ),
    written: (key, w) => written.push({ key, events: w.events.map((e) => e.reason) }),
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

  test('a second status for a binding whose write still waits replaces it: one write, the newer status, both transitions announced', async () => {
    const h = harness({ qps: 1, burst: 1 });
    h.writer.enqueue('ns/first', toWrite('first', 'CertificateValid'));
    h.writer.enqueue('ns/b', toWrite('b', 'CertificateValid'));
    h.writer.enqueue('ns/c', toWrite('c', 'CertificateValid'));
    h.writer.enqueue('ns/b', toWrite('b', 'Programmed'));
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
      ['first:CertificateValid', 'b:Programmed', 'c:CertificateValid'],
      'b keeps its place in line',
    );
    assert.deepEqual(h.written.find((w) => w.key === 'ns/b')?.events, ['CertificateValid', 'Programmed']);
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

  test('clear() drops what waits (a lost lease); forget() drops one binding', async () => {
    const h = harness({ qps: 1, burst: 1 });
    for (const name of ['a', 'b', 'c']) h.writer.enqueue(`ns/${name}`, toWrite(name, 'CertificateValid'));
    h.writer.forget('ns/b');
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
