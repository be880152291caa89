import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ClientCertificateBinding } from '../../src/api/v1alpha1/types.ts';
import { PortAllocations } from '../../src/translate/port-allocations.ts';
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
