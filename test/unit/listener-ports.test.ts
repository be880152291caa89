import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import {
  allocateListenerPorts,
  defaultPortShare,
  grantedPorts,
  parsePortRange,
  parsePortShare,
  releasedPorts,
  type AllocationPolicy,
  type PortClaimant,
  type PortRelease,
} from '../../src/model/listener-ports.ts';

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

// Claimants in two namespaces: "a/..." and "b/...". Ages are days in January.
const minute = 60_000;
const now = Date.parse('2026-02-01T00:00:00Z');
const tenMinutes = 10 * minute;

function allocate(claimants: PortClaimant[], policy: AllocationPolicy = {}): Record<string, number | string> {
  return ports(allocateListenerPorts(claimants, range, { nowMs: now, ...policy }));
}

describe('allocateListenerPorts: a freed port stays with its namespace for the quarantine', () => {
  // b/holder held 10002 and was deleted a minute ago: its callers may still call :10002.
  const released: PortRelease[] = [{ port: 10002, namespace: 'b', untilMs: now + 9 * minute }];
  const cases: Array<{ name: string; claimants: PortClaimant[]; releases?: PortRelease[]; at?: number; expect: Record<string, number | string> }> = [
    {
      name: 'another namespace asking for the freed port waits, with the time it frees',
      claimants: [claimant('a/taker', 1, { requested: 10002 })],
      expect: { 'a/taker': reasons.ListenerPortQuarantined },
    },
    {
      name: 'the same namespace may take it at once',
      claimants: [claimant('b/renamed', 1, { requested: 10002 })],
      expect: { 'b/renamed': 10002 },
    },
    {
      name: 'automatic allocation in another namespace skips it',
      claimants: [claimant('a/x', 1, { held: 10000 }), claimant('a/y', 1, { held: 10001 }), claimant('a/new', 2)],
      expect: { 'a/x': 10000, 'a/y': 10001, 'a/new': 10003 },
    },
    {
      name: 'automatic allocation in the same namespace may reuse it',
      claimants: [claimant('b/x', 1, { held: 10000 }), claimant('b/y', 1, { held: 10001 }), claimant('b/new', 2)],
      expect: { 'b/x': 10000, 'b/y': 10001, 'b/new': 10002 },
    },
    {
      name: 'a status naming it, in another namespace, does not hold it',
      claimants: [claimant('a/forged', 1, { reported: 10002 })],
      expect: { 'a/forged': 10000 },
    },
    {
      name: 'after the quarantine, anyone may take it',
      claimants: [claimant('a/taker', 1, { requested: 10002 })],
      at: now + 9 * minute,
      expect: { 'a/taker': 10002 },
    },
    {
      name: 'when only quarantined ports are free, the binding waits for them rather than for a wider range',
      claimants: [10000, 10001, 10003, 10004].map((port, i) => claimant(`b/h${i}`, 1, { held: port })).concat(claimant('a/late', 2)),
      expect: { 'b/h0': 10000, 'b/h1': 10001, 'b/h2': 10003, 'b/h3': 10004, 'a/late': reasons.ListenerPortQuarantined },
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.deepEqual(allocate(c.claimants, { releases: c.releases ?? released, nowMs: c.at ?? now }), c.expect);
    });
  }

  test('the waiting binding is told when the port frees', () => {
    const outcome = allocateListenerPorts([claimant('a/taker', 1, { requested: 10002 })], range, { releases: released, nowMs: now }).get('a/taker');
    assert.ok(outcome && !outcome.ok);
    assert.equal(outcome.retryAtMs, now + 9 * minute);
    assert.match(outcome.message, /2026-02-01T00:09:00Z/);
  });

  test('releasedPorts: a deleted or moved binding releases its port to its namespace; one that keeps it does not', () => {
    const before = grantedPorts(allocateListenerPorts([claimant('b/gone', 1), claimant('b/moves', 1), claimant('a/stays', 1)], range));
    assert.deepEqual(Object.fromEntries([...before].map(([k, v]) => [k, v.port])), { 'a/stays': 10000, 'b/gone': 10001, 'b/moves': 10002 });
    const after = allocateListenerPorts([claimant('b/moves', 1, { held: 10002, requested: 10004 }), claimant('a/stays', 1, { held: 10000 })], range);
    assert.deepEqual(releasedPorts(before, after, [], now, tenMinutes), [
      { port: 10001, namespace: 'b', untilMs: now + tenMinutes },
      { port: 10002, namespace: 'b', untilMs: now + tenMinutes },
    ]);
  });

  test('releasedPorts: releases run out, and a quarantine of 0 keeps none', () => {
    const old: PortRelease[] = [{ port: 10003, namespace: 'a', untilMs: now }];
    assert.deepEqual(releasedPorts(new Map(), new Map(), old, now, tenMinutes), []);
    const before = new Map([['b/gone', { port: 10001, namespace: 'b' }]]);
    assert.deepEqual(releasedPorts(before, new Map(), [], now, 0), []);
  });
});

describe('allocateListenerPorts: a namespace holds at most its share', () => {
  const shareOf = (ns: string): number => (ns === 'big' ? 3 : 1);
  test('past its share, a namespace gets NamespacePortQuotaExceeded and the other namespace is not affected', () => {
    const claimants = [claimant('a/first', 1), claimant('a/second', 2), claimant('b/other', 4)];
    assert.deepEqual(allocate(claimants, { shareOf }), {
      'a/first': 10000,
      'a/second': reasons.NamespacePortQuotaExceeded,
      'b/other': 10001,
    });
  });

  test('fixed requests are served before automatic ones, within the share too', () => {
    const claimants = [claimant('a/auto', 1), claimant('a/fixed', 3, { requested: 10004 })];
    assert.deepEqual(allocate(claimants, { shareOf }), { 'a/auto': reasons.NamespacePortQuotaExceeded, 'a/fixed': 10004 });
  });

  test('ports a namespace freed count against its share while quarantined: creating and deleting on fixed ports cannot quarantine the range', () => {
    const releases: PortRelease[] = [
      { port: 10001, namespace: 'a', untilMs: now + minute },
      { port: 10003, namespace: 'a', untilMs: now + minute },
    ];
    const claimants = [claimant('a/again', 1, { requested: 10004 }), claimant('b/other', 2)];
    const twoEach = (): number => 2;
    assert.deepEqual(allocate(claimants, { shareOf: twoEach, releases }), { 'a/again': reasons.NamespacePortQuotaExceeded, 'b/other': 10000 });
  });

  test('a port the namespace freed comes back to it first, at no cost to its share', () => {
    const releases: PortRelease[] = [{ port: 10003, namespace: 'a', untilMs: now + minute }];
    const claimants = [claimant('a/held', 1, { held: 10000 }), claimant('a/renamed', 2)];
    assert.deepEqual(allocate(claimants, { shareOf: () => 2, releases }), { 'a/held': 10000, 'a/renamed': 10003 });
  });

  test('a per-namespace share overrides the default', () => {
    const claimants = [1, 2, 3, 4].map((age) => claimant(`big/b${age}`, age));
    assert.deepEqual(allocate(claimants, { shareOf }), { 'big/b1': 10000, 'big/b2': 10001, 'big/b3': 10002, 'big/b4': reasons.NamespacePortQuotaExceeded });
  });

  test('a share lowered below what a namespace holds takes no port away', () => {
    const claimants = [claimant('a/x', 1, { held: 10003 }), claimant('a/y', 2, { held: 10001 }), claimant('a/z', 3)];
    assert.deepEqual(allocate(claimants, { shareOf }), { 'a/x': 10003, 'a/y': 10001, 'a/z': reasons.NamespacePortQuotaExceeded });
  });

  test('defaultPortShare: a tenth of the range, never fewer than 10, never more than the range', () => {
    assert.equal(defaultPortShare({ first: 10000, last: 10999 }), 100);
    assert.equal(defaultPortShare({ first: 10000, last: 10099 }), 10);
    assert.equal(defaultPortShare({ first: 10000, last: 10004 }), 5);
  });

  test('parsePortShare: a percentage of the range or a count', () => {
    assert.equal(parsePortShare('10%', { first: 10000, last: 10999 }), 100);
    assert.equal(parsePortShare('2.5%', { first: 10000, last: 10999 }), 25);
    assert.equal(parsePortShare('40', { first: 10000, last: 10999 }), 40);
    for (const bad of ['0', '0%', '101%', 'ten', '-3', '']) assert.throws(() => parsePortShare(bad, range), /port share/);
  });
});

describe('allocateListenerPorts: a binding that cannot be served takes no new port', () => {
  test('without its certificate Secret it waits (SecretNotFound), and the others take the lowest ports', () => {
    const claimants = [claimant('a/broken', 1, { mayTakeNew: false }), claimant('a/broken2', 1, { mayTakeNew: false, requested: 10001 }), claimant('b/ok', 2)];
    assert.deepEqual(allocate(claimants), { 'a/broken': reasons.SecretNotFound, 'a/broken2': reasons.SecretNotFound, 'b/ok': 10000 });
  });

  test('a working binding whose Secret goes keeps the port it holds: a rotation never moves it', () => {
    assert.deepEqual(allocate([claimant('a/rotating', 1, { mayTakeNew: false, held: 10003 })]), { 'a/rotating': 10003 });
  });

  test('broken past the grace, a binding gives up the port it holds, and its namespace keeps it quarantined', () => {
    const claimants = [claimant('a/long-broken', 1, { mayTakeNew: false, mayHold: false, held: 10000, reported: 10000 }), claimant('b/new', 2)];
    const result = allocateListenerPorts(claimants, range, { nowMs: now });
    assert.deepEqual(ports(result), { 'a/long-broken': reasons.SecretNotFound, 'b/new': 10000 });
    assert.match((result.get('a/long-broken') as { message: string }).message, /--broken-port-grace/);
    const released = releasedPorts(new Map([['a/long-broken', { port: 10000, namespace: 'a' }]]), result, [], now, tenMinutes);
    assert.deepEqual(released, [{ port: 10000, namespace: 'a', untilMs: now + tenMinutes }]);
  });

  test('broken bindings do not count against the namespace share', () => {
    const claimants = [...[1, 2, 3].map((age) => claimant(`a/broken${age}`, age, { mayTakeNew: false })), claimant('a/good', 4)];
    assert.deepEqual(allocate(claimants, { shareOf: () => 1 }), {
      'a/broken1': reasons.SecretNotFound,
      'a/broken2': reasons.SecretNotFound,
      'a/broken3': reasons.SecretNotFound,
      'a/good': 10000,
    });
  });
});

describe('allocateListenerPorts: status is output, never input', () => {
  const reserved = new Set([8081]);
  const cases: Array<{ name: string; claimants: PortClaimant[]; expect: Record<string, number | string> }> = [
    {
      name: "a status naming the proxy's own port (8081) is not held: the binding gets a port of the range",
      claimants: [claimant('a/forged', 1, { reported: 8081 })],
      expect: { 'a/forged': 10000 },
    },
    {
      name: 'a status outside the range is not held',
      claimants: [claimant('a/forged', 1, { reported: 20000 }), claimant('a/low', 1, { reported: 80 })],
      expect: { 'a/forged': 10000, 'a/low': 10001 },
    },
    {
      name: "a status naming a neighbour's port loses to the controller's record, even when older",
      claimants: [claimant('a/forged', 1, { reported: 10003 }), claimant('b/holder', 5, { held: 10003 })],
      expect: { 'a/forged': 10000, 'b/holder': 10003 },
    },
    {
      name: "the record beats status even for the binding's own earlier port",
      claimants: [claimant('a/x', 1, { held: 10001, reported: 10004 })],
      expect: { 'a/x': 10001 },
    },
    {
      name: 'with no record (a fresh term), a status inside the range is read back, oldest first',
      claimants: [claimant('a/old', 1, { reported: 10003 }), claimant('b/young', 2, { reported: 10003 })],
      expect: { 'a/old': 10003, 'b/young': 10000 },
    },
    {
      name: 'a reserved port inside the range is never given, whatever status says',
      claimants: [claimant('a/x', 1, { reported: 10000 })],
      expect: { 'a/x': 10001 },
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const policy = c.name.startsWith('a reserved port inside') ? { reserved: new Set([10000]) } : { reserved };
      assert.deepEqual(allocate(c.claimants, policy), c.expect);
    });
  }
});

describe('parsePortRange', () => {
  for (const bad of ['', '10-20', '20000-10000', '1024-70000', 'a-b']) {
    test(`rejects "${bad}"`, () => assert.throws(() => parsePortRange(bad)));
  }
  test('accepts FIRST-LAST', () => assert.deepEqual(parsePortRange('10000-10999'), { first: 10000, last: 10999 }));
});
