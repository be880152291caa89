import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import type { ClientCertificateBindingSpec } from '../../src/api/v1alpha1/types.ts';
import { proxyEgressPolicyName } from '../../src/model/network-policies.ts';
import { pollUntil } from '../harness/poll.ts';
import { useControlPlane } from '../harness/use-control-plane.ts';
import { startController, type ControllerProcess } from '../support/controller-process.ts';
import { hasReason, TestKube } from '../support/kube.ts';
import { PartnerPki } from '../support/partner-pki.ts';

// The egress destination policy against the real API server: a binding may not send the
// proxy to loopback, link-local (cloud metadata) or the cluster's own Service range, which
// the controller reads from the API's ServiceCIDRs; a platform team's
// --allowed-destinations opens an address; and the proxy pods get the same rule as an
// egress NetworkPolicy.

const cluster = await useControlPlane();
const kube = new TestKube(cluster.kubeconfig);
const pki = new PartnerPki();
let ns: string;
let controller: ControllerProcess;
let kubernetesServiceIp: string;

const spec = (host: string, extra: Partial<ClientCertificateBindingSpec> = {}): ClientCertificateBindingSpec => ({
  host,
  certificate: { secretRef: { name: 'pfx' }, passwordSecretRef: { name: 'pfx' } },
  ...extra,
});

before(async () => {
  ns = await kube.namespace('destinations');
  await kube.putPfxSecret(ns, 'pfx', pki.issueClient({ cn: 'dest.client' }), 'pw');
  kubernetesServiceIp = (await kube.client.get<{ spec: { clusterIP: string } }>('/api/v1/namespaces/default/services/kubernetes')).spec.clusterIP;
  // The default policy: nothing opened (a later flag wins over the test helper's loopback).
  controller = await startController({
    kubeConfigPath: cluster.kubeConfigPath,
    namespaces: [ns],
    id: 'dest',
    args: ['--data-plane', 'nginx', '--allowed-destinations', ''],
  });
});
after(() => controller?.kill());

describe('egress destination policy', () => {
  const refused: Array<[string, string, Partial<ClientCertificateBindingSpec>, RegExp]> = [
    ['the cloud metadata address', '169.254.169.254', { serverName: 'metadata.example' }, /169\.254\.0\.0\/16: link-local/],
    [
      'a host that resolves to loopback',
      'localhost',
      {},
      /resolves to (127\.0\.0\.1|::1), which is not an allowed egress destination \((127\.0\.0\.0\/8|::1\/128): loopback/,
    ],
  ];
  for (const [what, host, extra, message] of refused) {
    test(`${what} is refused: DestinationNotAllowed, an Event, and left out of the proxy`, async () => {
      const name = host.replace(/[^a-z0-9]+/g, '-');
      await kube.createBinding(ns, name, spec(host, extra));
      const b = await kube.waitForBinding(ns, name, 'DestinationNotAllowed', hasReason(reasons.DestinationNotAllowed));
      const programmed = b.status?.conditions?.find((c) => c.type === 'Programmed');
      assert.equal(programmed?.reason, reasons.DestinationNotAllowed);
      assert.match(programmed?.message ?? '', message);
      assert.deepEqual(
        (await kube.waitForEvents(ns, name, 1)).map((e) => [e.type, e.reason]),
        [['Warning', reasons.DestinationNotAllowed]],
      );
    });
  }

  test("the cluster's own Service range, read from the API, is refused", async () => {
    await kube.createBinding(ns, 'cluster-ip', spec(kubernetesServiceIp, { serverName: 'kubernetes.default.svc' }));
    const b = await kube.waitForBinding(ns, 'cluster-ip', 'DestinationNotAllowed', hasReason(reasons.DestinationNotAllowed));
    assert.match(b.status?.conditions?.[0]?.message ?? '', /the cluster's pod or Service range/);
  });

  test('a partner address outside every refused range is not refused', async () => {
    await kube.createBinding(ns, 'partner', spec('192.0.2.10', { serverName: 'api.partner.example' }));
    // No proxy replica runs here, so the best it gets is Pending: refused would be another reason.
    await kube.waitForBinding(ns, 'partner', 'Pending', hasReason(reasons.ProgrammingPending));
  });

  test('the proxy pods get the same rule as an egress NetworkPolicy', async () => {
    const np = await pollUntil(
      () =>
        kube.client
          .get<{ spec: { policyTypes: string[]; egress: Array<{ to: Array<{ ipBlock?: { cidr: string; except?: string[] } }> }> } }>(
            `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies/${proxyEgressPolicyName}`,
          )
          .catch(() => undefined),
      { what: 'the proxy egress NetworkPolicy', timeoutMs: 10_000 },
    );
    assert.deepEqual(np.spec.policyTypes, ['Egress']);
    const except = np.spec.egress.flatMap((rule) => rule.to.flatMap((peer) => peer.ipBlock?.except ?? []));
    assert.ok(except.includes('169.254.0.0/16') && except.includes('127.0.0.0/8'), except.join());
    assert.ok(
      except.some((cidr) => cidr.startsWith(kubernetesServiceIp.split('.').slice(0, 2).join('.'))),
      `the Service range is refused: ${except.join()}`,
    );
  });

  test('--allowed-destinations opens an address a platform team vouches for', async () => {
    const opened = await kube.namespace('destinations-open');
    await kube.putPfxSecret(opened, 'pfx', pki.issueClient({ cn: 'open.client' }), 'pw');
    const c = await startController({
      kubeConfigPath: cluster.kubeConfigPath,
      namespaces: [opened],
      id: 'dest-open',
      args: ['--data-plane', 'nginx', '--allowed-destinations', `${kubernetesServiceIp}/32`],
    });
    try {
      await kube.createBinding(opened, 'cluster-ip', spec(kubernetesServiceIp, { serverName: 'kubernetes.default.svc' }));
      await kube.waitForBinding(opened, 'cluster-ip', 'Pending, not refused', hasReason(reasons.ProgrammingPending));
    } finally {
      await c.stop();
    }
  });
});

describe("the nodes' own addresses are refused by default", () => {
  // Addresses no other test uses: Nodes are cluster-wide, and every controller on this API server reads them.
  const nodeName = `dest-node-${Math.random().toString(36).slice(2, 8)}`;
  const internalIp = '198.18.77.1';
  const externalIp = '198.18.77.2';

  before(async () => {
    await kube.client.create('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: nodeName } });
    await kube.client.mergePatch(`/api/v1/nodes/${nodeName}/status`, {
      status: {
        addresses: [
          { type: 'InternalIP', address: internalIp },
          { type: 'ExternalIP', address: externalIp },
          { type: 'Hostname', address: nodeName },
        ],
      },
    });
    // As on kubeadm, kind or k3s: the API server listens on that node. (This API server keeps
    // no endpoints of its own: nothing routes to it here.)
    await kube.client.create('/api/v1/namespaces/default/endpoints', {
      apiVersion: 'v1',
      kind: 'Endpoints',
      metadata: { name: 'kubernetes', namespace: 'default' },
      subsets: [{ addresses: [{ ip: internalIp }], ports: [{ name: 'https', port: 6443, protocol: 'TCP' }] }],
    });
  });
  after(async () => {
    await kube.client.delete(`/api/v1/nodes/${nodeName}`).catch(() => undefined);
    await kube.client.delete('/api/v1/namespaces/default/endpoints/kubernetes').catch(() => undefined);
  });

  for (const [what, address] of [
    ["a node's InternalIP", internalIp],
    ["a node's ExternalIP", externalIp],
  ] as const) {
    test(`${what}, at the kubelet's port, is DestinationNotAllowed`, async () => {
      const name = `node-${address.replace(/\./g, '-')}`;
      await kube.createBinding(ns, name, spec(address, { serverName: 'kubelet.example', port: 10250 }));
      const b = await kube.waitForBinding(ns, name, 'DestinationNotAllowed', hasReason(reasons.DestinationNotAllowed));
      assert.match(
        b.status?.conditions?.find((c) => c.type === 'Programmed')?.message ?? '',
        new RegExp(`${address.replace(/\./g, '\\.')}/32: a node's address: the kubelet and node ports`),
      );
    });
  }

  test("the proxy's egress NetworkPolicy excepts every node address", async () => {
    const except = await pollUntil(
      async () => {
        const np = await kube.client
          .get<{ spec: { egress: Array<{ to: Array<{ ipBlock?: { except?: string[] } }> }> } }>(
            `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies/${proxyEgressPolicyName}`,
          )
          .catch(() => undefined);
        const list = np?.spec.egress.flatMap((rule) => rule.to.flatMap((peer) => peer.ipBlock?.except ?? [])) ?? [];
        return list.includes(`${internalIp}/32`) && list.includes(`${externalIp}/32`) ? list : undefined;
      },
      { what: "the node's addresses in the proxy egress NetworkPolicy's except list", timeoutMs: 15_000 },
    );
    assert.ok(except.includes('127.0.0.0/8'));
    // Excepting the nodes must not cut the agent off from the API server, which listens on one here.
    const np = await kube.client.get<{ spec: { egress: Array<{ to: Array<{ ipBlock?: { cidr: string } }>; ports?: Array<{ port: number }> }> } }>(
      `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies/${proxyEgressPolicyName}`,
    );
    assert.ok(
      np.spec.egress.some((rule) => rule.to.some((peer) => peer.ipBlock?.cidr === `${internalIp}/32`) && rule.ports?.some((p) => p.port === 6443)),
      `a rule opens the API server at ${internalIp}:6443: ${JSON.stringify(np.spec.egress)}`,
    );
  });
});

describe('where no pod range is known, every binding says so', () => {
  test('no Node podCIDRs and no --cluster-cidrs: DestinationPolicyComplete=False (PodRangeUnknown) on the binding, Ready not gated, and a log line', async () => {
    await kube.createBinding(ns, 'no-pod-range', spec('192.0.2.11', { serverName: 'api.partner.example' }));
    const b = await kube.waitForBinding(ns, 'no-pod-range', 'the pod-range condition', (x) =>
      Boolean(x.status?.conditions?.some((c) => c.type === 'DestinationPolicyComplete')),
    );
    const condition = b.status?.conditions?.find((c) => c.type === 'DestinationPolicyComplete');
    assert.equal(condition?.status, 'False');
    assert.equal(condition?.reason, reasons.PodRangeUnknown);
    assert.match(condition?.message ?? '', /--cluster-cidrs/);
    // No proxy replica runs here: Pending is the most it gets, and the gap does not make it worse.
    await kube.waitForBinding(ns, 'no-pod-range', 'Pending', hasReason(reasons.ProgrammingPending));
    assert.ok(
      controller.logs.some((line) => line.includes(reasons.PodRangeUnknown) && line.includes('"level":"warn"')),
      'one warn line at start names the gap',
    );
  });

  test('--cluster-cidrs names the ranges: no condition', async () => {
    const named = await kube.namespace('destinations-named');
    await kube.putPfxSecret(named, 'pfx', pki.issueClient({ cn: 'named.client' }), 'pw');
    const c = await startController({
      kubeConfigPath: cluster.kubeConfigPath,
      namespaces: [named],
      id: 'dest-named',
      args: ['--data-plane', 'nginx', '--cluster-cidrs', '10.244.0.0/16,10.96.0.0/12'],
    });
    try {
      await kube.createBinding(named, 'partner', spec('192.0.2.12', { serverName: 'api.partner.example' }));
      const b = await kube.waitForBinding(named, 'partner', 'Pending', hasReason(reasons.ProgrammingPending));
      assert.equal(
        b.status?.conditions?.find((x) => x.type === 'DestinationPolicyComplete'),
        undefined,
      );
      assert.ok(!c.logs.some((line) => line.includes(reasons.PodRangeUnknown)));
    } finally {
      await c.stop();
    }
  });
});

describe("where Calico's IPAM hands out pod addresses, its IP pools are the pod range", () => {
  // Calico IPAM leaves Node.spec.podCIDRs empty: its IPPool objects say where pods live.
  const crdName = 'ippools.crd.projectcalico.org';
  const poolName = `dest-pool-${Math.random().toString(36).slice(2, 8)}`;

  before(async () => {
    await kube.client
      .create('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', {
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        metadata: { name: crdName },
        spec: {
          group: 'crd.projectcalico.org',
          scope: 'Cluster',
          names: { kind: 'IPPool', listKind: 'IPPoolList', plural: 'ippools', singular: 'ippool' },
          versions: [
            { name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } },
          ],
        },
      })
      .catch((err: { status?: number }) => {
        if (err.status !== 409) throw err;
      });
    await pollUntil(() => kube.client.list('/apis/crd.projectcalico.org/v1/ippools').catch(() => undefined), {
      what: 'the IPPool CRD to be served',
      timeoutMs: 20_000,
    });
    await kube.client.create('/apis/crd.projectcalico.org/v1/ippools', {
      apiVersion: 'crd.projectcalico.org/v1',
      kind: 'IPPool',
      metadata: { name: poolName },
      spec: { cidr: '10.123.0.0/16' },
    });
  });
  after(async () => {
    await kube.client.delete(`/apis/crd.projectcalico.org/v1/ippools/${poolName}`).catch(() => undefined);
  });

  test('a pod address from the pool is DestinationNotAllowed, and no binding says the pod range is unknown', async () => {
    const calico = await kube.namespace('destinations-calico');
    await kube.putPfxSecret(calico, 'pfx', pki.issueClient({ cn: 'calico.client' }), 'pw');
    const c = await startController({
      kubeConfigPath: cluster.kubeConfigPath,
      namespaces: [calico],
      id: 'dest-calico',
      args: ['--data-plane', 'nginx', '--allowed-destinations', ''],
    });
    try {
      await kube.createBinding(calico, 'pod', spec('10.123.4.5', { serverName: 'pod.partner.example' }));
      const b = await kube.waitForBinding(calico, 'pod', 'DestinationNotAllowed', hasReason(reasons.DestinationNotAllowed));
      assert.match(b.status?.conditions?.[0]?.message ?? '', /10\.123\.0\.0\/16: the cluster's pod or Service range/);
      assert.equal(
        b.status?.conditions?.find((x) => x.type === 'DestinationPolicyComplete'),
        undefined,
      );
    } finally {
      await c.stop();
    }
  });
});
