import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ClientCertificateBinding } from '../../src/api/v1alpha1/types.ts';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { PortAllocations } from '../../src/translate/port-allocations.ts';
import { parseReleases, releasesConfigMap, releasesOfVanished } from '../../src/controller/port-releases.ts';
import { binding } from '../fixtures/bindings.ts';

const listenerPorts = { first: 10000, last: 10002 };

function rig(initial: ClientCertificateBinding[]) {
  let bindings = initial;
  let computed = 0;
  const moved: string[][] = [];
  const ports = new PortAllocations({
    bindings: () => {
      computed++;
      return bindings;
    },
    listenerPorts,
    onMoved: (keys) => moved.push(keys),
  });
  const portOf = (key: string) => {
    const outcome = ports.get().get(key);
    return outcome?.ok ? outcome.port : outcome?.reason;
  };
  return { ports, moved, portOf, computed: () => computed, set: (next: ClientCertificateBinding[]) => (bindings = next) };
}

const withStatusPort = (b: ClientCertificateBinding, port: number): ClientCertificateBinding => ({ ...b, status: { ...b.status, listenerPort: port } });

describe('PortAllocations', () => {
  test('a status write of the port it was given is an echo, not a change: nothing is recomputed', () => {
    const a = binding({ name: 'a' });
    const r = rig([a]);
    assert.equal(r.portOf('team-a/a'), 10000);
    const written = withStatusPort(a, 10000);
    r.set([written]);
    r.ports.updated(written, a);
    assert.equal(r.portOf('team-a/a'), 10000);
    assert.equal(r.computed(), 1);
  });

  test('a change of a port input is recomputed once, however often it is read', () => {
    const a = binding({ name: 'a' });
    const r = rig([a]);
    r.portOf('team-a/a');
    const pinned = { ...a, spec: { ...a.spec, listenerPort: 10002 } };
    r.set([pinned]);
    r.ports.updated(pinned, a);
    assert.equal(r.portOf('team-a/a'), 10002);
    assert.equal(r.portOf('team-a/a'), 10002);
    assert.equal(r.computed(), 2);
  });

  test('a deleted binding frees its port, and the binding that wanted it is reported as moved', () => {
    const a = withStatusPort(binding({ name: 'a', creationTimestamp: '2026-01-01T00:00:00Z' }), 10000);
    const b = binding({ name: 'b', creationTimestamp: '2026-01-02T00:00:00Z', spec: { listenerPort: 10000 } });
    const r = rig([a, b]);
    assert.notEqual(r.portOf('team-a/b'), 10000, 'a holds the port b asks for');
    r.set([b]);
    r.ports.deleted();
    assert.equal(r.portOf('team-a/b'), 10000);
    assert.deepEqual(r.moved, [['team-a/b']]);
  });

  test('held ports survive a restart: a fresh allocation from status gives every binding the port it holds', () => {
    const held = [withStatusPort(binding({ name: 'a' }), 10002), withStatusPort(binding({ name: 'b' }), 10000)];
    const r = rig(held);
    assert.deepEqual([r.portOf('team-a/a'), r.portOf('team-a/b')], [10002, 10000]);
  });
});

describe('PortAllocations: ports belong to namespaces', () => {
  const minute = 60_000;
  const quarantineMs = 10 * minute;

  function tenantRig(initial: ClientCertificateBinding[]) {
    let bindings = initial;
    let nowMs = Date.parse('2026-02-01T00:00:00Z');
    const moved: string[][] = [];
    const saved: Array<readonly { port: number; namespace: string; untilMs: number }[]> = [];
    const ports = new PortAllocations({
      bindings: () => bindings,
      listenerPorts,
      quarantineMs,
      onMoved: (keys) => moved.push(keys),
      onReleased: (releases) => saved.push(releases),
      now: () => nowMs,
    });
    const portOf = (key: string) => {
      const outcome = ports.get().get(key);
      return outcome?.ok ? outcome.port : outcome?.reason;
    };
    return {
      ports,
      moved,
      saved,
      portOf,
      advance: (ms: number) => (nowMs += ms),
      now: () => nowMs,
      set: (next: ClientCertificateBinding[]) => (bindings = next),
    };
  }

  const holder = binding({ name: 'holder', namespace: 'team-b', creationTimestamp: '2026-01-02T00:00:00Z' });
  const taker = binding({ name: 'taker', namespace: 'team-a', creationTimestamp: '2026-01-01T00:00:00Z', spec: { listenerPort: 10000 } });

  test("a deleted binding's port waits out the quarantine before another namespace gets it, and the waiting binding is woken then", () => {
    const r = tenantRig([withStatusPort(holder, 10000), taker]);
    assert.equal(r.portOf('team-b/holder'), 10000);
    assert.equal(r.portOf('team-a/taker'), reasons.ListenerPortConflict);
    r.set([taker]);
    r.ports.deleted(holder);
    assert.equal(r.portOf('team-a/taker'), reasons.ListenerPortQuarantined, 'team-b callers may still call :10000');
    assert.deepEqual(r.saved.at(-1), [{ port: 10000, namespace: 'team-b', untilMs: r.now() + quarantineMs }], 'the release is handed on to be kept');
    r.advance(quarantineMs - 1);
    assert.equal(r.portOf('team-a/taker'), reasons.ListenerPortQuarantined);
    r.advance(1);
    assert.equal(r.portOf('team-a/taker'), 10000);
    assert.deepEqual(r.moved.at(-1), ['team-a/taker']);
    assert.deepEqual(r.saved.at(-1), [], 'the run-out release is dropped from what is kept');
  });

  test('a deletion is released at once, before any allocation: nobody need be waiting, and a restart must find it', () => {
    const r = tenantRig([withStatusPort(holder, 10000)]);
    assert.equal(r.portOf('team-b/holder'), 10000);
    r.set([]);
    r.ports.deleted(holder);
    assert.deepEqual(r.saved.at(-1), [{ port: 10000, namespace: 'team-b', untilMs: r.now() + quarantineMs }]);
  });

  test('within its namespace, a freed port is reused at once', () => {
    const renamed = binding({ name: 'renamed', namespace: 'team-b', creationTimestamp: '2026-01-03T00:00:00Z', spec: { listenerPort: 10000 } });
    const r = tenantRig([withStatusPort(holder, 10000), renamed]);
    r.portOf('team-b/renamed');
    r.set([renamed]);
    r.ports.deleted();
    assert.equal(r.portOf('team-b/renamed'), 10000);
  });

  test('the quarantine survives a restart: a new term starts from the releases kept', () => {
    const first = tenantRig([withStatusPort(holder, 10000), taker]);
    first.portOf('team-a/taker');
    first.set([taker]);
    first.ports.deleted();
    first.portOf('team-a/taker');
    const kept = first.saved.at(-1)!;
    // Another replica, or this one restarted: no record, only what the cluster kept.
    const second = tenantRig([taker]);
    second.ports.reset(kept);
    assert.equal(second.portOf('team-a/taker'), reasons.ListenerPortQuarantined);
  });

  test("a status write of a neighbour's port is not taken: the controller's record stands", () => {
    const older = binding({ name: 'older', namespace: 'team-a', creationTimestamp: '2025-12-01T00:00:00Z' });
    const r = tenantRig([withStatusPort(holder, 10001), older]);
    assert.equal(r.portOf('team-b/holder'), 10001);
    assert.equal(r.portOf('team-a/older'), 10000);
    const forged = withStatusPort(older, 10001);
    r.set([withStatusPort(holder, 10001), forged]);
    r.ports.updated(forged, older);
    assert.equal(r.portOf('team-a/older'), 10000);
    assert.equal(r.portOf('team-b/holder'), 10001);
  });

  test("a status write of the proxy's own port is ignored", () => {
    const a = binding({ name: 'a' });
    const ports = new PortAllocations({ bindings: () => [withStatusPort(a, 8081)], listenerPorts, reserved: new Set([8081]) });
    assert.deepEqual(ports.get().get('team-a/a'), { ok: true, port: 10000 });
  });
});

describe('the releases kept across restarts', () => {
  const now = Date.parse('2026-02-01T00:00:00Z');
  test('a binding that vanished while no controller led is released now; a port already released keeps its release', () => {
    const kept = [{ port: 10003, namespace: 'team-c', untilMs: now + 1000 }];
    const vanished = [
      { key: 'team-b/gone', port: 10001 },
      { key: 'team-x/late', port: 10003 },
    ];
    assert.deepEqual(releasesOfVanished(kept, vanished, now, 60_000), [
      { port: 10001, namespace: 'team-b', untilMs: now + 60_000 },
      { port: 10003, namespace: 'team-c', untilMs: now + 1000 },
    ]);
    assert.deepEqual(releasesOfVanished(kept, vanished, now, 0), kept);
  });

  test('what the ConfigMap holds reads back as it was written; anything else in it is dropped', () => {
    const releases = [{ port: 10001, namespace: 'team-b', untilMs: now }];
    const cm = releasesConfigMap(releases, 'mtls-egress-system');
    assert.deepEqual(parseReleases(cm.data?.['releases.json']), releases);
    assert.deepEqual(parseReleases('not json'), []);
    assert.deepEqual(
      parseReleases('[{"port":"10001","namespace":"x","until":"2026-02-01T00:00:00Z"},{"port":10002,"namespace":"y","until":"2026-02-01T00:00:00Z"}]'),
      [{ port: 10002, namespace: 'y', untilMs: now }],
    );
  });
});
