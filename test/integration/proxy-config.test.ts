import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import type { ClientCertificateBindingSpec } from '../../src/api/v1alpha1/types.ts';
import { networkPolicyName } from '../../src/model/network-policies.ts';
import {
  annotationAppliedHash,
  annotationApplyError,
  credentialSecretName,
  credentialsSelector,
  proxyConfigMapName,
} from '../../src/contract/proxy-objects.ts';
import { pollUntil } from '../harness/poll.ts';
import { useControlPlane } from '../harness/use-control-plane.ts';
import { httpGet, startController, type ControllerProcess } from '../support/controller-process.ts';
import { hasReason, TestKube, type Binding } from '../support/kube.ts';
import { PartnerPki, toPfx } from '../support/partner-pki.ts';
import { parseStamps } from '../../src/contract/rotation-stamps.ts';
import { readProxyView } from '../support/proxy-view.ts';

const password = 'proxy-config-test-password';
const cluster = await useControlPlane();
const kube = new TestKube(cluster.kubeconfig);
const pki = new PartnerPki();
let ns: string;
let controller: ControllerProcess;

// A host that resolves: the proxy-config controller leaves unresolvable ones out (HostUnresolvable).
const spec = (secret: string): ClientCertificateBindingSpec => ({
  host: 'localhost',
  certificate: { secretRef: { name: secret }, passwordSecretRef: { name: secret } },
});

async function putPfx(name: string, cn: string): Promise<string> {
  const issued = pki.issueClient({ cn });
  await kube.putPfxSecret(ns, name, issued, password);
  return issued.serial;
}

/** The index and the binding objects, as the agent reads them (bindings empty until they match the index). */
async function manifest() {
  const view = await readProxyView(kube.client, ns);
  if (!view) throw new Error('no proxy index yet');
  return { cm: view.cm, manifest: view };
}

/** Plays kubelet and the agent: a proxy Pod that is Ready and reports the hash it applied. */
async function proxyPod(name: string, appliedHash: string | undefined, applyError = ''): Promise<void> {
  const path = `/api/v1/namespaces/${ns}/pods`;
  try {
    await kube.client.create(path, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: ns, labels: { 'app.kubernetes.io/name': 'mtls-egress-proxy' } },
      spec: { containers: [{ name: 'nginx', image: 'nginx' }] },
    });
    await kube.client.mergePatch(`${path}/${name}/status`, { status: { conditions: [{ type: 'Ready', status: 'True' }] } });
  } catch (err) {
    if (!/409/.test(String(err))) throw err;
  }
  await kube.client.mergePatch(`${path}/${name}`, {
    metadata: { annotations: { [annotationAppliedHash]: appliedHash ?? null, [annotationApplyError]: applyError } },
  });
}

/** The manifest once it carries this serial for binding `name`: the controller renders asynchronously. */
async function manifestServing(name: string, serial: string) {
  return pollUntil(
    async () => {
      const r = await manifest();
      return r.manifest.bindings[`${ns}/${name}`]?.serialNumber === serial ? r.manifest : undefined;
    },
    { what: `manifest with ${name} serial ${serial}`, timeoutMs: 10_000 },
  );
}

/** mtls_egress_proxy_object_writes_total by resource and verb. */
async function objectWrites(): Promise<Record<string, Record<string, number>>> {
  const body = (await httpGet(controller.healthPort, '/metrics')).body;
  const writes: Record<string, Record<string, number>> = {};
  for (const [, resource, verb, count] of body.matchAll(/^mtls_egress_proxy_object_writes_total\{resource="([a-z]+)",verb="([a-z]+)"\} (\d+)$/gm)) {
    (writes[resource!] ??= {})[verb!] = Number(count);
  }
  return writes;
}

const programmed = (b: Binding) => b.status?.conditions?.find((c) => c.type === 'Programmed');

before(async () => {
  ns = await kube.namespace('proxycfg');
  controller = await startController({ kubeConfigPath: cluster.kubeConfigPath, namespaces: [ns], id: 'proxycfg', args: ['--data-plane', 'nginx'] });
});
after(() => controller?.kill());

describe('proxy-config controller and Programmed, against a real API server', () => {
  test('without a ready proxy the binding is Pending, and the config objects are written without key material', async () => {
    await putPfx('a-pfx', 'a.client');
    await kube.createBinding(ns, 'a', spec('a-pfx'));
    const b = await kube.waitForBinding(ns, 'a', 'Pending', hasReason(reasons.ProgrammingPending));
    assert.equal(programmed(b)?.status, 'False');
    assert.match(programmed(b)?.message ?? '', /no ready proxy replica/);
    const { cm, manifest: m } = await pollUntil(
      async () => {
        const r = await manifest().catch(() => undefined);
        return r?.manifest.bindings[`${ns}/a`] ? r : undefined;
      },
      { what: 'manifest with binding a', timeoutMs: 10_000 },
    );
    assert.equal(m.bindings[`${ns}/a`]?.fingerprintSha256, b.status?.certificate?.fingerprintSha256);
    const text = JSON.stringify(cm);
    assert.ok(!text.includes('PRIVATE KEY') && !text.includes(password));
    const creds = await kube.client.list<{ metadata: { name: string } }>(`/api/v1/namespaces/${ns}/secrets`, { labelSelector: credentialsSelector });
    assert.deepEqual(
      creds.items.map((s) => s.metadata.name),
      [credentialSecretName(`${ns}/a`)],
    );
    const np = await kube.client.get<{ spec: { ingress: Array<{ ports: Array<{ port: number }> }> } }>(
      `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies/${networkPolicyName(`${ns}/a`)}`,
    );
    assert.equal(np.spec.ingress[0]?.ports[0]?.port, b.status?.listenerPort);
  });

  test('a replica that applied the config makes the binding Programmed and Ready', async () => {
    const { manifest: m } = await manifest();
    await proxyPod('proxy-0', m.hash);
    const b = await kube.waitForBinding(ns, 'a', 'Ready', hasReason(reasons.BindingReady));
    assert.equal(programmed(b)?.status, 'True');
  });

  test('a rotation is Programmed only once the replica serves the new certificate', async () => {
    const serial = await putPfx('a-pfx', 'a.client');
    const pending = await kube.waitForBinding(
      ns,
      'a',
      'Pending after rotation',
      (b) => b.status?.certificate?.serialNumber === serial && hasReason(reasons.ProgrammingPending)(b),
    );
    assert.match(programmed(pending)?.message ?? '', /waiting for 1 of 1 ready proxy replicas/);
    await proxyPod('proxy-0', (await manifestServing('a', serial)).hash);
    await kube.waitForBinding(ns, 'a', 'Ready again', hasReason(reasons.BindingReady));
  });

  test('a binding object says which Secret version it was rendered from, and when the controller saw, read, decoded and sent it', async () => {
    const issued = pki.issueClient({ cn: 'a.client' });
    const from = Date.now();
    const resourceVersion = await kube.putSecret(ns, 'a-pfx', { 'keystore.p12': toPfx(issued, { password }), password });
    await manifestServing('a', issued.serial);
    const to = Date.now();
    const pfxSecret = await kube.client.get<{ metadata: { uid: string } }>(`/api/v1/namespaces/${ns}/secrets/a-pfx`);
    const object = await kube.client.get<{ metadata: { annotations?: Record<string, string> } }>(
      `/api/v1/namespaces/${ns}/secrets/${credentialSecretName(`${ns}/a`)}`,
    );
    const stamps = parseStamps(object.metadata.annotations);
    assert.equal(stamps?.source, `${pfxSecret.metadata.uid}@${resourceVersion}`);
    // One machine, one clock: every stage falls between the write and the manifest serving it.
    for (const [stage, at] of Object.entries(stamps!.times)) assert.ok(at >= from && at <= to, `${stage} at ${at} is not within ${from}-${to}`);
  });

  test('a replica that rejected the newest config: ProxyConfigRejected', async () => {
    const serial = await putPfx('a-pfx', 'a.client');
    const newest = await manifestServing('a', serial);
    await proxyPod('proxy-0', 'an-old-hash', 'nginx: [emerg] something broke');
    const b = await kube.waitForBinding(ns, 'a', 'rejected', hasReason(reasons.ProxyConfigRejected));
    assert.match(programmed(b)?.message ?? '', /proxy-0.*\[emerg\] something broke/);
    await proxyPod('proxy-0', newest.hash, '');
    await kube.waitForBinding(ns, 'a', 'Ready', hasReason(reasons.BindingReady));
  });

  test('a broken binding stays out of the proxy config; the others stay in', async () => {
    await kube.putSecret(ns, 'broken-pfx', { 'keystore.p12': 'garbage', password });
    await kube.createBinding(ns, 'broken', spec('broken-pfx'));
    await kube.waitForBinding(ns, 'broken', 'PfxMalformed', hasReason(reasons.PfxMalformed));
    // A binding created after the broken one: once the manifest serves it, the render that
    // put it there had seen the broken one too, so its absence below means something.
    const serial = await putPfx('witness-pfx', 'witness.client');
    await kube.createBinding(ns, 'witness', spec('witness-pfx'));
    const m = await manifestServing('witness', serial);
    assert.ok(m.bindings[`${ns}/a`]);
    assert.equal(m.bindings[`${ns}/broken`], undefined);
  });

  test('a deleted binding loses its credential Secret and NetworkPolicy', async () => {
    await putPfx('gone-pfx', 'gone.client');
    await kube.createBinding(ns, 'gone', spec('gone-pfx'));
    await pollUntil(async () => ((await manifest()).manifest.bindings[`${ns}/gone`] ? true : undefined), { what: 'gone in the manifest', timeoutMs: 10_000 });
    await kube.deleteBinding(ns, 'gone');
    await pollUntil(
      async () => {
        const creds = await kube.client.list<{ metadata: { name: string } }>(`/api/v1/namespaces/${ns}/secrets`, { labelSelector: credentialsSelector });
        const m = (await manifest()).manifest;
        const policy = await kube.client
          .get(`/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies/${networkPolicyName(`${ns}/gone`)}`)
          .catch(() => undefined);
        return !creds.items.some((s) => s.metadata.name === credentialSecretName(`${ns}/gone`)) && !m.bindings[`${ns}/gone`] && !policy ? true : undefined;
      },
      { what: 'credential Secret, NetworkPolicy and manifest entry of a deleted binding removed', timeoutMs: 10_000 },
    );
  });

  test('objects are written only when their content changed', async () => {
    // The API server turns an identical PUT into a no-op, so resourceVersions cannot tell
    // whether the controller wrote; its own write counter can.
    const before = await objectWrites();
    // A binding change that does not change what the proxy serves (an expiryWarning edit)...
    await kube.patchBinding(ns, 'a', { spec: { expiryWarning: '100h' } });
    await kube.waitForBinding(ns, 'a', 'observed', (b) => b.status?.observedGeneration === b.metadata.generation);
    // ...then one that does. Renders are serial and read the newest state, so once the
    // second change is served, every render the first could cause is done, and the writes
    // since are exactly the second change's: its credential Secret, its NetworkPolicy and
    // the ConfigMap.
    const serial = await putPfx('later-pfx', 'later.client');
    await kube.createBinding(ns, 'later', spec('later-pfx'));
    await manifestServing('later', serial);
    const writes = await pollUntil(
      async () => {
        const now = await objectWrites();
        return now.configmaps?.replace === (before.configmaps?.replace ?? 0) + 1 ? now : undefined;
      },
      { what: 'the ConfigMap write to be counted', timeoutMs: 10_000 },
    );
    const since = (resource: string, verb: string): number => (writes[resource]?.[verb] ?? 0) - (before[resource]?.[verb] ?? 0);
    assert.deepEqual(
      {
        configmaps: since('configmaps', 'replace'),
        secretsCreated: since('secrets', 'create'),
        secretsReplaced: since('secrets', 'replace'),
        policies: since('networkpolicies', 'create') + since('networkpolicies', 'replace'),
      },
      { configmaps: 1, secretsCreated: 1, secretsReplaced: 0, policies: 1 },
    );
  });

  test('a proxy object someone else deletes or edits is put back at once, without waiting for a resync', async () => {
    const secretPath = `/api/v1/namespaces/${ns}/secrets/${credentialSecretName(`${ns}/a`)}`;
    await kube.client.delete(secretPath);
    await pollUntil(async () => ((await kube.client.get(secretPath).catch(() => undefined)) ? true : undefined), {
      what: 'the deleted credential Secret to be written again',
      timeoutMs: 10_000,
    });
    const cmPath = `/api/v1/namespaces/${ns}/configmaps/${proxyConfigMapName}`;
    const original = (await manifest()).manifest.hash;
    await kube.client.mergePatch(cmPath, { binaryData: { 'manifest.json.gz': Buffer.from('not gzip').toString('base64') } });
    await pollUntil(async () => ((await manifest()).manifest?.hash === original ? true : undefined), {
      what: 'the edited ConfigMap to be written again',
      timeoutMs: 10_000,
    });
  });
});
