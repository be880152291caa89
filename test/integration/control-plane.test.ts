// Self-test of the test control plane (test/harness): real etcd and kube-apiserver, the
// real CRDs, and restarts that keep data. Other integration suites build on these promises.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ApiextensionsV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import { pollUntil } from '../harness/poll.ts';
import { sharedKubeconfigEnv, useControlPlane, usePrivateControlPlane } from '../harness/use-control-plane.ts';

// This file restarts the apiserver and etcd, which would break any test file sharing the
// run's control plane, so it starts one of its own.
const controlPlane = await usePrivateControlPlane();
const core = controlPlane.kubeconfig.makeApiClient(CoreV1Api);
const customObjects = controlPlane.kubeconfig.makeApiClient(CustomObjectsApi);

const bindingCrd = 'clientcertificatebindings.mtls-egress.io';
const bindings = { group: 'mtls-egress.io', version: 'v1alpha1', plural: 'clientcertificatebindings' } as const;
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

interface BindingStatus {
  observedGeneration?: number;
  conditions?: { type: string; status: string; reason: string; message: string; lastTransitionTime: string }[];
}

interface Binding {
  metadata: { name: string; namespace: string; resourceVersion: string; generation: number };
  spec: { host: string; port: number; certificate: { secretRef: { name: string; key: string } } };
  status?: BindingStatus;
}

async function createNamespace(name: string): Promise<string> {
  await core.createNamespace({ body: { metadata: { name } } });
  return name;
}

async function createBinding(namespace: string, name: string, host: string): Promise<Binding> {
  const body = {
    apiVersion: `${bindings.group}/${bindings.version}`,
    kind: 'ClientCertificateBinding',
    metadata: { name },
    spec: { host, certificate: { secretRef: { name: `${name}-pfx` } } },
  };
  return (await customObjects.createNamespacedCustomObject({ ...bindings, namespace, body })) as Binding;
}

function readyStatus(observedGeneration: number, reason: string): BindingStatus {
  return {
    observedGeneration,
    conditions: [{ type: 'Ready', status: 'False', reason, message: 'set by the control-plane self-test', lastTransitionTime: new Date().toISOString() }],
  };
}

async function patchBindingStatus(namespace: string, name: string, status: BindingStatus): Promise<Binding> {
  return (await customObjects.patchNamespacedCustomObjectStatus({ ...bindings, namespace, name, body: { status } }, mergePatch)) as Binding;
}

interface SeenEvent {
  type: string;
  name: string;
  status: BindingStatus | undefined;
  /** Which watch connection delivered it: 1 for the first, counting up with every re-watch. */
  connection: number;
}

/**
 * A watch that re-watches from the last resourceVersion whenever its connection ends,
 * as an informer does. Returns the events seen so far and how many connections it opened.
 */
function watchBindings(kubeconfig: KubeConfig, namespace: string): { events: SeenEvent[]; connections(): number; stop(): void } {
  const watch = new Watch(kubeconfig);
  const path = `/apis/${bindings.group}/${bindings.version}/namespaces/${namespace}/${bindings.plural}`;
  const events: SeenEvent[] = [];
  let resourceVersion: string | undefined;
  let connections = 0;
  let stopped = false;
  let current: AbortController | undefined;
  const rewatchSoon = (): void => {
    if (!stopped) setTimeout(connect, 100);
  };
  const connect = async (): Promise<void> => {
    const connection = ++connections;
    const onEvent = (type: string, object: Binding): void => {
      // An ERROR event (410 Gone: resourceVersion compacted away) means list afresh;
      // a watch without a resourceVersion replays current objects as ADDED.
      if (type === 'ERROR') return void (resourceVersion = undefined);
      resourceVersion = object.metadata.resourceVersion;
      events.push({ type, name: object.metadata.name, status: object.status, connection });
    };
    current = await watch.watch(path, { resourceVersion }, onEvent, rewatchSoon);
  };
  void connect();
  return {
    events,
    connections: () => connections,
    stop: () => {
      stopped = true;
      current?.abort();
    },
  };
}

test('installs the CRDs from crds/ and waits until they are Established', async () => {
  assert.ok(controlPlane.crds.includes(bindingCrd), `installed: ${controlPlane.crds.join(', ')}`);
  const crd = await controlPlane.kubeconfig.makeApiClient(ApiextensionsV1Api).readCustomResourceDefinition({ name: bindingCrd });
  const established = crd.status?.conditions?.find((condition) => condition.type === 'Established');
  assert.equal(established?.status, 'True');
});

test('serves namespaces, Secrets, and ClientCertificateBindings with a status subresource', async () => {
  const namespace = await createNamespace('self-test-objects');
  await core.createNamespacedSecret({
    namespace,
    body: { metadata: { name: 'partner-pfx' }, data: { 'keystore.p12': Buffer.from('not a real pfx').toString('base64') } },
  });
  const secret = await core.readNamespacedSecret({ namespace, name: 'partner-pfx' });
  assert.equal(Buffer.from(secret.data?.['keystore.p12'] ?? '', 'base64').toString(), 'not a real pfx');

  const created = await createBinding(namespace, 'partner', 'api.partner.example');
  // Defaults from the CRD's schema prove the real CRD is installed, not a stand-in.
  assert.equal(created.spec.port, 443);
  assert.equal(created.spec.certificate.secretRef.key, 'keystore.p12');

  const patched = await patchBindingStatus(namespace, 'partner', readyStatus(created.metadata.generation, 'SelfTest'));
  assert.equal(patched.status?.conditions?.[0]?.reason, 'SelfTest');
  // A status write is not a spec change: the generation stays.
  assert.equal(patched.metadata.generation, created.metadata.generation);
});

test('the CRD rejects an invalid binding (validation rules run in the real apiserver)', async () => {
  const namespace = await createNamespace('self-test-validation');
  await assert.rejects(createBinding(namespace, 'bad-host', 'https://api.partner.example/path'), (error: Error & { code?: number }) => {
    assert.equal(error.code, 422);
    return true;
  });
});

test('authorizes with RBAC: a user without bindings may not read Secrets', async () => {
  const authorization = controlPlane.kubeconfig.makeApiClient(AuthorizationV1Api);
  const review = await authorization.createSubjectAccessReview({
    body: { spec: { user: 'someone', resourceAttributes: { verb: 'get', resource: 'secrets', namespace: 'default' } } },
  });
  assert.equal(review.status?.allowed, false);
});

test('a watch sees the binding again after the apiserver restarts', async (t) => {
  const namespace = await createNamespace('self-test-watch');
  const watcher = watchBindings(controlPlane.kubeconfig, namespace);
  t.after(() => watcher.stop());
  const created = await createBinding(namespace, 'watched', 'watched.partner.example');
  await pollUntil(() => watcher.events.find((event) => event.type === 'ADDED' && event.name === 'watched'), {
    what: 'the ADDED event of the watched binding',
    timeoutMs: 10_000,
  });
  const connectionsBeforeRestart = watcher.connections();

  await controlPlane.restartApiServer();
  await patchBindingStatus(namespace, 'watched', readyStatus(created.metadata.generation, 'AfterRestart'));

  const seenAfterRestart = await pollUntil(
    () =>
      watcher.events.find(
        (event) => event.connection > connectionsBeforeRestart && event.name === 'watched' && event.status?.conditions?.[0]?.reason === 'AfterRestart',
      ),
    { what: 'the status change on a watch re-established after the restart', timeoutMs: 20_000 },
  );
  assert.equal(seenAfterRestart.type, 'MODIFIED');
});

test('etcd restarts keep the data', async () => {
  const namespace = await createNamespace('self-test-etcd');
  await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'before-restart' }, data: { kept: 'yes' } } });

  await controlPlane.restartEtcd();

  const kept = await pollUntil(() => core.readNamespacedConfigMap({ namespace, name: 'before-restart' }), {
    what: 'the ConfigMap written before the etcd restart',
    timeoutMs: 20_000,
  });
  assert.equal(kept.data?.['kept'], 'yes');
  // And etcd takes writes again, not just serves reads from the apiserver's watch cache.
  await pollUntil(() => core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'after-restart' } } }), {
    what: 'a write after the etcd restart',
    timeoutMs: 20_000,
  });
});

test(
  "useControlPlane connects to the run's shared control plane",
  { skip: !process.env[sharedKubeconfigEnv] && 'no shared control plane in this run (no --test-global-setup)' },
  async () => {
    const shared = await useControlPlane();
    assert.notEqual(shared.apiServerUrl, controlPlane.apiServerUrl);
    const namespaces = await shared.kubeconfig.makeApiClient(CoreV1Api).listNamespace();
    assert.ok(namespaces.items.some((namespace) => namespace.metadata?.name === 'default'));
  },
);
