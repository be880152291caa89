import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SecretLike } from '../../src/api/meta.ts';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { bindingKey, objectKey, type ClientCertificateBinding } from '../../src/api/v1alpha1/types.ts';
import type { InformerHandlers } from '../../src/k8s/informer.ts';
import { BindingInputs, type BindingSource, type Gathered, type NamespaceSource, type SecretSource } from '../../src/inputs/binding-inputs.ts';
import type { PortRelease } from '../../src/model/listener-ports.ts';
import { annotationMaxListenerPorts, consentLabel, type NamespaceMeta } from '../../src/model/namespace-consent.ts';
import { HostResolver, type HostAnswer } from '../../src/inputs/host-resolution.ts';
import { inputPolicy } from '../../src/inputs/input-policy.ts';
import type { CertificateInput } from '../../src/model/certificate-input.ts';
import { DestinationPolicy } from '../../src/model/destinations.ts';
import type { IdentityOutcome } from '../../src/model/egress-routes.ts';
import { Sensitive } from '../../src/pki/sensitive.ts';
import { binding, facts, secret, t0 } from '../fixtures/bindings.ts';
import { ManualClock } from '../support/manual-clock.ts';

// The gatherer's one policy for waiting and retrying, with the clock in the test's hand and
// plain inputs: an in-memory set of Secrets and bindings, a scripted decoder, a scripted
// resolver. Nothing here talks to Kubernetes or DNS.

const listenerPorts = { first: 10000, last: 10002 };
const good: IdentityOutcome = { ok: true, identity: { facts: facts(), chainPem: 'C', privateKey: new Sensitive('K') } };
const served: IdentityOutcome = { ok: true, identity: { facts: facts({ serialNumber: 'old' }), chainPem: 'C0', privateKey: new Sensitive('K0') } };
const stopped: IdentityOutcome = { ok: false, reason: reasons.DecodeBudgetExceeded, message: 'took too long', transient: true };
const wrongPassword: IdentityOutcome = { ok: false, reason: reasons.PasswordIncorrect, message: 'wrong' };

/** Secrets in memory, with the change events a cache would send. */
class MemorySecrets implements SecretSource {
  readonly #secrets = new Map<string, SecretLike>();
  readonly #handlers: Array<(key: string) => void> = [];

  put(s: SecretLike): void {
    const key = objectKey(s.metadata.namespace ?? '', s.metadata.name);
    this.#secrets.set(key, s);
    for (const h of this.#handlers) h(key);
  }

  async getAll(namespace: string, names: Iterable<string>): Promise<Map<string, SecretLike>> {
    const found = new Map<string, SecretLike>();
    for (const name of names) {
      const s = this.#secrets.get(objectKey(namespace, name));
      if (s) found.set(name, s);
    }
    return found;
  }

  onChange(handler: (key: string) => void): void {
    this.#handlers.push(handler);
  }
}

/** Bindings in memory, with the events an informer would send. */
class MemoryBindings implements BindingSource {
  readonly #bindings = new Map<string, ClientCertificateBinding>();
  readonly #handlers: Array<InformerHandlers<ClientCertificateBinding>> = [];

  list(): ClientCertificateBinding[] {
    return [...this.#bindings.values()];
  }

  addHandlers(handlers: InformerHandlers<ClientCertificateBinding>): void {
    this.#handlers.push(handlers);
  }

  put(b: ClientCertificateBinding): void {
    const old = this.#bindings.get(bindingKey(b));
    this.#bindings.set(bindingKey(b), b);
    for (const h of this.#handlers) {
      if (old) h.onUpdate?.(b, old);
      else h.onAdd?.(b);
    }
  }

  delete(b: ClientCertificateBinding): void {
    this.#bindings.delete(bindingKey(b));
    for (const h of this.#handlers) h.onDelete?.(b);
  }
}

/** A decoder whose outcomes the test hands out, one call at a time. */
function scriptedDecoder() {
  const calls: Array<{ input: CertificateInput; settle: (outcome: IdentityOutcome) => void }> = [];
  const decode = (input: CertificateInput): Promise<IdentityOutcome> => new Promise((settle) => calls.push({ input, settle }));
  return { decode, calls };
}

/** A resolver whose answers the test hands out, one lookup at a time. */
function scriptedResolver() {
  const lookups: Array<{ host: string; answer: (addresses: string[] | HostAnswer) => void }> = [];
  const resolve = (host: string): Promise<string[] | HostAnswer> => new Promise((answer) => lookups.push({ host, answer }));
  return { resolve, lookups };
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

function rig(options: { dataPlane?: boolean } = {}) {
  const clock = new ManualClock(t0.getTime());
  const secrets = new MemorySecrets();
  const bindings = new MemoryBindings();
  const decoder = scriptedDecoder();
  const resolver = scriptedResolver();
  const policy = new DestinationPolicy({ clusterCidrs: [], allowed: [] });
  const hostResolver = new HostResolver({ resolve: resolver.resolve, clock });
  const inputs = new BindingInputs({
    bindings,
    secrets,
    listenerPorts,
    decode: decoder.decode,
    ...(options.dataPlane === false ? {} : { hosts: { resolver: hostResolver, destinations: () => policy } }),
    clock,
  });
  // Two readers, as the manager has: every wake goes to both.
  const woken: Array<[string, string]> = [];
  inputs.onChange((key) => woken.push(['status', key]));
  inputs.onChange((key) => woken.push(['proxy', key]));
  const withPfx = (name: string, rv = '1'): void => secrets.put(secret(`${name}-pfx`, { 'keystore.p12': 'PFX', password: 'pw' }, { resourceVersion: rv }));
  const add = (name: string, host = 'api.partner.example'): ClientCertificateBinding => {
    withPfx(name);
    const b = binding({ name, spec: { host, certificate: { secretRef: { name: `${name}-pfx` }, passwordSecretRef: { name: `${name}-pfx` } } } });
    bindings.put(b);
    return b;
  };
  return { clock, secrets, bindings, decoder, resolver, hostResolver, inputs, woken, add, withPfx };
}

function ready(g: Gathered) {
  assert.ok(g.ready, `expected ready inputs, got pending (requeueAfterMs ${g.requeueAfterMs})`);
  return g;
}

describe('BindingInputs: decodes', () => {
  const cases: Array<{
    name: string;
    outcome: IdentityOutcome | 'still decoding';
    meanwhile?: IdentityOutcome;
    expect: { ready: boolean; identity?: IdentityOutcome; requeueAfterMs: number | undefined };
  }> = [
    {
      name: 'still decoding, nothing kept meanwhile: pending, and the decode wakes it',
      outcome: 'still decoding',
      expect: { ready: false, requeueAfterMs: undefined },
    },
    {
      name: 'still decoding, the caller keeps what it served: ready with that',
      outcome: 'still decoding',
      meanwhile: served,
      expect: { ready: true, identity: served, requeueAfterMs: undefined },
    },
    { name: 'decoded: ready, nothing to look at again', outcome: good, expect: { ready: true, identity: good, requeueAfterMs: undefined } },
    {
      name: 'a verdict on the file is a verdict, whatever the caller kept',
      outcome: wrongPassword,
      meanwhile: served,
      expect: { ready: true, identity: wrongPassword, requeueAfterMs: undefined },
    },
    {
      name: 'stopped by the sandbox’s clock: a verdict for now, tried again after decodeRetryTransientMs',
      outcome: stopped,
      expect: { ready: true, identity: stopped, requeueAfterMs: inputPolicy.decodeRetryTransientMs },
    },
    {
      name: 'stopped, the caller keeps what it served: ready with that, and tried again all the same',
      outcome: stopped,
      meanwhile: served,
      expect: { ready: true, identity: served, requeueAfterMs: inputPolicy.decodeRetryTransientMs },
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const r = rig({ dataPlane: false });
      const b = r.add('a');
      const first = await r.inputs.gather(b, c.meanwhile ? { meanwhile: c.meanwhile } : {});
      assert.equal(r.decoder.calls.length, 1, 'the first gather starts the decode');
      let g = first;
      if (c.outcome !== 'still decoding') {
        r.decoder.calls[0]!.settle(c.outcome);
        await settle();
        assert.deepEqual(r.woken, [
          ['status', 'team-a/a'],
          ['proxy', 'team-a/a'],
        ]);
        g = await r.inputs.gather(b, c.meanwhile ? { meanwhile: c.meanwhile } : {});
      }
      assert.equal(g.ready, c.expect.ready);
      assert.equal(g.requeueAfterMs, c.expect.requeueAfterMs);
      if (g.ready) assert.equal(g.inputs.identity, c.expect.identity);
      assert.equal(r.decoder.calls.length, 1, 'one decode per Secret version');
      r.inputs.close();
    });
  }

  test('a stopped decode is decoded again once decodeRetryTransientMs have passed, not before', async () => {
    const r = rig({ dataPlane: false });
    const b = r.add('a');
    await r.inputs.gather(b);
    r.decoder.calls[0]!.settle(stopped);
    await settle();
    r.clock.advance(inputPolicy.decodeRetryTransientMs - 1);
    await r.inputs.gather(b);
    assert.equal(r.decoder.calls.length, 1);
    r.clock.advance(1);
    await r.inputs.gather(b);
    assert.equal(r.decoder.calls.length, 2);
    r.inputs.close();
  });

  test('a Secret that is missing is a verdict without a decode', async () => {
    const r = rig({ dataPlane: false });
    const b = binding({ name: 'lost' });
    r.bindings.put(b);
    const g = ready(await r.inputs.gather(b));
    assert.equal(g.inputs.identity, undefined);
    assert.equal(r.decoder.calls.length, 0);
    r.inputs.close();
  });

  test('a stored binding naming Secret "." or "..": never asked for, never indexed, never decoded', async () => {
    const r = rig({ dataPlane: false });
    const asked: string[] = [];
    const getAll = r.secrets.getAll.bind(r.secrets);
    r.secrets.getAll = (namespace, names) => {
      asked.push(...names);
      return getAll(namespace, names);
    };
    const b = binding({
      name: 'dots',
      spec: { certificate: { secretRef: { name: '.' }, passwordSecretRef: { name: '..' } }, serverCA: { secretRef: { name: 'ca' } } },
    });
    r.bindings.put(b);
    ready(await r.inputs.gather(b));
    assert.deepEqual(asked, ['ca']);
    assert.equal(r.inputs.isReferenced('team-a/.'), false);
    assert.equal(r.inputs.isReferenced('team-a/..'), false);
    assert.equal(r.decoder.calls.length, 0);
    r.inputs.close();
  });

  test('a rotated Secret wakes the bindings that read it, for every reader, and no others', async () => {
    const r = rig({ dataPlane: false });
    r.add('a');
    r.add('b');
    r.woken.length = 0;
    r.withPfx('a', '2');
    assert.deepEqual(r.woken, [
      ['status', 'team-a/a'],
      ['proxy', 'team-a/a'],
    ]);
    assert.equal(r.inputs.isReferenced('team-a/a-pfx'), true);
    r.bindings.delete(r.bindings.list().find((b) => b.metadata.name === 'a')!);
    assert.equal(r.inputs.isReferenced('team-a/a-pfx'), false, 'the index follows the bindings');
    r.inputs.close();
  });

  test('offline, gatherSettled awaits the decode', async () => {
    const r = rig({ dataPlane: false });
    const b = r.add('a');
    const gathered = r.inputs.gatherSettled(b);
    await settle();
    r.decoder.calls[0]!.settle(good);
    assert.equal((await gathered).identity, good);
    r.inputs.close();
  });
});

describe('BindingInputs: hosts', () => {
  /** Gathers after the decode has settled, so only the host decides. */
  async function decoded(r: ReturnType<typeof rig>, b: ClientCertificateBinding): Promise<Gathered> {
    const first = await r.inputs.gather(b);
    if (first.ready || r.decoder.calls.length === 0) return first;
    r.decoder.calls.at(-1)!.settle(good);
    await settle();
    return r.inputs.gather(b);
  }

  const cases: Array<{ name: string; waitedMs: number; expect: Pick<Gathered, 'ready' | 'requeueAfterMs'> & { unanswered?: boolean } }> = [
    { name: 'never answered, just asked: pending for hostPatienceMs', waitedMs: 0, expect: { ready: false, requeueAfterMs: inputPolicy.hostPatienceMs } },
    {
      name: 'never answered, partway: pending for the rest of the patience',
      waitedMs: 500,
      expect: { ready: false, requeueAfterMs: inputPolicy.hostPatienceMs - 500 },
    },
    {
      name: 'never answered, patience spent: ready without the host’s verdict',
      waitedMs: inputPolicy.hostPatienceMs,
      expect: { ready: true, requeueAfterMs: undefined, unanswered: true },
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const r = rig();
      const b = r.add('a');
      const asked = await decoded(r, b);
      assert.equal(asked.ready, false, 'the first look at the host starts its lookup');
      r.clock.advance(c.waitedMs);
      const g = await r.inputs.gather(b);
      assert.equal(g.ready, c.expect.ready);
      assert.equal(g.requeueAfterMs, c.expect.requeueAfterMs);
      if (g.ready) {
        assert.equal(g.inputs.hostUnanswered, c.expect.unanswered);
        assert.equal(g.inputs.hostProblem('api.partner.example'), undefined, 'no verdict is not a problem');
      }
      assert.equal(r.resolver.lookups.length, 1, 'one lookup, however often it is asked');
      r.woken.length = 0;
      r.resolver.lookups[0]!.answer(['203.0.113.7']);
      await settle();
      assert.ok(
        r.woken.some(([reader]) => reader === 'status') && r.woken.some(([reader]) => reader === 'proxy'),
        'the answer wakes the binding for both readers',
      );
      const answered = ready(await r.inputs.gather(b));
      assert.equal(answered.inputs.hostUnanswered, false);
      r.inputs.close();
    });
  }

  test('an answered host is judged by its last answer while it is looked up again', async () => {
    const r = rig();
    const b = r.add('a');
    await decoded(r, b);
    r.resolver.lookups[0]!.answer([]);
    await settle();
    r.clock.advance(inputPolicy.hostAnswerTtlMs);
    const g = ready(await r.inputs.gather(b));
    assert.equal(g.inputs.hostProblem('api.partner.example')?.reason, reasons.HostUnresolvable);
    assert.equal(g.inputs.hostUnanswered, false);
    r.inputs.close();
  });

  test('1,000 bindings on a broken host: one lookup per hostRelookMs, and a wake only when the answer changed', async () => {
    const r = rig();
    const keys: string[] = [];
    for (let i = 0; i < 1000; i++) keys.push(bindingKey(r.add(`b${i}`, 'typo.partner.example')));
    const all = r.bindings.list();
    // Every binding decoded (one Secret each), then asked about its host: the host is looked up once.
    for (const b of all) await r.inputs.gather(b);
    for (const call of r.decoder.calls) call.settle(good);
    await settle();
    for (const b of all) await r.inputs.gather(b);
    assert.equal(r.resolver.lookups.length, 1);
    r.resolver.lookups[0]!.answer([]);
    await settle();
    for (const b of all) assert.equal(ready(await r.inputs.gather(b)).inputs.hostProblem('typo.partner.example')?.reason, reasons.HostUnresolvable);

    r.woken.length = 0;
    r.clock.advance(inputPolicy.hostRelookMs);
    assert.equal(r.resolver.lookups.length, 2, 'one lookup for the host, not one per binding');
    r.resolver.lookups[1]!.answer([]);
    await settle();
    assert.equal(r.woken.length, 0, 'the same answer wakes nobody');

    r.clock.advance(inputPolicy.hostRelookMs);
    assert.equal(r.resolver.lookups.length, 3);
    r.resolver.lookups[2]!.answer(['203.0.113.7']);
    await settle();
    assert.equal(new Set(r.woken.filter(([reader]) => reader === 'proxy').map(([, key]) => key)).size, 1000, 'a new answer wakes every binding on the host');
    assert.deepEqual(new Set(r.woken.map(([, key]) => key)), new Set(keys));

    // Fixed: still looked at, but on its answer's lifetime (no TTL here: hostAnswerTtlMs),
    // not every hostRelookMs: a name that later turns to a refused address is caught.
    for (const b of all) await r.inputs.gather(b);
    assert.equal(r.clock.pending, 1, 'one re-look timer for the host, whatever the bindings');
    r.clock.advance(inputPolicy.hostRelookMs);
    assert.equal(r.resolver.lookups.length, 3, 'not looked up again before its answer runs out');
    r.clock.advance(inputPolicy.hostAnswerTtlMs - inputPolicy.hostRelookMs);
    assert.equal(r.resolver.lookups.length, 4, 'looked up again when its answer runs out');
    r.inputs.close();
  });

  test('DNS rebinding: a served host whose answer turns refused is looked at again on its TTL, and the proxy gets no address for it', async () => {
    const r = rig();
    const b = r.add('a', 'rebind.partner.example');
    await decoded(r, b);
    r.resolver.lookups[0]!.answer({ addresses: ['203.0.113.7'], ttlSeconds: 1 });
    await settle();
    const served = ready(await r.inputs.gather(b));
    assert.equal(served.inputs.hostProblem('rebind.partner.example'), undefined);
    assert.deepEqual(served.inputs.hostAddresses('rebind.partner.example'), ['203.0.113.7']);
    r.woken.length = 0;
    r.clock.advance(inputPolicy.hostTtlFloorMs - 1);
    assert.equal(r.resolver.lookups.length, 1, 'TTL 1 is held to the floor');
    r.clock.advance(1);
    assert.equal(r.resolver.lookups.length, 2, 'looked up again when the floor runs out');
    r.resolver.lookups[1]!.answer({ addresses: ['127.0.0.1'], ttlSeconds: 1 });
    await settle();
    assert.ok(
      r.woken.some(([reader, key]) => reader === 'proxy' && key === bindingKey(b)),
      'the proxy side is woken',
    );
    const refused = ready(await r.inputs.gather(b));
    assert.equal(refused.inputs.hostProblem('rebind.partner.example')?.reason, reasons.DestinationNotAllowed);
    assert.equal(refused.inputs.hostAddresses('rebind.partner.example'), undefined);
    r.inputs.close();
  });

  test('a host no binding names any more is forgotten', async () => {
    const r = rig();
    const b = r.add('a', 'once.partner.example');
    await decoded(r, b);
    r.resolver.lookups[0]!.answer(['203.0.113.7']);
    await settle();
    await r.inputs.gather(b);
    assert.equal(r.hostResolver.size, 1);
    r.bindings.delete(b);
    assert.equal(r.hostResolver.size, 0);
    assert.equal(r.clock.pending, 0);
    r.inputs.close();
  });

  test('a deleted binding stops its host’s re-looks', async () => {
    const r = rig();
    const b = r.add('a', 'typo.partner.example');
    await decoded(r, b);
    r.resolver.lookups[0]!.answer([]);
    await settle();
    await r.inputs.gather(b);
    assert.equal(r.clock.pending, 1);
    r.bindings.delete(b);
    r.clock.advance(inputPolicy.hostRelookMs);
    assert.equal(r.resolver.lookups.length, 1, 'nobody waits on the host: it is not looked up again');
    r.inputs.close();
  });
});

describe('BindingInputs: ports', () => {
  test('one allocation for every reader; a status written but not yet seen holds its port', async () => {
    const r = rig({ dataPlane: false });
    r.add('a');
    const b = r.add('b');
    // The status controller wrote 10002 for b; the cache does not show it yet.
    r.inputs.useWrittenStatus((binding) => (binding.metadata.name === 'b' ? { listenerPort: 10002 } : undefined));
    const gatherers = [
      (x: ClientCertificateBinding) => r.inputs.gatherSettled(x),
      async (x: ClientCertificateBinding) => ready(await r.inputs.gather(x)).inputs,
    ];
    r.decoder.calls.length = 0;
    for (const gather of gatherers) {
      const gathering = gather(b);
      await settle();
      for (const call of r.decoder.calls) call.settle(good);
      const { ports } = await gathering;
      assert.deepEqual(ports.get('team-a/b'), { ok: true, port: 10002 });
      assert.deepEqual(ports.get('team-a/a'), { ok: true, port: 10000 });
    }
    r.inputs.close();
  });

  test('a moved port wakes its binding for every reader', async () => {
    const r = rig({ dataPlane: false });
    r.withPfx('first');
    const first = binding({ name: 'first', status: { listenerPort: 10000 } });
    r.bindings.put(first);
    const late = binding({ name: 'late', creationTimestamp: '2026-02-01T00:00:00Z', spec: { listenerPort: 10000 } });
    r.withPfx('late');
    r.bindings.put(late);
    const before = (await r.inputs.gatherSettled(late)).ports.get('team-a/late');
    assert.equal(before?.ok, false, 'the port it asks for is taken');
    r.woken.length = 0;
    r.bindings.delete(first);
    await r.inputs.gatherSettled(late);
    assert.deepEqual(r.woken, [
      ['status', 'team-a/late'],
      ['proxy', 'team-a/late'],
    ]);
    r.inputs.close();
  });
});

describe('BindingInputs: listener ports belong to namespaces', () => {
  /** Secrets that also say whether one exists, as the Secret cache's watch does. */
  class WatchedSecrets extends MemorySecrets {
    readonly #present = new Set<string>();
    override put(s: SecretLike): void {
      this.#present.add(objectKey(s.metadata.namespace ?? '', s.metadata.name));
      super.put(s);
    }
    /** Gone from the watch; what was read stays, as a cache's last read would until the next. */
    remove(namespace: string, name: string): void {
      this.#present.delete(objectKey(namespace, name));
    }
    exists(namespace: string, name: string): boolean {
      return this.#present.has(objectKey(namespace, name));
    }
  }

  /** Namespaces in memory, with the events a watch would send. */
  class MemoryNamespaces implements NamespaceSource {
    readonly #namespaces = new Map<string, NamespaceMeta>();
    readonly #handlers: Array<(now: NamespaceMeta | undefined, before: NamespaceMeta | undefined) => void> = [];
    readable = true;
    list(): readonly NamespaceMeta[] | undefined {
      return this.readable ? [...this.#namespaces.values()] : undefined;
    }
    get(name: string): NamespaceMeta | undefined {
      return this.#namespaces.get(name);
    }
    onChange(handler: (now: NamespaceMeta | undefined, before: NamespaceMeta | undefined) => void): void {
      this.#handlers.push(handler);
    }
    put(ns: NamespaceMeta): void {
      const before = this.#namespaces.get(ns.name);
      this.#namespaces.set(ns.name, ns);
      for (const h of this.#handlers) h(ns, before);
    }
  }

  const quarantineMs = 10 * 60_000;
  const brokenGraceMs = 60 * 60_000;

  function tenantRig(share = 2) {
    const clock = new ManualClock(t0.getTime());
    const secrets = new WatchedSecrets();
    const bindings = new MemoryBindings();
    const namespaces = new MemoryNamespaces();
    for (const name of ['team-a', 'team-b']) namespaces.put({ name, labels: { 'kubernetes.io/metadata.name': name }, annotations: {} });
    const released: Array<readonly PortRelease[]> = [];
    const inputs = new BindingInputs({
      bindings,
      secrets,
      listenerPorts,
      decode: async () => good,
      portPolicy: { quarantineMs, share, brokenGraceMs, onReleased: (r) => released.push(r) },
      namespaces,
      clock,
    });
    const woken: string[] = [];
    inputs.onChange((key) => woken.push(key));
    const pfx = (namespace: string, name: string): void =>
      secrets.put({ ...secret(`${name}-pfx`, { 'keystore.p12': 'PFX', password: 'pw' }), metadata: { name: `${name}-pfx`, namespace, resourceVersion: '1' } });
    const put = (namespace: string, name: string, spec: Partial<ClientCertificateBinding['spec']> = {}, created = '2026-01-01T00:00:00Z') => {
      const b = binding({
        name,
        namespace,
        creationTimestamp: created,
        spec: { certificate: { secretRef: { name: `${name}-pfx` }, passwordSecretRef: { name: `${name}-pfx` } }, ...spec },
      });
      bindings.put(b);
      return b;
    };
    const portOf = async (b: ClientCertificateBinding) => {
      // The first gather starts the decode, which settles at once here.
      let gathered = await inputs.gather(b);
      if (!gathered.ready) {
        await settle();
        gathered = await inputs.gather(b);
      }
      const g = ready(gathered);
      const outcome = g.inputs.ports.get(bindingKey(b));
      return { port: outcome?.ok ? outcome.port : outcome?.reason, requeueAfterMs: g.requeueAfterMs, consent: g.inputs.consent };
    };
    return { clock, secrets, bindings, namespaces, inputs, woken, released, pfx, put, portOf };
  }

  test('a binding whose certificate Secret does not exist holds no port, and takes one when the Secret arrives', async () => {
    const r = tenantRig();
    const b = r.put('team-a', 'early');
    assert.equal((await r.portOf(b)).port, reasons.SecretNotFound);
    r.pfx('team-a', 'early');
    assert.ok(r.woken.includes('team-a/early'));
    assert.equal((await r.portOf(b)).port, 10000);
  });

  test('a binding whose Secret goes keeps its port through the grace, then gives it up to its namespace', async () => {
    const r = tenantRig();
    r.pfx('team-a', 'rotting');
    const b = r.put('team-a', 'rotting');
    assert.equal((await r.portOf(b)).port, 10000);
    r.secrets.remove('team-a', 'rotting-pfx');
    const within = await r.portOf(b);
    assert.equal(within.port, 10000, 'a Secret deleted and recreated (a rotation) moves nothing');
    assert.equal(within.requeueAfterMs, brokenGraceMs + 1, 'looked at again when the grace runs out');
    r.clock.advance(brokenGraceMs);
    assert.equal((await r.portOf(b)).port, reasons.SecretNotFound);
    assert.deepEqual(r.released.at(-1), [{ port: 10000, namespace: 'team-a', untilMs: r.clock.now() + quarantineMs }]);
  });

  test("a deleted binding's port waits out the quarantine for another namespace, which is looked at again then", async () => {
    const r = tenantRig();
    r.pfx('team-b', 'victim');
    const victim = r.put('team-b', 'victim');
    assert.equal((await r.portOf(victim)).port, 10000);
    r.pfx('team-a', 'taker');
    const taker = r.put('team-a', 'taker', { listenerPort: 10000 });
    assert.equal((await r.portOf(taker)).port, reasons.ListenerPortConflict);
    r.bindings.delete(victim);
    const waiting = await r.portOf(taker);
    assert.equal(waiting.port, reasons.ListenerPortQuarantined);
    assert.equal(waiting.requeueAfterMs, quarantineMs + 1, 'time alone frees it: the gatherer says when to look again');
    assert.deepEqual(r.released.at(-1), [{ port: 10000, namespace: 'team-b', untilMs: t0.getTime() + quarantineMs }]);
    r.clock.advance(quarantineMs);
    assert.equal((await r.portOf(taker)).port, 10000);
  });

  test("a namespace past its share waits, another is not affected, and the platform's annotation raises the share", async () => {
    const r = tenantRig(1);
    for (const name of ['first', 'second']) r.pfx('team-a', name);
    const first = r.put('team-a', 'first', {}, '2026-01-01T00:00:00Z');
    const second = r.put('team-a', 'second', {}, '2026-01-02T00:00:00Z');
    r.pfx('team-b', 'other');
    const other = r.put('team-b', 'other', {}, '2026-01-03T00:00:00Z');
    assert.equal((await r.portOf(first)).port, 10000);
    assert.equal((await r.portOf(second)).port, reasons.NamespacePortQuotaExceeded);
    assert.equal((await r.portOf(other)).port, 10001);
    r.namespaces.put({ name: 'team-a', labels: {}, annotations: { [annotationMaxListenerPorts]: '2' } });
    assert.equal((await r.portOf(second)).port, 10002);
  });

  test('consent: the gathered verdict names the selected namespaces that do not consent, and a label change wakes the binding', async () => {
    const r = tenantRig();
    r.pfx('team-a', 'shared');
    const b = r.put('team-a', 'shared', { allowedNamespaces: { matchLabels: { 'kubernetes.io/metadata.name': 'team-b' } } });
    const before = await r.portOf(b);
    assert.equal(before.consent?.ok, false);
    assert.equal(before.consent?.ok === false && before.consent.reason, reasons.NamespaceConsentMissing);
    r.woken.length = 0;
    r.namespaces.put({ name: 'team-b', labels: { 'kubernetes.io/metadata.name': 'team-b', [consentLabel('team-a')]: 'true' }, annotations: {} });
    assert.deepEqual(r.woken, ['team-a/shared']);
    assert.deepEqual((await r.portOf(b)).consent, { ok: true });
    // A controller that may not list Namespaces says so rather than guess.
    r.namespaces.readable = false;
    const unread = (await r.portOf(b)).consent;
    assert.equal(unread?.ok === false ? unread.reason : undefined, reasons.NamespaceConsentUnverified);
  });
});
