import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { annotationContentHash } from '../../src/api/labels.ts';
import type { KubeObject } from '../../src/api/meta.ts';
import { isNotFound } from '../../src/k8s/client.ts';
import { Informer } from '../../src/k8s/informer.ts';
import { OwnedObjects, type OwnedObject } from '../../src/k8s/owned-objects.ts';
import { createLogger } from '../../src/log.ts';
import { pollUntil } from '../harness/poll.ts';
import { useControlPlane } from '../harness/use-control-plane.ts';
import { TestKube } from '../support/kube.ts';

// The owned-object writer against the real API server: put creates, an unchanged put
// writes nothing, a changed one replaces, an edit or a deletion by someone else is
// reported (and put right by the next put), our own writes' echoes are not, and remove
// deletes.

const cluster = await useControlPlane();
const kube = new TestKube(cluster.kubeconfig);
const ownedLabel = { 'test.mtls-egress.io/owned': 'yes' };
let ns: string;
let informer: Informer<KubeObject>;
let owned: OwnedObjects<'configmaps'>;
const writes: string[] = [];
const changed: string[] = [];

function configMap(name: string, value: string): OwnedObject & { data: Record<string, string> } {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace: ns, labels: ownedLabel, annotations: { [annotationContentHash]: `hash-of-${value}` } },
    data: { value },
  } as OwnedObject & { data: Record<string, string> };
}

const path = (name: string): string => `/api/v1/namespaces/${ns}/configmaps/${name}`;
const valueOf = async (name: string): Promise<string | undefined> => (await kube.client.get<{ data?: { value?: string } }>(path(name))).data?.value;

/** Waits until the watch shows the object at this resourceVersion (or gone): any echo has arrived by then. */
async function watchShows(name: string, resourceVersion: string | undefined): Promise<void> {
  await pollUntil(() => (informer.get(`${ns}/${name}`)?.metadata.resourceVersion === resourceVersion ? true : undefined), {
    what: `the watch to show ${name} at ${resourceVersion ?? 'gone'}`,
    timeoutMs: 10_000,
  });
}

async function resourceVersionOf(name: string): Promise<string> {
  return (await kube.client.get<KubeObject>(path(name))).metadata.resourceVersion!;
}

before(async () => {
  ns = await kube.namespace('owned-objects');
  informer = new Informer<KubeObject>({
    client: kube.client,
    logger: createLogger({ level: 'silent' }),
    paths: [`/api/v1/namespaces/${ns}/configmaps`],
    query: { labelSelector: 'test.mtls-egress.io/owned=yes' },
  });
  owned = new OwnedObjects({
    client: kube.client,
    namespace: ns,
    apiPrefixes: { configmaps: '/api/v1' },
    informers: { configmaps: informer },
    wrote: (_resource, verb) => writes.push(verb),
    changedElsewhere: (_resource, o) => changed.push(o.metadata.name),
  });
  await informer.start();
  owned.seed();
});

after(() => informer.stop());

describe('OwnedObjects', () => {
  test('put creates, an unchanged put writes nothing, a changed one replaces; our own echoes are not news', async () => {
    assert.equal(await owned.put('configmaps', configMap('a', 'one')), true);
    assert.deepEqual(writes, ['create']);
    assert.equal(await valueOf('a'), 'one');
    await watchShows('a', await resourceVersionOf('a'));

    assert.equal(await owned.put('configmaps', configMap('a', 'one')), false);
    assert.deepEqual(writes, ['create'], 'the same content hash: no request at all');

    assert.equal(await owned.put('configmaps', configMap('a', 'two')), true);
    assert.deepEqual(writes, ['create', 'replace']);
    assert.equal(await valueOf('a'), 'two');
    await watchShows('a', await resourceVersionOf('a'));
    assert.deepEqual(changed, [], 'the echoes of our own writes');
  });

  test('someone else edits it: reported, and the next put writes it back though its hash is unchanged', async () => {
    changed.length = 0;
    await kube.client.mergePatch(path('a'), { data: { value: 'tampered' } });
    await pollUntil(() => (changed.includes('a') ? true : undefined), { what: 'the edit to be reported', timeoutMs: 10_000 });
    assert.equal(await owned.put('configmaps', configMap('a', 'two')), true);
    assert.equal(await valueOf('a'), 'two');
    await watchShows('a', await resourceVersionOf('a'));
    assert.deepEqual(changed, ['a'], 'the put that set it right is ours');
  });

  test('someone else deletes it: reported, and the next put creates it again', async () => {
    changed.length = 0;
    writes.length = 0;
    await kube.client.delete(path('a'));
    await pollUntil(() => (changed.includes('a') ? true : undefined), { what: 'the deletion to be reported', timeoutMs: 10_000 });
    assert.equal(await owned.put('configmaps', configMap('a', 'two')), true);
    assert.deepEqual(writes, ['create']);
    assert.equal(await valueOf('a'), 'two');
  });

  test('remove deletes what exists, quietly; removing what is not there writes nothing', async () => {
    await watchShows('a', await resourceVersionOf('a'));
    changed.length = 0;
    writes.length = 0;
    await owned.remove('configmaps', 'a');
    assert.deepEqual(writes, ['delete']);
    await assert.rejects(kube.client.get(path('a')), (err) => isNotFound(err));
    await watchShows('a', undefined);
    assert.deepEqual(changed, [], 'the echo of our own deletion');
    await owned.remove('configmaps', 'a');
    await owned.remove('configmaps', 'never-was');
    assert.deepEqual(writes, ['delete']);
  });

  test('a new term starts from what exists: seeded from the watch, an object someone made is replaced, not created', async () => {
    await kube.client.create(`/api/v1/namespaces/${ns}/configmaps`, configMap('b', 'theirs'));
    await watchShows('b', await resourceVersionOf('b'));
    owned.seed();
    writes.length = 0;
    assert.equal(await owned.put('configmaps', configMap('b', 'theirs')), false, 'what exists already holds this content');
    assert.equal(await owned.put('configmaps', configMap('b', 'ours')), true);
    assert.deepEqual(writes, ['replace']);
    assert.equal(await valueOf('b'), 'ours');
  });
});
