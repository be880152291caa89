import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { bindingsToRecheck, programmedCheck, ServedCertificateHistory, type ProxyReplica } from '../../src/status/programmed.ts';
import { networkPolicies } from '../../src/model/network-policies.ts';
import { HostResolver } from '../../src/inputs/host-resolution.ts';
import type { EgressRoute } from '../../src/model/egress-routes.ts';
import { Sensitive } from '../../src/pki/sensitive.ts';

const replica = (name: string, appliedHash?: string, extra: Partial<ProxyReplica> = {}): ProxyReplica => ({
  name,
  ready: true,
  appliedHash,
  applyError: undefined,
  ...extra,
});

describe('programmedCheck', () => {
  const history = new ServedCertificateHistory();
  history.record('h1', { 'ns/a': { fingerprintSha256: 'FP1' } });
  history.record('h2', { 'ns/a': { fingerprintSha256: 'FP2' }, 'ns/b': { fingerprintSha256: 'FPB' } });
  const reasonOf = (fp: string | undefined, replicas: ProxyReplica[], key = 'ns/a') => {
    const r = programmedCheck(key, fp, replicas, history.served);
    return r.ok ? 'ok' : r.reason;
  };

  const cases: Array<[string, string | undefined, ProxyReplica[], string]> = [
    ['every ready replica serves the current certificate', 'FP2', [replica('p1', 'h2'), replica('p2', 'h2')], 'ok'],
    ['one replica still serves the old certificate', 'FP2', [replica('p1', 'h2'), replica('p2', 'h1')], reasons.ProgrammingPending],
    ['a not-ready replica does not count', 'FP2', [replica('p1', 'h2'), replica('p2', 'h1', { ready: false })], 'ok'],
    ['no ready replica at all', 'FP2', [replica('p1', 'h2', { ready: false })], reasons.ProgrammingPending],
    ['an unknown configuration hash', 'FP2', [replica('p1', 'unknown')], reasons.ProgrammingPending],
    ['a replica that has applied nothing', 'FP2', [replica('p1')], reasons.ProgrammingPending],
    [
      'a rejected configuration names the replica',
      'FP2',
      [replica('p1', 'h1', { applyError: 'nginx: [emerg] unknown directive' })],
      reasons.ProxyConfigRejected,
    ],
    ['no usable certificate', undefined, [replica('p1', 'h2')], reasons.ProgrammingPending],
  ];
  for (const [name, fp, replicas, want] of cases) test(name, () => assert.equal(reasonOf(fp, replicas), want));

  test('the rejected-config message says which replica and why', () => {
    const r = programmedCheck('ns/a', 'FP2', [replica('proxy-7', 'h1', { applyError: 'nginx: [emerg] bad' })], history.served);
    assert.ok(!r.ok && /proxy-7.*\[emerg\] bad/.test(r.message));
  });

  test('history forgets the oldest configurations beyond its limit', () => {
    const small = new ServedCertificateHistory(2);
    small.record('x', {});
    small.record('y', {});
    small.record('z', {});
    assert.equal(small.served('x'), undefined);
    assert.deepEqual(small.served('z'), {});
  });

  test('history is bounded by entries too: at ten thousand bindings it keeps the newest few, never fewer than two', () => {
    const config = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`ns/b${i}`, { fingerprintSha256: `F${i}` }]));
    const bounded = new ServedCertificateHistory(32, 25_000);
    for (const hash of ['h1', 'h2', 'h3', 'h4']) bounded.record(hash, config(10_000));
    assert.deepEqual(
      ['h1', 'h2', 'h3', 'h4'].map((h) => bounded.served(h) !== undefined),
      [false, false, true, true],
    );
    const tiny = new ServedCertificateHistory(32, 1);
    tiny.record('a', config(10));
    tiny.record('b', config(10));
    assert.ok(tiny.served('a') && tiny.served('b'), 'the one being written and the one replicas serve now');
  });
});

describe("bindingsToRecheck: which bindings a proxy replica's change can move", () => {
  const history = new ServedCertificateHistory();
  history.record('h1', { 'ns/a': { fingerprintSha256: 'FP1' }, 'ns/b': { fingerprintSha256: 'FPB' }, 'ns/gone': { fingerprintSha256: 'FPG' } });
  history.record('h2', { 'ns/a': { fingerprintSha256: 'FP2' }, 'ns/b': { fingerprintSha256: 'FPB' }, 'ns/new': { fingerprintSha256: 'FPN' } });
  const cases: Array<[string, ProxyReplica, ProxyReplica, 'all' | string[]]> = [
    ['a new configuration applied: the bindings it changed, added or removed', replica('p1', 'h1'), replica('p1', 'h2'), ['ns/a', 'ns/new', 'ns/gone']],
    ['nothing the status reads changed', replica('p1', 'h2'), replica('p1', 'h2'), []],
    ['the replica turned ready', replica('p1', 'h2', { ready: false }), replica('p1', 'h2'), 'all'],
    ['an apply error appeared', replica('p1', 'h1'), replica('p1', 'h1', { applyError: 'nginx: [emerg] bad' }), 'all'],
    ['the first configuration applied', replica('p1'), replica('p1', 'h1'), 'all'],
    ['a configuration the history no longer holds', replica('p1', 'forgotten'), replica('p1', 'h2'), 'all'],
  ];
  for (const [name, before, after, want] of cases) {
    test(name, () => {
      const got = bindingsToRecheck(before, after, history.served);
      assert.deepEqual(got === 'all' ? got : [...got].sort(), want === 'all' ? want : [...want].sort());
    });
  }

  test('every binding whose Programmed differs between the two is among them', () => {
    for (const key of ['ns/a', 'ns/b', 'ns/new', 'ns/gone']) {
      for (const fp of ['FP1', 'FP2', 'FPB', 'FPN', 'FPG']) {
        const moved = programmedCheck(key, fp, [replica('p1', 'h1')], history.served).ok !== programmedCheck(key, fp, [replica('p1', 'h2')], history.served).ok;
        const listed = bindingsToRecheck(replica('p1', 'h1'), replica('p1', 'h2'), history.served);
        if (moved) assert.ok(listed === 'all' || listed.includes(key), `${key} with ${fp}`);
      }
    }
  });
});

describe('networkPolicies', () => {
  const route = (namespace: string, name: string, port: number): EgressRoute => ({
    key: `${namespace}/${name}`,
    namespace,
    name,
    listenerPort: port,
    host: 'h.example',
    addresses: ['203.0.113.10'],
    port: 443,
    serverName: 'h.example',
    clientCertificate: { chainPem: 'C', privateKey: new Sensitive('K'), serialNumber: '1', fingerprintSha256: 'F' },
  });

  test('only the binding namespace reaches its port, plus the allowedNamespaces that consent', () => {
    const [a, b] = networkPolicies(
      [route('team-a', 'x', 10001), route('team-b', 'y', 10002)],
      (k) => (k === 'team-b/y' ? { matchLabels: { partner: 'bank' } } : undefined),
      'mtls-egress-system',
      { app: 'proxy' },
      { managed: 'yes' },
    );
    assert.deepEqual(a!.spec.ingress, [
      { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'team-a' } } }], ports: [{ protocol: 'TCP', port: 10001 }] },
    ]);
    assert.deepEqual(b!.spec.ingress[0]!.from, [
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'team-b' } } },
      // The CNI admits a selected namespace only if it carries team-b's consent label.
      { namespaceSelector: { matchLabels: { partner: 'bank', 'caller-of.mtls-egress.io/team-b': 'true' } } },
    ]);
    assert.deepEqual(a!.spec.podSelector, { matchLabels: { app: 'proxy' } });
    assert.equal(a!.metadata.namespace, 'mtls-egress-system');
    assert.notEqual(a!.metadata.annotations['mtls-egress.io/content-hash'], b!.metadata.annotations['mtls-egress.io/content-hash']);
  });
});

describe('HostResolver', () => {
  test('an unresolvable host gets its own reason; IPs are not looked up, and each host is asked once', async () => {
    const asked: string[] = [];
    const resolver = new HostResolver({ resolve: async (h) => (asked.push(h), h === 'typo.example' ? [] : ['203.0.113.7']) });
    const hosts = ['api.example', 'typo.example', '10.0.0.1', 'typo.example'];
    assert.equal(resolver.problemsNow(hosts, undefined, () => {}, 0).problems.size, 0, 'nothing answered yet');
    // Joins the lookups problemsNow started.
    await Promise.all(['api.example', 'typo.example'].map((host) => resolver.addresses(host, 0)));
    const { problems, unansweredForMs } = resolver.problemsNow(hosts, undefined, () => assert.fail('answered: nothing to wait for'), 1);
    assert.equal(unansweredForMs, undefined);
    assert.deepEqual([...problems.keys()], ['typo.example']);
    assert.equal(problems.get('typo.example')?.reason, reasons.HostUnresolvable);
    assert.deepEqual(asked.sort(), ['api.example', 'typo.example']);
  });

  test('problemsNow never waits: an unknown host is no problem yet, one lookup serves every caller, and each is woken by its answer', async () => {
    let calls = 0;
    let answer!: (addresses: string[]) => void;
    const resolver = new HostResolver({
      resolve: () => {
        calls++;
        return new Promise<string[]>((resolve) => (answer = resolve));
      },
    });
    let woken = 0;
    for (let i = 0; i < 100; i++) assert.equal(resolver.problemsNow(['typo.example'], undefined, () => void woken++, 0).problems.size, 0);
    assert.equal(calls, 1);
    assert.equal(resolver.problemsNow(['typo.example'], undefined, () => void woken++, 1_500).unansweredForMs, 1_500, 'how long the caller has let it run');
    answer([]);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(woken, 101);
    assert.equal(
      resolver.problemsNow(['typo.example'], undefined, () => assert.fail('answered: nothing to wait for'), 1_000).problems.get('typo.example')?.reason,
      reasons.HostUnresolvable,
    );
  });

  test("problemsNow past an answer's time judges by it while a new lookup runs, and wakes only when the answer changes", async () => {
    const answers = [[], [], ['203.0.113.7']];
    const resolver = new HostResolver({ resolve: async () => answers.shift()!, failTtlMs: 5_000 });
    await resolver.addresses('late.example', 0);
    let woken = 0;
    const wake = (): void => void woken++;
    assert.equal(resolver.problemsNow(['late.example'], undefined, wake, 6_000).problems.get('late.example')?.reason, reasons.HostUnresolvable);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(woken, 0, 'the same answer again');
    assert.equal(resolver.problemsNow(['late.example'], undefined, wake, 12_000).problems.size, 1, 'the stale answer counts until the new one is in');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(woken, 1);
    assert.equal(resolver.problemsNow(['late.example'], undefined, wake, 13_000).problems.size, 0);
  });

  test('answers are cached, failures more briefly', async () => {
    let calls = 0;
    const resolver = new HostResolver({ resolve: async () => (calls++, []), okTtlMs: 60_000, failTtlMs: 5_000 });
    await resolver.addresses('x.example', 0);
    await resolver.addresses('x.example', 4_000);
    assert.equal(calls, 1);
    await resolver.addresses('x.example', 6_000);
    assert.equal(calls, 2);
  });
});
