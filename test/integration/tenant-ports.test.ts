import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { group, plural, version, type ClientCertificateBindingSpec } from '../../src/api/v1alpha1/types.ts';
import { portReleasesName } from '../../src/controller/port-releases.ts';
import { parseReleases } from '../../src/controller/port-releases.ts';
import { networkPolicyName } from '../../src/model/network-policies.ts';
import { pollUntil } from '../harness/poll.ts';
import { useControlPlane } from '../harness/use-control-plane.ts';
import { startController, type ControllerProcess } from '../support/controller-process.ts';
import { hasReason, TestKube, type Binding } from '../support/kube.ts';
import { PartnerPki } from '../support/partner-pki.ts';
import { readProxyView } from '../support/proxy-view.ts';

// Tenant attacks on listener ports, against a real API server: each test is a team with
// edit rights in its own namespace trying to take, starve or see another team's egress.

const password = 'tenant-ports-password-never-printed-51c2';
const cluster = await useControlPlane();
const kube = new TestKube(cluster.kubeconfig);
const pki = new PartnerPki();

// localhost resolves, and the harness's controller may reach loopback: the proxy-config
// controller serves such a binding (an unresolvable host would be left out).
const spec = (secret: string, extra: Partial<ClientCertificateBindingSpec> = {}): ClientCertificateBindingSpec => ({
  host: 'localhost',
  certificate: { secretRef: { name: secret }, passwordSecretRef: { name: secret } },
  ...extra,
});

async function putPfx(namespace: string, name: string): Promise<void> {
  await kube.putPfxSecret(namespace, name, pki.issueClient({ cn: `${name}.client` }), password);
}

/** A binding whose certificate Secret exists, Ready (status-only controller), and its port. */
async function readyBinding(namespace: string, name: string, extra: Partial<ClientCertificateBindingSpec> = {}): Promise<number> {
  await putPfx(namespace, `${name}-pfx`);
  await kube.createBinding(namespace, name, spec(`${name}-pfx`, extra));
  const b = await kube.waitForBinding(namespace, name, 'Ready', hasReason(reasons.BindingReady));
  return b.status!.listenerPort!;
}

/**
 * A binding whose certificate Secret exists, and the port it was given. With a data plane,
 * Ready also waits for a proxy replica, which these tests do not run: the port is what they look at.
 */
async function boundBinding(namespace: string, name: string, extra: Partial<ClientCertificateBindingSpec> = {}): Promise<number> {
  await putPfx(namespace, `${name}-pfx`);
  await kube.createBinding(namespace, name, spec(`${name}-pfx`, extra));
  const b = await kube.waitForBinding(namespace, name, 'a port', (x) => x.status?.listenerPort !== undefined);
  return b.status!.listenerPort!;
}

const readyOrWaiting = (b: Binding) => b.status?.conditions?.find((c) => c.type === 'Ready');

/** What anyone who may write status (a '*' rule) can do. */
function forgeStatusPort(namespace: string, name: string, listenerPort: number): Promise<unknown> {
  return kube.client.mergePatch(`/apis/${group}/${version}/namespaces/${namespace}/${plural}/${name}/status`, { status: { listenerPort } });
}

async function releasesKept(namespace: string) {
  const cm = await kube.client.get<{ data?: Record<string, string> }>(`/api/v1/namespaces/${namespace}/configmaps/${portReleasesName}`).catch(() => undefined);
  return parseReleases(cm?.data?.['releases.json']);
}

function controllerFor(namespaces: string[], id: string, args: string[]): Promise<ControllerProcess> {
  return startController({ kubeConfigPath: cluster.kubeConfigPath, namespaces, id, args });
}

describe('a freed port is not taken over by another namespace', () => {
  let system: string;
  let teamA: string;
  let teamB: string;
  let controller: ControllerProcess;
  const quarantine = '6s';

  before(async () => {
    [system, teamA, teamB] = await Promise.all([kube.namespace('tp-sys'), kube.namespace('tp-a'), kube.namespace('tp-b')]);
    controller = await controllerFor([system!, teamA!, teamB!], 'tp-takeover', [
      '--listener-ports',
      '10000-10019',
      '--port-quarantine',
      quarantine,
      '--data-plane',
      'nginx',
    ]);
  });
  after(() => controller?.kill());

  test("B's binding deleted: A, waiting for B's port in another namespace, gets it only after the quarantine", async () => {
    const port = await boundBinding(teamB, 'victim');
    await putPfx(teamA, 'taker-pfx');
    await kube.createBinding(
      teamA,
      'taker',
      spec('taker-pfx', { listenerPort: port, allowedNamespaces: { matchLabels: { 'kubernetes.io/metadata.name': teamB } } }),
    );
    await kube.waitForBinding(teamA, 'taker', 'ListenerPortConflict', hasReason(reasons.ListenerPortConflict));

    await kube.deleteBinding(teamB, 'victim');
    const waiting = await kube.waitForBinding(teamA, 'taker', 'ListenerPortQuarantined', hasReason(reasons.ListenerPortQuarantined));
    assert.equal(waiting.status?.listenerPort, undefined, "B's callers may still dial the port: A must not hold it yet");
    assert.match(readyOrWaiting(waiting)?.message ?? '', new RegExp(`listener port ${port} was freed in namespace ${teamB}.*until \\d{4}-`));
    const kept = await pollUntil(async () => (await releasesKept(system)).find((r) => r.port === port), { what: 'the release kept', timeoutMs: 10_000 });
    assert.equal(kept.namespace, teamB);

    // Time alone frees it: no event wakes the binding.
    const taken = await kube.waitForBinding(teamA, 'taker', 'the port, after the quarantine', (b) => b.status?.listenerPort === port, 20_000);
    assert.equal(readyOrWaiting(taken)?.reason, reasons.ProgrammingPending, 'served by the proxy now, waiting only for a replica');
  });

  test('within its own namespace, a freed port is reused at once (a rename)', async () => {
    const port = await boundBinding(teamB, 'old-name');
    await kube.deleteBinding(teamB, 'old-name');
    const renamed = await boundBinding(teamB, 'new-name', { listenerPort: port });
    assert.equal(renamed, port);
  });

  test('a status naming a quarantined port does not hold it', async () => {
    const port = await boundBinding(teamB, 'going');
    const other = await boundBinding(teamA, 'forger');
    await kube.deleteBinding(teamB, 'going');
    await pollUntil(async () => (await releasesKept(system)).find((r) => r.port === port), { what: 'the release kept', timeoutMs: 10_000 });
    await forgeStatusPort(teamA, 'forger', port);
    const b = await kube.waitForBinding(teamA, 'forger', 'its own port written back', (x) => x.status?.listenerPort === other);
    assert.equal(b.status?.listenerPort, other);
  });
});

describe('the quarantine survives a controller restart', () => {
  test("a new controller, with no memory, still keeps B's freed port from A", async () => {
    const [system, teamA, teamB] = await Promise.all([kube.namespace('tq-sys'), kube.namespace('tq-a'), kube.namespace('tq-b')]);
    const args = ['--listener-ports', '10000-10019', '--port-quarantine', '2m', '--data-plane', 'nginx'];
    const first = await controllerFor([system, teamA, teamB], 'tq-first', args);
    let second: ControllerProcess | undefined;
    try {
      const port = await boundBinding(teamB, 'victim');
      await kube.deleteBinding(teamB, 'victim');
      const kept = await pollUntil(async () => (await releasesKept(system)).find((r) => r.port === port), { what: 'the release kept', timeoutMs: 10_000 });
      await first.kill();

      await putPfx(teamA, 'taker-pfx');
      await kube.createBinding(teamA, 'taker', spec('taker-pfx', { listenerPort: port }));
      second = await controllerFor([system, teamA, teamB], 'tq-second', args);
      const waiting = await kube.waitForBinding(teamA, 'taker', 'ListenerPortQuarantined', hasReason(reasons.ListenerPortQuarantined));
      assert.equal(waiting.status?.listenerPort, undefined);
      // The same release, not a new one started at the restart.
      assert.match(readyOrWaiting(waiting)?.message ?? '', new RegExp(new Date(kept.untilMs).toISOString().replace(/\.\d{3}Z$/, 'Z')));
      // And a binding there gets another port meanwhile: only the freed one is kept.
      const elsewhere = await boundBinding(teamA, 'elsewhere');
      assert.notEqual(elsewhere, port);
    } finally {
      await first.kill();
      await second?.kill();
    }
  });
});

describe('a binding deleted while no controller runs', () => {
  test('its port is still kept from other namespaces: its NetworkPolicy says which port it held', async () => {
    const [system, teamA, teamB] = await Promise.all([kube.namespace('tv-sys'), kube.namespace('tv-a'), kube.namespace('tv-b')]);
    const args = ['--listener-ports', '10000-10019', '--port-quarantine', '2m', '--data-plane', 'nginx'];
    const first = await controllerFor([system, teamA, teamB], 'tv-first', args);
    let second: ControllerProcess | undefined;
    try {
      const port = await boundBinding(teamB, 'victim');
      await pollUntil(
        () => kube.client.get(`/apis/networking.k8s.io/v1/namespaces/${system}/networkpolicies/${networkPolicyName(`${teamB}/victim`)}`).catch(() => undefined),
        { what: "the victim's NetworkPolicy", timeoutMs: 15_000 },
      );
      await first.kill();
      await kube.deleteBinding(teamB, 'victim');
      await putPfx(teamA, 'taker-pfx');
      await kube.createBinding(teamA, 'taker', spec('taker-pfx', { listenerPort: port }));

      second = await controllerFor([system, teamA, teamB], 'tv-second', args);
      const waiting = await kube.waitForBinding(teamA, 'taker', 'ListenerPortQuarantined', hasReason(reasons.ListenerPortQuarantined));
      assert.equal(waiting.status?.listenerPort, undefined);
      const kept = await pollUntil(async () => (await releasesKept(system)).find((r) => r.port === port), { what: 'the release kept', timeoutMs: 10_000 });
      assert.equal(kept.namespace, teamB);
    } finally {
      await first.kill();
      await second?.kill();
    }
  });
});

describe('one namespace cannot starve the others', () => {
  let system: string;
  let hog: string;
  let teamA: string;
  let controller: ControllerProcess;

  before(async () => {
    [system, hog, teamA] = await Promise.all([kube.namespace('ts-sys'), kube.namespace('ts-hog'), kube.namespace('ts-a')]);
    controller = await controllerFor([system!, hog!, teamA!], 'ts-share', ['--listener-ports', '10000-10009', '--namespace-port-share', '3']);
  });
  after(() => controller?.kill());

  test('bindings naming a missing Secret hold no port, a namespace past its share waits, and another namespace is Ready', async () => {
    // More broken bindings than the whole range: before, they would have exhausted it.
    await Promise.all(Array.from({ length: 12 }, (_, i) => kube.createBinding(hog, `broken-${i}`, spec(`missing-${i}`))));
    for (let i = 0; i < 12; i++) {
      const b = await kube.waitForBinding(hog, `broken-${i}`, 'SecretNotFound', hasReason(reasons.SecretNotFound));
      assert.equal(b.status?.listenerPort, undefined, 'a binding that cannot be served holds no port');
    }
    const held = [];
    for (let i = 0; i < 3; i++) held.push(await readyBinding(hog, `good-${i}`));
    assert.equal(new Set(held).size, 3);
    await putPfx(hog, 'one-too-many-pfx');
    await kube.createBinding(hog, 'one-too-many', spec('one-too-many-pfx'));
    const over = await kube.waitForBinding(hog, 'one-too-many', 'NamespacePortQuotaExceeded', hasReason(reasons.NamespacePortQuotaExceeded));
    assert.equal(over.status?.listenerPort, undefined);

    const port = await readyBinding(teamA, 'neighbour');
    assert.ok(!held.includes(port));
  });

  test("the platform's annotation raises one namespace's share, and the waiting binding gets a port", async () => {
    await kube.client.mergePatch(`/api/v1/namespaces/${hog}`, { metadata: { annotations: { 'mtls-egress.io/max-listener-ports': '4' } } });
    const b = await kube.waitForBinding(hog, 'one-too-many', 'Ready', hasReason(reasons.BindingReady));
    assert.ok(b.status?.listenerPort);
  });

  test('a broken binding takes a port once its Secret exists', async () => {
    await kube.client.mergePatch(`/api/v1/namespaces/${hog}`, { metadata: { annotations: { 'mtls-egress.io/max-listener-ports': '5' } } });
    await putPfx(hog, 'missing-0');
    const b = await kube.waitForBinding(hog, 'broken-0', 'Ready', hasReason(reasons.BindingReady));
    assert.ok(b.status?.listenerPort);
  });
});

describe('a binding whose Secret is gone gives its port up after the grace', () => {
  test('it keeps the port through the grace, then holds none, and gets it back with its Secret', async () => {
    const [system, teamA, teamB] = await Promise.all([kube.namespace('tg-sys'), kube.namespace('tg-a'), kube.namespace('tg-b')]);
    const controller = await controllerFor([system, teamA, teamB], 'tg-grace', ['--listener-ports', '10000-10019', '--broken-port-grace', '3s']);
    try {
      const port = await readyBinding(teamA, 'rotting');
      await kube.deleteSecret(teamA, 'rotting-pfx');
      const within = await kube.waitForBinding(teamA, 'rotting', 'SecretNotFound', hasReason(reasons.SecretNotFound));
      assert.equal(within.status?.listenerPort, port, 'a Secret missing for a moment moves nothing');
      // Time alone ends the grace: no event wakes the binding.
      await kube.waitForBinding(teamA, 'rotting', 'its port given up', (b) => b.status?.listenerPort === undefined, 15_000);
      // Given up, but still its namespace's: another namespace does not get it.
      await putPfx(teamB, 'taker-pfx');
      await kube.createBinding(teamB, 'taker', spec('taker-pfx', { listenerPort: port }));
      await kube.waitForBinding(teamB, 'taker', 'ListenerPortQuarantined', hasReason(reasons.ListenerPortQuarantined));
      await putPfx(teamA, 'rotting-pfx');
      const back = await kube.waitForBinding(teamA, 'rotting', 'Ready', hasReason(reasons.BindingReady));
      assert.equal(back.status?.listenerPort, port);
    } finally {
      await controller.kill();
    }
  });
});

describe('status is output, never input', () => {
  let system: string;
  let teamA: string;
  let teamB: string;
  let controller: ControllerProcess;

  before(async () => {
    [system, teamA, teamB] = await Promise.all([kube.namespace('tst-sys'), kube.namespace('tst-a'), kube.namespace('tst-b')]);
    controller = await controllerFor([system!, teamA!, teamB!], 'tst-status', ['--listener-ports', '10000-10019']);
  });
  after(() => controller?.kill());

  test("a status write of the proxy's own port (8081) is written back", async () => {
    const port = await readyBinding(teamA, 'self');
    await forgeStatusPort(teamA, 'self', 8081);
    const b = await kube.waitForBinding(teamA, 'self', 'the true port written back', (x) => x.status?.listenerPort === port);
    assert.equal(readyOrWaiting(b)?.reason, reasons.BindingReady);
  });

  test("a status write of a neighbour's port, by an older binding, is written back and the neighbour keeps it", async () => {
    // The forger is older than the victim: oldest-wins alone would hand it the port.
    const forgerPort = await readyBinding(teamA, 'older-forger');
    const victimPort = await readyBinding(teamB, 'younger-victim');
    await forgeStatusPort(teamA, 'older-forger', victimPort);
    await kube.waitForBinding(teamA, 'older-forger', 'its own port written back', (x) => x.status?.listenerPort === forgerPort);
    // Another change makes the controller look at everyone again: the victim still holds its port.
    await readyBinding(teamB, 'bystander');
    const victim = await kube.getBinding(teamB, 'younger-victim');
    assert.equal(victim.status?.listenerPort, victimPort);
    assert.equal(readyOrWaiting(victim)?.reason, reasons.BindingReady);
  });
});

describe('with a data plane: consent to allowedNamespaces, and a forged status does not stop the configuration', () => {
  let system: string;
  let teamA: string;
  let teamB: string;
  let teamC: string;
  let controller: ControllerProcess;

  before(async () => {
    [system, teamA, teamB, teamC] = await Promise.all([kube.namespace('tc-sys'), kube.namespace('tc-a'), kube.namespace('tc-b'), kube.namespace('tc-c')]);
    // B is selected but has not consented; C is selected and consents to calls from A.
    await kube.client.mergePatch(`/api/v1/namespaces/${teamB}`, { metadata: { labels: { 'tc-partner': 'bank' } } });
    await kube.client.mergePatch(`/api/v1/namespaces/${teamC}`, {
      metadata: { labels: { 'tc-partner': 'bank', [`caller-of.mtls-egress.io/${teamA}`]: 'true' } },
    });
    controller = await controllerFor([system!, teamA!, teamB!, teamC!], 'tc-consent', ['--listener-ports', '10000-10019', '--data-plane', 'nginx']);
  });
  after(() => controller?.kill());

  const allowedOf = (b: Binding) => b.status?.conditions?.find((c) => c.type === 'AllowedNamespaces');

  test('the NetworkPolicy admits only consenting namespaces, and the binding names those that do not consent', async () => {
    await putPfx(teamA, 'shared-pfx');
    await kube.createBinding(teamA, 'shared', spec('shared-pfx', { allowedNamespaces: { matchLabels: { 'tc-partner': 'bank' } } }));
    const b = await kube.waitForBinding(teamA, 'shared', 'NamespaceConsentMissing', (x) => allowedOf(x)?.reason === reasons.NamespaceConsentMissing);
    assert.equal(allowedOf(b)?.status, 'False');
    assert.match(allowedOf(b)?.message ?? '', new RegExp(teamB));
    assert.doesNotMatch(allowedOf(b)?.message ?? '', new RegExp(teamC));

    const np = await pollUntil(
      () =>
        kube.client
          .get<{ spec: { ingress: Array<{ from: Array<{ namespaceSelector: { matchLabels?: Record<string, string> } }> }> } }>(
            `/apis/networking.k8s.io/v1/namespaces/${system}/networkpolicies/${networkPolicyName(`${teamA}/shared`)}`,
          )
          .catch(() => undefined),
      { what: "the binding's NetworkPolicy", timeoutMs: 15_000 },
    );
    assert.deepEqual(np.spec.ingress[0]?.from[1]?.namespaceSelector.matchLabels, {
      'tc-partner': 'bank',
      [`caller-of.mtls-egress.io/${teamA}`]: 'true',
    });

    await kube.client.mergePatch(`/api/v1/namespaces/${teamB}`, { metadata: { labels: { [`caller-of.mtls-egress.io/${teamA}`]: 'true' } } });
    const consented = await kube.waitForBinding(teamA, 'shared', 'NamespacesConsent', (x) => allowedOf(x)?.reason === reasons.NamespacesConsent);
    assert.equal(allowedOf(consented)?.status, 'True');
  });

  test("a status write of 8081 is written back, the proxy keeps the true port, and other bindings' changes keep flowing", async () => {
    const port = await boundBinding(teamA, 'x');
    await forgeStatusPort(teamA, 'x', 8081);
    await kube.waitForBinding(teamA, 'x', 'the true port written back', (b) => b.status?.listenerPort === port);

    await putPfx(teamB, 'y-pfx');
    await kube.createBinding(teamB, 'y', spec('y-pfx'));
    const view = await pollUntil(
      async () => {
        const v = await readProxyView(kube.client, system);
        return v?.complete && v.bindings[`${teamB}/y`] ? v : undefined;
      },
      { what: 'the proxy index with y', timeoutMs: 15_000 },
    );
    assert.equal(view.bindings[`${teamA}/x`]?.listenerPort, port);
    assert.ok(Object.values(view.bindings).every((b) => b.listenerPort >= 10000 && b.listenerPort <= 10019));
  });
});
