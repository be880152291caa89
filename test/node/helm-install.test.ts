import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { pollUntil } from '../harness/poll.ts';
import { useNodeCluster } from '../harness/use-node-cluster.ts';
import { InClusterStory, systemNamespace, type Partner } from '../support/in-cluster-story.ts';

// The Helm chart as users install it, on a real kubelet node: `helm install` of
// deploy/helm/mtls-egress into a namespace enforcing the restricted Pod Security level,
// with the project's image, then the kustomize e2e's seed scenario (test/node/product.test.ts):
// a partner Pod that demands a client certificate, a binding, Ready, and an application
// Pod whose plain-HTTP call reaches the partner with the binding's certificate; then a
// `helm upgrade` from the default data plane (HAProxy) to nginx, which serves it too. The node
// is shared by the run's files, one after another: this one starts from a node without
// mtls-egress and leaves it so.

const cluster = await useNodeCluster();
const story = new InClusterStory(cluster);
let partner: Partner;
let teamA: string;
let notes: string;
let endpoint: string;
let serial: string;

before(async () => {
  await story.uninstall();
  partner = await story.startPartner();
  // The partner is inside the cluster, whose ranges the proxy may not reach unless opened.
  const destinations = InClusterStory.partnerDestinations(partner).join(',');
  notes = await story.helmInstall([`allowedDestinations={${destinations}}`]);
  teamA = await story.workloads.namespace('team-a');
});

after(() => story.uninstall());

describe('on a real node: helm install of the chart, a partner, an application', () => {
  test('helm install --wait: both Deployments Available under restricted Pod Security; NOTES tell how to bind', async () => {
    const labels = JSON.parse(await story.workloads.kubectlOk(['get', 'namespace', systemNamespace, '-o', 'jsonpath={.metadata.labels}'])) as Record<
      string,
      string
    >;
    assert.equal(labels['pod-security.kubernetes.io/enforce'], 'restricted');
    for (const name of ['mtls-egress-controller', 'mtls-egress-proxy']) {
      const managedBy = await story.workloads.kubectlOk([
        'get',
        'deployment',
        '--namespace',
        systemNamespace,
        name,
        '-o',
        'jsonpath={.metadata.labels.app\\.kubernetes\\.io/managed-by}',
      ]);
      assert.equal(managedBy, 'Helm', name);
    }
    assert.match(notes, /STATUS: deployed/);
    assert.match(notes, /kubectl create secret generic partner-keystore -n team-a/);
    assert.match(notes, /kind: ClientCertificateBinding/);
  });

  test('a binding in team-a to the partner becomes Ready: every proxy replica serves its certificate', async () => {
    const client = partner.pki.issueClient({ cn: 'payments.acme.example' });
    serial = client.serial;
    await story.bind(teamA, 'partner-api', partner, client);
    const b = await story.waitReady(teamA, 'partner-api', serial);
    endpoint = b.status!.endpoint!;
    assert.match(endpoint, new RegExp(`^http://mtls-egress-proxy\\.${systemNamespace}\\.svc:\\d+$`));
  });

  test('an application Pod in team-a calls status.endpoint over plain HTTP; the partner sees the binding’s certificate', async () => {
    await story.workloads.client(teamA, 'app');
    const answer = await story.waitForSerial(teamA, 'app', `${endpoint}/accounts`, serial);
    assert.equal(answer.cn, 'payments.acme.example');
    assert.equal(answer.sni, partner.host);
    assert.equal(answer.host, partner.host);
  });

  test('Prometheus can scrape both: the controller’s metrics Service and each agent’s port, through the NetworkPolicies', async () => {
    const monitoring = await story.workloads.namespace('monitoring');
    // The chart admits scrapes only from namespaces labelled so (metricsAccess).
    await story.workloads.kubectlOk(['label', 'namespace', monitoring, 'mtls-egress.io/monitoring=true']);
    await story.workloads.client(monitoring, 'prometheus');
    // Either replica answers through the Service; only the leader exports per-binding series.
    const metrics = `http://mtls-egress-controller-metrics.${systemNamespace}.svc:8080/metrics`;
    await pollUntil(
      async () => {
        const r = await story.workloads.fetchFrom(monitoring, 'prometheus', metrics);
        return r.ok && new RegExp(`^mtls_egress_binding_ready_reason\\{namespace="${teamA}",name="partner-api",[^}]*reason="Ready"\\} 1$`, 'm').test(r.output)
          ? true
          : undefined;
      },
      { what: 'the leader’s per-binding series through the metrics Service', timeoutMs: 60_000, intervalMs: 500 },
    );
    const podIps = (
      await story.workloads.kubectlOk([
        'get',
        'pods',
        '--namespace',
        systemNamespace,
        '-l',
        'app.kubernetes.io/name=mtls-egress-proxy',
        '-o',
        'jsonpath={.items[*].status.podIP}',
      ])
    )
      .trim()
      .split(/\s+/);
    assert.ok(podIps.length >= 1);
    for (const ip of podIps) {
      const agent = await story.workloads.waitForFetch(monitoring, 'prometheus', `http://${ip}:8082/metrics`, true);
      assert.match(agent, /^mtls_egress_agent_applies_total\{result="applied"\} [1-9]/m);
    }
  });

  test('helm upgrade --set dataPlane=nginx: the proxy rolls to nginx, and the binding is served by it', async () => {
    await story.helmUpgrade(['dataPlane=nginx']);
    for (const name of ['mtls-egress-controller', 'mtls-egress-proxy']) {
      const args = JSON.parse(
        await story.workloads.kubectlOk(['get', 'deployment', '--namespace', systemNamespace, name, '-o', 'jsonpath={.spec.template.spec.containers[0].args}']),
      ) as string[];
      assert.ok(args.includes('--data-plane=nginx'), `${name}: ${args.join(' ')}`);
    }
    // A new certificate, so that Ready proves the nginx replicas serve it.
    const rotated = partner.pki.issueClient({ cn: 'payments.acme.example' });
    await story.putPfx(teamA, 'partner-api-pfx', rotated);
    await story.waitReady(teamA, 'partner-api', rotated.serial);
    serial = rotated.serial;
    await story.waitForSerial(teamA, 'app', endpoint, serial);
  });

  test('a binding to the cluster’s own API server is refused: DestinationNotAllowed', async () => {
    await story.kube.putSecret(teamA, 'kube-ca', { 'ca.crt': partner.pki.ca.certPem });
    await story.kube.createBinding(teamA, 'kube-api', {
      host: `kubernetes.default.svc.${cluster.clusterDomain}`,
      certificate: { secretRef: { name: 'partner-api-pfx' }, passwordSecretRef: { name: 'partner-api-pfx' } },
      serverCA: { secretRef: { name: 'kube-ca' } },
    });
    await story.kube.waitForBinding(
      teamA,
      'kube-api',
      'DestinationNotAllowed',
      (b) => b.status?.conditions?.find((c) => c.type === 'Ready')?.reason === reasons.DestinationNotAllowed,
      60_000,
    );
  });
});
