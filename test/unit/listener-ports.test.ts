import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { allocateListenerPorts, parsePortRange, type PortClaimant } from '../../src/model/listener-ports.ts';

const range = { first: 10000, last: 10004 };

function claimant(key: string, age: number, extra: Partial<PortClaimant> = {}): PortClaimant {
  return { key, creationTimestamp: `2026-01-0${age}T00:00:00Z`, ...extra };
}

function ports(result: ReturnType<typeof allocateListenerPorts>): Record<string, number | string> {
  return Object.fromEntries([...result].map(([k, v]) => [k, v.ok ? v.port : v.reason]));
}

describe('allocateListenerPorts', () => {
  test('new bindings get the lowest free port, oldest first', () => {
    assert.deepEqual(ports(allocateListenerPorts([claimant('b', 2), claimant('a', 1)], range)), { a: 10000, b: 10001 });
  });

  test('adding a binding never moves another', () => {
    const before = [claimant('a', 1, { held: 10003 }), claimant('b', 2, { held: 10000 })];
    const after = allocateListenerPorts([...before, claimant('c', 0)], range);
    assert.deepEqual(ports(after), { a: 10003, b: 10000, c: 10001 });
  });

  test('removing a binding never moves another, and its port is reused', () => {
    const result = allocateListenerPorts([claimant('b', 2, { held: 10001 }), claimant('c', 3)], range);
    assert.deepEqual(ports(result), { b: 10001, c: 10000 });
  });

  test('two fixed requests for one port: the older keeps it', () => {
    const result = allocateListenerPorts([claimant('young', 2, { requested: 10002 }), claimant('old', 1, { requested: 10002 })], range);
    assert.deepEqual(ports(result), { old: 10002, young: reasons.ListenerPortConflict });
    const conflict = result.get('young');
    assert.ok(conflict && !conflict.ok && conflict.message.includes('old'));
  });

  test('a holder keeps its port against an older newcomer asking for it', () => {
    const result = allocateListenerPorts([claimant('holder', 5, { held: 10002 }), claimant('asker', 1, { requested: 10002 })], range);
    assert.deepEqual(ports(result), { holder: 10002, asker: reasons.ListenerPortConflict });
  });

  test('a fixed request beats automatic allocation of the same port', () => {
    assert.deepEqual(ports(allocateListenerPorts([claimant('auto', 1), claimant('fixed', 2, { requested: 10000 })], range)), { fixed: 10000, auto: 10001 });
  });

  test('changing the requested port releases the held one', () => {
    assert.deepEqual(ports(allocateListenerPorts([claimant('a', 1, { held: 10000, requested: 10003 }), claimant('b', 2)], range)), { a: 10003, b: 10000 });
  });

  test('an exhausted range is reported, not wrapped', () => {
    const many = Array.from({ length: 6 }, (_, i) => claimant(`k${i}`, 1));
    const result = ports(allocateListenerPorts(many, range));
    assert.equal(result.k5, reasons.ListenerPortsExhausted);
    assert.equal(new Set(Object.values(result)).size, 6);
  });

  test('the answer does not depend on input order', () => {
    const list = [claimant('a', 1), claimant('b', 2, { requested: 10000 }), claimant('c', 3, { held: 10004 }), claimant('d', 1)];
    const expected = ports(allocateListenerPorts(list, range));
    assert.deepEqual(ports(allocateListenerPorts([...list].reverse(), range)), expected);
  });
});

describe('parsePortRange', () => {
  for (const bad of ['', '10-20', '20000-10000', '1024-70000', 'a-b']) {
    test(`rejects "${bad}"`, () => assert.throws(() => parsePortRange(bad)));
  }
  test('accepts FIRST-LAST', () => assert.deepEqual(parsePortRange('10000-10999'), { first: 10000, last: 10999 }));
});
