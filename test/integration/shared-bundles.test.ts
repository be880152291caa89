// A CA bundle several bindings trust is stored once in the proxy namespace, against a real
// API server: before, each binding's Secret carried its own copy (50 bindings sharing a
// 900 KiB bundle put 45 MB into etcd). Bundles are content-addressed Secrets that the
// binding objects reference by digest; one goes once no binding object references it,
// and one someone else deletes or edits is put back.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { ClientCertificateBindingSpec } from '../../src/api/v1alpha1/types.ts';
import {
  annotationBundles,
  bundleDataKey,
  bundleObjectName,
  credentialSecretName,
  credentialsSelector,
  isBundleObjectName,
} from '../../src/contract/proxy-objects.ts';
import type { KubeObject } from '../../src/api/meta.ts';
import { Informer } from '../../src/k8s/informer.ts';
import { createLogger } from '../../src/log.ts';
import { pollUntil } from '../harness/poll.ts';
import { useControlPlane } from '../harness/use-control-plane.ts';
import { caBundle } from '../support/ca-bundle.ts';
import { startController, type ControllerProcess } from '../support/controller-process.ts';
import { TestKube } from '../support/kube.ts';
import { PartnerPki } from '../support/partner-pki.ts';
import { readProxyView } from '../support/proxy-view.ts';

const password = 'shared-bundles-test-password';
const cluster = await useControlPlane();
const kube = new TestKube(cluster.kubeconfig);
const pki = new PartnerPki('Shared Bundle Partner CA');
const bundle = caBundle(64 * 1024, pki.ca.certPem);
const otherBundle = caBundle(0, pki.ca.certPem);
const perNamespace = 25;
let proxyNs: string;
let teams: string[];
let controller: ControllerProcess;
/** The proxy namespace's credential Secrets as one watch delivers them, which is how the agent sees them. */
let watch: Informer<KubeObject>;
const events: Array<{ type: 'set' | 'delete'; name: string; bundles: string[] }> = [];

interface StoredSecret {
  metadata: { name: string; annotations?: Record<string, string> };
  data?: Record<string, string>;
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

const spec = (): ClientCertificateBindingSpec => ({
  host: 'localhost',
  certificate: { secretRef: { name: 'client-pfx' }, passwordSecretRef: { name: 'client-pfx' } },
  serverCA: { secretRef: { name: 'partner-ca' } },
});

async function proxySecrets(): Promise<StoredSecret[]> {
  return (await kube.client.list<StoredSecret>(`/api/v1/namespaces/${proxyNs}/secrets`, { labelSelector: credentialsSelector })).items;
}

const bundleObjects = (secrets: StoredSecret[]): StoredSecret[] => secrets.filter((s) => isBundleObjectName(s.metadata.name));

/** The proxy objects once every binding is in the index and the bundle objects are `names`, as the agent would read them. */
/** How many binding objects reference each bundle, by digest. */
function referenceCounts(secrets: StoredSecret[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const s of secrets) {
    const digest = s.metadata.annotations?.[annotationBundles];
    if (!isBundleObjectName(s.metadata.name) && digest) counts.set(digest, (counts.get(digest) ?? 0) + 1);
  }
  return counts;
}

/**
 * The proxy objects once every binding is in the index, the bundle objects are `names`,
 * and `references` (digest → binding objects) holds: the index may be complete while a
 * change is halfway through the bindings it touches.
 */
async function settled(names: string[], references: Record<string, number>): Promise<StoredSecret[]> {
  const bindings = perNamespace * 2;
  return pollUntil(
    async () => {
      const view = await readProxyView(kube.client, proxyNs);
      if (!view?.complete || Object.keys(view.bindings).length !== bindings) return undefined;
      const secrets = await proxySecrets();
      const have = bundleObjects(secrets).map((s) => s.metadata.name);
      const counts = referenceCounts(secrets);
      const referenced = Object.entries(references).every(([digest, n]) => counts.get(digest) === n);
      return referenced && have.length === names.length && names.every((n) => have.includes(n)) ? secrets : undefined;
    },
    {
      what: `${bindings} bindings served, bundle objects ${names.join(', ') || 'none'}, references ${JSON.stringify(references)}`,
      timeoutMs: 60_000,
      intervalMs: 250,
    },
  ).catch(async (err: unknown) => {
    const view = await readProxyView(kube.client, proxyNs);
    const b = await kube.getBinding(teams[0]!, 'b-0').catch(() => undefined);
    const have = bundleObjects(await proxySecrets()).map((s) => s.metadata.name);
    throw new Error(
      `${(err as Error).message}; index complete ${String(view?.complete)}, ${Object.keys(view?.bindings ?? {}).length} bindings, bundles ${have.join(', ')}; b-0: ${JSON.stringify(b?.status?.conditions)}; controller: ${controller.logs
        .filter((l) => /"level":(40|50)/.test(l))
        .slice(-5)
        .join('\n')}`,
      { cause: err },
    );
  });
}

before(async () => {
  proxyNs = await kube.namespace('bundles-proxy');
  teams = [await kube.namespace('bundles-a'), await kube.namespace('bundles-b')];
  const client = pki.issueClient({ cn: 'shared.client' });
  for (const ns of teams) {
    await kube.putSecret(ns, 'partner-ca', { 'ca.crt': bundle });
    await kube.putPfxSecret(ns, 'client-pfx', client, password);
  }
  watch = new Informer<KubeObject>({
    client: kube.client,
    logger: createLogger({ level: 'warn' }),
    paths: [`/api/v1/namespaces/${proxyNs}/secrets`],
    query: { labelSelector: credentialsSelector },
  });
  const record = (type: 'set' | 'delete') => (o: KubeObject) =>
    events.push({ type, name: o.metadata.name, bundles: (o.metadata.annotations?.[annotationBundles] ?? '').split(',').filter(Boolean).map(bundleObjectName) });
  watch.addHandlers({ onAdd: record('set'), onUpdate: record('set'), onDelete: record('delete') });
  await watch.start();
  controller = await startController({
    kubeConfigPath: cluster.kubeConfigPath,
    namespaces: [proxyNs, ...teams],
    id: 'bundles',
    args: ['--data-plane', 'haproxy'],
  });
  for (const ns of teams) for (let i = 0; i < perNamespace; i++) await kube.createBinding(ns, `b-${i}`, spec());
});
after(async () => {
  await controller?.kill();
  await watch?.stop();
});

/**
 * Replays the watch's events up to `to`, checking from `from` on: after each event, every
 * binding object the watch holds references only bundle objects it holds too, which is
 * what the agent needs. Returns the bundles held at `to`.
 */
function replayReferences(from: number, to: number): Set<string> {
  const bundles = new Set<string>();
  const references = new Map<string, string[]>();
  for (const [i, event] of events.slice(0, to).entries()) {
    if (isBundleObjectName(event.name)) {
      if (event.type === 'set') bundles.add(event.name);
      else bundles.delete(event.name);
    } else if (event.type === 'set') references.set(event.name, event.bundles);
    else references.delete(event.name);
    if (i < from) continue;
    for (const [binding, names] of references) {
      for (const name of names)
        assert.ok(bundles.has(name), `after event ${i} (${event.type} ${event.name}): ${binding} references ${name}, which the watch does not hold`);
    }
  }
  return bundles;
}

describe('shared CA bundles, against a real API server', () => {
  const shared = bundleObjectName(sha256(bundle));
  const allShare = { [sha256(bundle)]: perNamespace * 2 };

  test('50 bindings in two namespaces trusting one 64 KiB bundle: exactly one bundle object, referenced by every binding object', async () => {
    const secrets = await settled([shared], allShare);
    const [object] = bundleObjects(secrets);
    assert.equal(Buffer.from(object!.data![bundleDataKey]!, 'base64').toString('utf8'), bundle);
    const bindingObjects = secrets.filter((s) => !isBundleObjectName(s.metadata.name));
    assert.equal(bindingObjects.length, 50);
    for (const s of bindingObjects) {
      assert.equal(s.metadata.annotations?.[annotationBundles], sha256(bundle), s.metadata.name);
      const bytes = Object.values(s.data ?? {}).reduce((sum, v) => sum + v.length, 0);
      assert.ok(bytes < 16 * 1024, `${s.metadata.name} holds ${bytes} bytes: no copy of the bundle`);
    }
    // The bundle's bytes are in the namespace once: 50 copies were 50 × its size before.
    const copies = secrets.reduce(
      (n, s) => n + Object.values(s.data ?? {}).filter((v) => Buffer.from(v, 'base64').toString('utf8').includes(bundle)).length,
      0,
    );
    assert.equal(copies, 1);
  });

  test('one namespace moves to another bundle: a second object; back again: the unreferenced one is removed', async () => {
    const other = bundleObjectName(sha256(otherBundle));
    await kube.putSecret(teams[1]!, 'partner-ca', { 'ca.crt': otherBundle });
    // Each namespace's bindings reference their own namespace's bundle.
    await settled([shared, other], { [sha256(bundle)]: perNamespace, [sha256(otherBundle)]: perNamespace });
    await kube.putSecret(teams[1]!, 'partner-ca', { 'ca.crt': bundle });
    await settled([shared], allShare);
  });

  test('in the order one watch delivers them (as the agent reads them), every reference is to a bundle already there, and a bundle goes after its last reference', async () => {
    await pollUntil(() => (events.length > 0 ? true : undefined), { what: 'the watch to deliver', timeoutMs: 10_000 });
    const existing = replayReferences(0, events.length);
    assert.deepEqual([...existing], [shared], 'the bundle the bindings moved away from, and back, was removed');
    assert.ok(
      events.some((e) => e.type === 'delete' && isBundleObjectName(e.name)),
      'a bundle object was removed on the way',
    );
  });

  test('a bundle object deleted or edited by someone else is put back, and its bindings stay served', async () => {
    await kube.client.delete(`/api/v1/namespaces/${proxyNs}/secrets/${shared}`);
    await settled([shared], allShare);
    await kube.client.mergePatch(`/api/v1/namespaces/${proxyNs}/secrets/${shared}`, {
      data: { [bundleDataKey]: Buffer.from(otherBundle).toString('base64') },
    });
    await pollUntil(
      async () => {
        const object = bundleObjects(await proxySecrets())[0];
        return object && sha256(Buffer.from(object.data![bundleDataKey]!, 'base64').toString('utf8')) === sha256(bundle) ? true : undefined;
      },
      { what: 'the bundle written back', timeoutMs: 30_000 },
    );
    await settled([shared], allShare);
  });

  test('every binding deleted: the binding objects go, then the bundle', async () => {
    const from = events.length;
    for (const ns of teams) for (let i = 0; i < perNamespace; i++) await kube.deleteBinding(ns, `b-${i}`);
    await pollUntil(async () => ((await proxySecrets()).length === 0 ? true : undefined), {
      what: 'no binding or bundle object left',
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    assert.equal(
      (await proxySecrets()).some((s) => s.metadata.name === credentialSecretName(`${teams[0]}/b-0`)),
      false,
    );
    await pollUntil(() => (events.some((e, k) => k >= from && e.type === 'delete' && isBundleObjectName(e.name)) ? true : undefined), {
      what: "the watch to deliver the bundle's deletion",
      timeoutMs: 10_000,
    });
    assert.deepEqual([...replayReferences(from, events.length)], [], 'no bundle is left, and none went before its last reference');
  });
});
