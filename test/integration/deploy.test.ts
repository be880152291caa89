// deploy/ against a real API server: it applies, its pods meet the restricted Pod Security
// Standard, and the controller works with exactly the ServiceAccount and RBAC it ships.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { before, describe, test } from 'node:test';
import { loadAll } from 'js-yaml';
import { annotationAppliedHash, annotationApplyError } from '../../src/api/labels.ts';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { proxyConfigMapName } from '../../src/contract/proxy-objects.ts';
import { KubeApiError, KubeClient, loadKubeConfig } from '../../src/k8s/client.ts';
import { createLogger } from '../../src/log.ts';
import { PodReporter } from '../../src/proxy/pod-reporter.ts';
import { pollUntil } from '../harness/poll.ts';
import { useControlPlane } from '../harness/use-control-plane.ts';
import { startController } from '../support/controller-process.ts';
import { hasReason, TestKube } from '../support/kube.ts';
import { PartnerPki } from '../support/partner-pki.ts';

const run = promisify(execFile);
const cluster = await useControlPlane();
const kube = new TestKube(cluster.kubeconfig);
const system = 'mtls-egress-system';
const controllerSA = `system:serviceaccount:${system}:mtls-egress-controller`;
const proxySA = `system:serviceaccount:${system}:mtls-egress-proxy`;

function kubectl(...args: string[]) {
  return run('kubectl', ['--kubeconfig', cluster.kubeConfigPath, ...args], { encoding: 'utf8' });
}

interface Rendered {
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: { template?: { metadata?: unknown; spec: unknown } };
}

async function renderedDeploy(): Promise<Rendered[]> {
  const { stdout } = await kubectl('kustomize', 'deploy/');
  return loadAll(stdout) as Rendered[];
}

describe('deploy/ against a real API server', () => {
  test('kubectl apply --server-side --dry-run=server -k deploy/ passes, then applies for real', async () => {
    // Namespaced objects can be dry-run only into a namespace that exists.
    await kubectl('apply', '--server-side', '-f', 'deploy/namespace.yaml');
    const dry = await kubectl('apply', '--server-side', '--dry-run=server', '-k', 'deploy/');
    assert.match(dry.stdout, /deployment\.apps\/mtls-egress-controller serverside-applied \(server dry run\)/);
    assert.match(dry.stdout, /deployment\.apps\/mtls-egress-proxy serverside-applied \(server dry run\)/);
    await kubectl('apply', '--server-side', '--force-conflicts', '-k', 'deploy/');
  });

  test('every pod template passes the restricted Pod Security admission', async () => {
    const docs = await renderedDeploy();
    const deployments = docs.filter((d) => d.kind === 'Deployment');
    assert.equal(deployments.length, 2);
    for (const d of deployments) {
      const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: `pss-${d.metadata.name}`, namespace: system }, spec: d.spec!.template!.spec };
      // The namespace enforces restricted: PodSecurity admission rejects a non-compliant pod even in a dry run.
      await kube.client.request('POST', `/api/v1/namespaces/${system}/pods`, { query: { dryRun: 'All' }, body: pod });
    }
    const privileged = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'pss-control', namespace: system },
      spec: { serviceAccountName: 'mtls-egress-controller', containers: [{ name: 'c', image: 'nginx' }] },
    };
    await assert.rejects(
      kube.client.request('POST', `/api/v1/namespaces/${system}/pods`, { query: { dryRun: 'All' }, body: privileged }),
      /violates PodSecurity "restricted/,
    );
  });

  test('the controller works with exactly the ServiceAccount and RBAC from deploy/', async () => {
    const ns = await kube.namespace('rbac');
    const kubeConfigPath = await kube.serviceAccountKubeconfig(system, 'mtls-egress-controller');

    const pki = new PartnerPki();
    await kube.putPfxSecret(ns, 'pfx', pki.issueClient({ cn: 'rbac.client' }), 'pw');
    // A host that resolves: the proxy-config controller leaves unresolvable ones out.
    await kube.createBinding(ns, 'rbac', { host: 'localhost', certificate: { secretRef: { name: 'pfx' }, passwordSecretRef: { name: 'pfx' } } });

    const controller = await startController({
      kubeConfigPath,
      namespaces: [ns],
      id: 'rbac',
      leaseName: 'mtls-egress-controller',
      args: ['--namespace', system, '--data-plane', 'nginx'],
    });
    try {
      // Status, an Event, the Lease, and the proxy objects in its own namespace: every write it needs.
      await kube.waitForBinding(ns, 'rbac', 'Pending on the proxy', hasReason(reasons.ProgrammingPending));
      assert.deepEqual(
        (await kube.waitForEvents(ns, 'rbac', 1)).map((e) => e.reason),
        [reasons.ProgrammingPending],
      );
      await pollUntil(() => kube.client.get(`/api/v1/namespaces/${system}/configmaps/${proxyConfigMapName}`).catch(() => undefined), {
        what: 'the proxy ConfigMap',
        timeoutMs: 10_000,
      });
      const forbidden = controller.logs.filter((l) => /\b403\b|forbidden/i.test(l));
      assert.deepEqual(forbidden, [], 'no request was refused');
    } finally {
      await controller.stop();
    }
  });

  test('deploy/samples applies, and the controller reports the sample certificate', async () => {
    await kubectl('apply', '--server-side', '-k', 'deploy/samples/');
    const controller = await startController({ kubeConfigPath: cluster.kubeConfigPath, namespaces: ['team-a'], id: 'samples', args: ['--namespace', system] });
    try {
      const b = await kube.waitForBinding('team-a', 'partner-api', 'Ready', hasReason(reasons.BindingReady));
      assert.equal(b.status?.certificate?.subject, 'CN=sample-client.example,O=Example Corp');
    } finally {
      await controller.stop();
    }
  });

  const canI: Array<[string, string, string, string | undefined, boolean]> = [
    // [who, verb, resource, namespace (undefined: cluster scope), allowed]
    [controllerSA, 'list', 'clientcertificatebindings.mtls-egress.io', undefined, true],
    [controllerSA, 'patch', 'clientcertificatebindings.mtls-egress.io/status', 'team-a', true],
    [controllerSA, 'update', 'clientcertificatebindings.mtls-egress.io', 'team-a', false],
    [controllerSA, 'delete', 'clientcertificatebindings.mtls-egress.io', 'team-a', false],
    [controllerSA, 'get', 'secrets', 'team-a', true],
    [controllerSA, 'create', 'secrets', 'team-a', false],
    [controllerSA, 'update', 'secrets', 'kube-system', false],
    [controllerSA, 'create', 'secrets', system, true],
    [controllerSA, 'create', 'configmaps', 'team-a', false],
    [controllerSA, 'create', 'networkpolicies.networking.k8s.io', 'team-a', false],
    [controllerSA, 'create', 'events', 'team-a', true],
    [controllerSA, 'create', 'pods', system, false],
    [controllerSA, 'update', 'leases.coordination.k8s.io/mtls-egress-controller', system, true],
    [controllerSA, 'update', 'leases.coordination.k8s.io/someone-else', system, false],
    [controllerSA, 'create', 'leases.coordination.k8s.io', 'team-a', false],
    [controllerSA, 'get', 'nodes', undefined, false],
    // The cluster's ranges, for the destination policy: read as lists, never a Node by name, never written.
    [controllerSA, 'list', 'nodes', undefined, true],
    [controllerSA, 'update', 'nodes', undefined, false],
    [controllerSA, 'list', 'servicecidrs.networking.k8s.io', undefined, true],
    [controllerSA, 'create', 'servicecidrs.networking.k8s.io', undefined, false],
    // The API server's own Endpoints, by name, for the proxy's egress NetworkPolicy; no other Endpoints.
    [controllerSA, 'watch', 'endpoints/kubernetes', 'default', true],
    [controllerSA, 'get', 'endpoints/someone-else', 'default', false],
    [proxySA, 'get', 'secrets', system, true],
    [proxySA, 'get', 'secrets', 'team-a', false],
    [proxySA, 'create', 'secrets', system, false],
    // Any Pod, as far as RBAC can say; the ValidatingAdmissionPolicy narrows it to its own (below).
    [proxySA, 'patch', 'pods', system, true],
    [proxySA, 'get', 'pods', system, false],
    [proxySA, 'patch', 'pods', 'team-a', false],
    [proxySA, 'list', 'clientcertificatebindings.mtls-egress.io', undefined, false],
    [proxySA, 'update', 'configmaps', system, false],
  ];
  for (const [who, verb, resource, ns, allowed] of canI) {
    const short = who.split(':').pop();
    test(`${short} ${allowed ? 'can' : 'cannot'} ${verb} ${resource}${ns ? ` in ${ns}` : ''}`, async () => {
      const [kind, sub] = resource.endsWith('/status') ? [resource.slice(0, -'/status'.length), 'status'] : [resource, undefined];
      const args = ['auth', 'can-i', verb, kind, '--as', who, ...(sub ? ['--subresource', sub] : []), ...(ns ? ['-n', ns] : [])];
      const answer = await kubectl(...args).then(
        (r) => r.stdout.trim(),
        (err: { stdout?: string }) => (err.stdout ?? '').trim(),
      );
      assert.equal(answer, allowed ? 'yes' : 'no');
    });
  }
});

// The proxy's Role may patch every Pod in its namespace (a Role cannot name the Pod it runs
// in); deploy/'s ValidatingAdmissionPolicy holds it to its own Pod and its own annotations.
// Tokens as the kubelet mounts them: requested for the proxy's ServiceAccount and bound
// to a Pod. No kubelet runs here, so the Pods stay Pending; admission does not care.
describe('the proxy’s ServiceAccount writes only its own Pod’s annotations', () => {
  const pods = { proxy: 'vap-proxy-a', otherReplica: 'vap-proxy-b', controller: 'vap-controller' };
  const podPath = (name: string): string => `/api/v1/namespaces/${system}/pods/${name}`;
  let own: KubeClient;
  let unbound: KubeClient;

  function restrictedPod(name: string, serviceAccountName: string): unknown {
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: system, labels: { 'app.kubernetes.io/name': serviceAccountName } },
      spec: {
        serviceAccountName,
        securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } },
        containers: [{ name: 'c', image: 'mtls-egress:0.1.0', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } }],
      },
    };
  }

  /** The status and message of a write, as the API server answers it. */
  async function attempt(client: KubeClient, name: string, patch: unknown): Promise<{ status: number; message: string }> {
    return client.mergePatch(podPath(name), patch).then(
      () => ({ status: 200, message: '' }),
      (err: unknown) => {
        if (!(err instanceof KubeApiError)) throw err;
        return { status: err.status, message: err.message };
      },
    );
  }

  before(async () => {
    // Applied by the first test above; applied again so this block stands on its own.
    await kubectl('apply', '--server-side', '--force-conflicts', '-k', 'deploy/');
    const created = new Map<string, { metadata: { uid: string } }>();
    for (const [name, sa] of [
      [pods.proxy, 'mtls-egress-proxy'],
      [pods.otherReplica, 'mtls-egress-proxy'],
      [pods.controller, 'mtls-egress-controller'],
    ] as const) {
      await kube.client.delete(podPath(name)).catch(() => undefined);
      await pollUntil(
        () =>
          kube.client.get(podPath(name)).then(
            () => undefined,
            () => true,
          ),
        { what: `${name} gone`, timeoutMs: 30_000 },
      );
      created.set(name, await kube.client.create(`/api/v1/namespaces/${system}/pods`, restrictedPod(name, sa)));
    }
    const uid = created.get(pods.proxy)!.metadata.uid;
    own = new KubeClient(loadKubeConfig(await kube.serviceAccountKubeconfig(system, 'mtls-egress-proxy', { boundToPod: { name: pods.proxy, uid } })));
    unbound = new KubeClient(loadKubeConfig(await kube.serviceAccountKubeconfig(system, 'mtls-egress-proxy')));
    // The policy is in force once it refuses the unbound token; a new policy takes a moment.
    await pollUntil(
      async () => ((await attempt(unbound, pods.proxy, { metadata: { annotations: { [annotationAppliedHash]: 'probe' } } })).status === 403 ? true : undefined),
      {
        what: 'the ValidatingAdmissionPolicy in force',
        timeoutMs: 30_000,
        intervalMs: 200,
      },
    );
  });

  test('the policy names exactly the agent’s annotations', async () => {
    const policy = (await renderedDeploy()).find((d) => d.kind === 'ValidatingAdmissionPolicy') as unknown as {
      spec: { variables: Array<{ name: string; expression: string }> };
    };
    const listed = policy.spec.variables.find((v) => v.name === 'agentAnnotations')!.expression;
    assert.deepEqual(JSON.parse(listed.replace(/'/g, '"')), [annotationAppliedHash, annotationApplyError]);
  });

  test('the agent’s own report lands: its PodReporter, with a token bound to its Pod', async () => {
    const reporter = new PodReporter({ client: own, namespace: system, podName: pods.proxy, logger: createLogger({ level: 'silent' }) });
    try {
      reporter.set({ appliedHash: 'a'.repeat(64), applyError: 'nginx: [emerg] something' });
      await pollUntil(() => (reporter.reported ? true : undefined), { what: 'the report accepted', timeoutMs: 10_000 });
      reporter.set({ appliedHash: 'b'.repeat(64), applyError: undefined });
      await pollUntil(() => (reporter.reported?.appliedHash === 'b'.repeat(64) ? true : undefined), { what: 'the second report', timeoutMs: 10_000 });
    } finally {
      await reporter.stop();
    }
    const pod = await kube.client.get<{ metadata: { annotations?: Record<string, string> } }>(podPath(pods.proxy));
    assert.equal(pod.metadata.annotations?.[annotationAppliedHash], 'b'.repeat(64));
    assert.equal(pod.metadata.annotations?.[annotationApplyError], undefined, 'removed by the second report');
  });

  const refused: Array<[string, () => KubeClient, string, unknown, RegExp]> = [
    ['the controller’s Pod', () => own, pods.controller, { metadata: { annotations: { [annotationAppliedHash]: 'x' } } }, /only the Pod its token is bound to/],
    [
      'another proxy replica',
      () => own,
      pods.otherReplica,
      { metadata: { annotations: { [annotationAppliedHash]: 'x' } } },
      /only the Pod its token is bound to/,
    ],
    [
      'its own Pod with a token bound to no Pod',
      () => unbound,
      pods.proxy,
      { metadata: { annotations: { [annotationAppliedHash]: 'x' } } },
      /only the Pod its token is bound to/,
    ],
    [
      'its own Pod’s labels',
      () => own,
      pods.proxy,
      { metadata: { labels: { 'app.kubernetes.io/name': 'mtls-egress-controller' } } },
      /only its Pod's mtls-egress\.io annotations/,
    ],
    ['its own Pod’s spec', () => own, pods.proxy, { spec: { activeDeadlineSeconds: 30 } }, /only its Pod's mtls-egress\.io annotations/],
    [
      'another annotation on its own Pod',
      () => own,
      pods.proxy,
      { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': 'now' } } },
      /only its Pod's mtls-egress\.io annotations/,
    ],
  ];
  for (const [what, client, pod, patch, message] of refused) {
    test(`refused: ${what}`, async () => {
      const answer = await attempt(client(), pod, patch);
      assert.equal(answer.status, 403, answer.message);
      assert.match(answer.message, /mtls-egress-proxy-own-pod/);
      assert.match(answer.message, message);
    });
  }

  test('and nothing it was refused changed anything', async () => {
    const controller = await kube.client.get<{ metadata: { annotations?: Record<string, string> } }>(podPath(pods.controller));
    assert.equal(controller.metadata.annotations?.[annotationAppliedHash], undefined);
    const own = await kube.client.get<{
      metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
      spec: { activeDeadlineSeconds?: number };
    }>(podPath(pods.proxy));
    assert.equal(own.metadata.labels['app.kubernetes.io/name'], 'mtls-egress-proxy');
    assert.equal(own.spec.activeDeadlineSeconds, undefined);
    assert.equal(own.metadata.annotations?.['kubectl.kubernetes.io/restartedAt'], undefined);
  });
});
