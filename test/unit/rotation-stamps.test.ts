import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { annotationContentHash, annotationSourceSecret, annotationStageTimes } from '../../src/api/labels.ts';
import { bindingObject, contentHash, readBindingObject, type BindingPart } from '../../src/contract/proxy-objects.ts';
import { parseStamps, rotationSplit, rotationStages, sameStamps, stampAnnotations, type RotationStamps } from '../../src/contract/rotation-stamps.ts';
import { readCredentialSecret } from '../../src/proxy/agent.ts';
import { ContentStore } from '../../src/proxy/content-store.ts';

/** Never written to: readCredentialSecret only holds the bytes in it. */
const store = new ContentStore('/nonexistent/objects');

const uid = '0b6c1f4e-6a9d-4a51-9d3e-2f1c5e7a8b90';

/** Stamps for one rotation: the controller's times as offsets from `seen`. */
function stamps(options: { rv?: string; seen?: number; read?: number; decoded?: number; written?: number } = {}): RotationStamps {
  const seen = options.seen ?? 1_765_141_200_000;
  return {
    source: `${uid}@${options.rv ?? '4711'}`,
    times: { seen, read: seen + (options.read ?? 3), decoded: seen + (options.decoded ?? 40), written: seen + (options.written ?? 45) },
  };
}

function part(serial = '5e01'): BindingPart {
  return {
    key: 'team-a/payments',
    listenerPort: 10001,
    fingerprintSha256: 'AB:CD',
    serialNumber: serial,
    files: [{ path: 'bindings/team-a_payments.json', content: '{"server":1}', mode: 0o644, binding: 'team-a/payments' }],
  };
}

describe('rotation stamps', () => {
  test('format and parse are each other’s inverse, in a fixed, bounded shape', () => {
    const s = stamps();
    const annotations = stampAnnotations(s);
    assert.deepEqual(Object.keys(annotations).sort(), [annotationSourceSecret, annotationStageTimes].sort());
    assert.equal(annotations[annotationStageTimes], 'seen=1765141200000,read=1765141200003,decoded=1765141200040,written=1765141200045');
    assert.deepEqual(parseStamps(annotations), s);
    assert.ok(sameStamps(parseStamps(annotations), s));
    assert.ok(!sameStamps(stamps({ rv: '4712' }), s));
  });

  const good = stampAnnotations(stamps());
  const cases: Array<[string, Record<string, string> | undefined]> = [
    ['no annotations', undefined],
    ['no times', { [annotationSourceSecret]: good[annotationSourceSecret]! }],
    ['no source', { [annotationStageTimes]: good[annotationStageTimes]! }],
    ['a source that is not uid@resourceVersion', { ...good, [annotationSourceSecret]: 'payments-pfx' }],
    ['a source with data smuggled in', { ...good, [annotationSourceSecret]: `${uid}@1,key=S3CR3T` }],
    ['an over-long source', { ...good, [annotationSourceSecret]: `${'a'.repeat(200)}@1` }],
    ['a missing stage', { ...good, [annotationStageTimes]: 'seen=1,read=2,decoded=3' }],
    ['an extra stage', { ...good, [annotationStageTimes]: 'seen=1,read=2,decoded=3,written=4,applied=5' }],
    ['stages out of order', { ...good, [annotationStageTimes]: 'read=2,seen=1,decoded=3,written=4' }],
    ['a time that goes back', { ...good, [annotationStageTimes]: 'seen=10,read=2,decoded=30,written=40' }],
    ['a negative time', { ...good, [annotationStageTimes]: 'seen=-1,read=2,decoded=3,written=4' }],
    ['a fractional time', { ...good, [annotationStageTimes]: 'seen=1.5,read=2,decoded=3,written=4' }],
    ['a time past 2^53', { ...good, [annotationStageTimes]: 'seen=9999999999999999,read=9999999999999999,decoded=9999999999999999,written=9999999999999999' }],
    ['an over-long value', { ...good, [annotationStageTimes]: `seen=1,read=2,decoded=3,written=4${','.repeat(200)}` }],
  ];
  for (const [name, annotations] of cases) {
    test(`a hostile or foreign stamp is no stamp: ${name}`, () => {
      assert.equal(parseStamps(annotations), undefined);
    });
  }

  test('stamps are outside the content hash: a new stamp alone never makes an object differ', () => {
    const object = bindingObject(part(), 'mtls-egress-system');
    const restamped = {
      ...object,
      metadata: { ...object.metadata, annotations: { ...object.metadata.annotations, ...stampAnnotations(stamps({ rv: '9' })) } },
    };
    assert.equal(contentHash(restamped.data), object.metadata.annotations[annotationContentHash]);
    const read = readBindingObject(restamped);
    assert.ok(read.ok);
    assert.equal(read.contentHash, object.metadata.annotations[annotationContentHash]);
    assert.notEqual(
      bindingObject(part('5e02'), 'mtls-egress-system').metadata.annotations[annotationContentHash],
      object.metadata.annotations[annotationContentHash],
    );
  });

  test('the agent keeps a binding object’s stamps with the time its watch delivered it, and nothing of a bundle’s', () => {
    const object = bindingObject(part(), 'mtls-egress-system');
    const stamped = { ...object, metadata: { ...object.metadata, annotations: { ...object.metadata.annotations, ...stampAnnotations(stamps()) } } };
    assert.deepEqual(readCredentialSecret(stamped, store, 1_765_141_200_060).rotation, { stamps: stamps(), watchedAt: 1_765_141_200_060 });
    assert.equal(readCredentialSecret(object, store, 1_765_141_200_060).rotation, undefined);
    // A list that does not say when it was delivered (tools) keeps none.
    assert.equal(readCredentialSecret(stamped, store).rotation, undefined);
  });
});

describe('rotationSplit', () => {
  test('each stage is the difference of two consecutive times; total is their sum', () => {
    const s = stamps({ read: 3, decoded: 40, written: 45 });
    const split = rotationSplit(s, s.times.seen + 60, s.times.seen + 72);
    assert.deepEqual(split, { read: 3, decode: 37, write: 5, watch: 15, apply: 12, total: 72 });
    assert.deepEqual(Object.keys(split), [...rotationStages]);
    assert.equal(
      rotationStages.filter((k) => k !== 'total').reduce((sum, k) => sum + split[k], 0),
      split.total,
    );
  });

  test('an agent clock behind the controller’s shows as a zero watch stage, never a negative one, and the stages still add up', () => {
    const s = stamps({ written: 45 });
    // The agent's clock is 30 ms behind: its watch time reads 20 ms before the send.
    const split = rotationSplit(s, s.times.seen + 25, s.times.seen + 37);
    assert.equal(split.watch, 0);
    assert.equal(split.apply, 0);
    assert.equal(split.total, 45);
    for (const stage of rotationStages) assert.ok(split[stage] >= 0, stage);
    const ahead = rotationSplit(s, s.times.seen + 25, s.times.seen + 80);
    assert.deepEqual([ahead.watch, ahead.apply, ahead.total], [0, 35, 80]);
  });
});
