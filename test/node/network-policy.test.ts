// NetworkPolicy is enforced on the node (kube-network-policies), as the product relies on:
// it creates an ingress policy per binding, so only the binding's namespace reaches its
// listener, and an egress policy for the proxy. Each case first shows the traffic flows,
// then that the policy alone stops it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useNodeCluster } from '../harness/use-node-cluster.ts';
import { NodeWorkloads } from './workloads.ts';

const cluster = await useNodeCluster();
const workloads = new NodeWorkloads(cluster);
const serviceUrl = (namespace: string, name: string): string => `http://${name}.${namespace}.svc.${cluster.clusterDomain}`;

function networkPolicy(namespace: string, name: string, spec: Record<string, unknown>): unknown {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace }, spec };
}

test('an ingress policy denies pods of another namespace and still admits its own', async () => {
  const [serverNamespace, otherNamespace] = await Promise.all([workloads.namespace('ingress-server'), workloads.namespace('ingress-other')]);
  await Promise.all([
    workloads.httpServer(serverNamespace, 'listener'),
    workloads.client(serverNamespace, 'neighbour'),
    workloads.client(otherNamespace, 'stranger'),
  ]);
  const url = serviceUrl(serverNamespace, 'listener');
  await workloads.waitForFetch(otherNamespace, 'stranger', url, true);

  // What the product's per-binding policy does: only the binding's own namespace.
  await workloads.apply([
    networkPolicy(serverNamespace, 'same-namespace-only', {
      podSelector: { matchLabels: { app: 'listener' } },
      policyTypes: ['Ingress'],
      ingress: [{ from: [{ podSelector: {} }] }],
    }),
  ]);
  const denied = await workloads.waitForFetch(otherNamespace, 'stranger', url, false);
  assert.match(denied, /^failed: /);
  const admitted = await workloads.fetchFrom(serverNamespace, 'neighbour', url);
  assert.deepEqual(admitted, { ok: true, output: 'listener uid=65532' });
});

test('an egress policy denies everything but what it allows (here: cluster DNS)', async () => {
  const [serverNamespace, egressNamespace] = await Promise.all([workloads.namespace('egress-server'), workloads.namespace('egress-client')]);
  await Promise.all([
    workloads.httpServer(serverNamespace, 'target'),
    workloads.client(egressNamespace, 'confined'),
    workloads.client(egressNamespace, 'free'),
  ]);
  const url = serviceUrl(serverNamespace, 'target');
  await workloads.waitForFetch(egressNamespace, 'confined', url, true);

  await workloads.apply([
    networkPolicy(egressNamespace, 'dns-only', {
      podSelector: { matchLabels: { app: 'confined' } },
      policyTypes: ['Egress'],
      egress: [
        {
          to: [
            { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } },
          ],
          ports: [
            { protocol: 'UDP', port: 1053 },
            { protocol: 'TCP', port: 1053 },
          ],
        },
      ],
    }),
  ]);
  const denied = await workloads.waitForFetch(egressNamespace, 'confined', url, false);
  // Denied by the policy, not by a broken name: the name still resolves through the allowed DNS.
  assert.match(denied, /^failed: (TimeoutError|ECONNREFUSED|ECONNRESET)$/);
  const lookup = await workloads.exec(egressNamespace, 'confined', [
    'node',
    '-e',
    `require('node:dns').promises.lookup(process.argv[1]).then((a) => console.log(a.address))`,
    `target.${serverNamespace}.svc.${cluster.clusterDomain}`,
  ]);
  assert.match(lookup.stdout.trim(), /^\d+\.\d+\.\d+\.\d+$/);
  // The policy selects one pod: its neighbour without a policy still gets through.
  assert.deepEqual(await workloads.fetchFrom(egressNamespace, 'free', url), { ok: true, output: 'target uid=65532' });
});
