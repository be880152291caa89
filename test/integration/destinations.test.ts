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
