import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { pollUntil } from '../harness/poll.ts';
import { useNodeCluster } from '../harness/use-node-cluster.ts';
import { InClusterStory, systemNamespace, type Partner } from '../support/in-cluster-story.ts';
import { hasReason } from '../support/kube.ts';

// The product as users run it, on a real kubelet node: the project's image built from the
// Dockerfile, deploy/ applied with kubectl under the restricted Pod Security level, a
// partner Pod that demands a client certificate behind a Service, and application Pods
// with no certificate code. Nothing here runs as a host process but the node itself.

const cluster = await useNodeCluster();
const story = new InClusterStory(cluster);
let partner: Partner;
let teamA: string;
let endpoint: string;
const first = () => partner.pki.issueClient({ cn: 'payments.acme.example' });
let serial: string;

before(async () => {
  partner = await story.startPartner();
  // The partner is inside the cluster, whose ranges the proxy may not reach unless opened.
  await story.install({ allowedDestinations: InClusterStory.partnerDestinations(partner) });
  teamA = await story.workloads.namespace('team-a');
});

describe('on a real node: deploy/, the image, a partner, applications', () => {
  test('deploy/ runs under restricted Pod Security: both Deployments Available, one container per proxy pod', async () => {
    const labels = JSON.parse(await story.workloads.kubectlOk(['get', 'namespace', systemNamespace, '-o', 'jsonpath={.metadata.labels}'])) as Record<
      string,
      string
    >;
    assert.equal(labels['pod-security.kubernetes.io/enforce'], 'restricted');
    const pods = JSON.parse(
      await story.workloads.kubectlOk(['get', 'pods', '--namespace', systemNamespace, '-l', 'app.kubernetes.io/name=mtls-egress-proxy', '-o', 'json']),
    ) as {
      items: Array<{ spec: { containers: Array<{ name: string; image: string }>; shareProcessNamespace?: boolean } }>;
    };
    assert.ok(pods.items.length >= 1);
    for (const pod of pods.items) {
      assert.deepEqual(
        pod.spec.containers.map((c) => c.name),
        ['proxy'],
      );
      assert.equal(pod.spec.shareProcessNamespace, undefined);
      assert.match(pod.spec.containers[0]!.image, /^mtls-egress:\d/);
    }
  });

  test('a binding in team-a to the partner becomes Ready: every proxy replica serves its certificate', async () => {
    const client = first();
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

  test('an application Pod in another namespace is refused by the binding’s NetworkPolicy', async () => {
    const other = await story.workloads.namespace('team-b');
    await story.workloads.client(other, 'app');
    // Allowed from team-a at the same moment: the refusal is the policy, not the proxy.
    await story.waitForSerial(teamA, 'app', endpoint, serial);
    const denied = await story.workloads.waitForFetch(other, 'app', endpoint, false);
    assert.match(denied, /^failed: /);
  });

  test('the metrics and status ports: refused to a pod in an unlabelled namespace, admitted from the monitoring-labelled one; probes still pass', async () => {
    const [monitoring, stranger] = await Promise.all([story.workloads.namespace('monitoring'), story.workloads.namespace('stranger')]);
    await story.workloads.kubectlOk(['label', 'namespace', monitoring, 'mtls-egress.io/monitoring=true']);
    await Promise.all([story.workloads.client(monitoring, 'prometheus'), story.workloads.client(stranger, 'scraper')]);
    const urls = [
      // The per-binding series: every team's bindings, namespaces and partners.
      `http://mtls-egress-controller-metrics.${systemNamespace}.svc:8080/metrics`,
      ...(await podIps('mtls-egress-controller')).map((ip) => `http://${ip}:8080/metrics`),
      ...(await podIps('mtls-egress-proxy')).flatMap((ip) => [`http://${ip}:8081/healthz`, `http://${ip}:8082/metrics`]),
    ];
    for (const url of urls) {
      await story.workloads.waitForFetch(monitoring, 'prometheus', url, true);
      const denied = await story.workloads.waitForFetch(stranger, 'scraper', url, false);
      assert.match(denied, /^failed: /, url);
      // Admitted from the monitoring namespace at the same moment: the refusal is the policy.
      assert.equal((await story.workloads.fetchFrom(monitoring, 'prometheus', url)).ok, true, url);
    }
    // The kubelet probes these ports from the node, which NetworkPolicy always admits
    // (kube-network-policies too): every pod stays Ready under the policies.
    await story.waitAvailable();
    for (const name of ['mtls-egress-controller', 'mtls-egress-proxy']) {
      const ready = await story.workloads.kubectlOk([
        'get',
        'pods',
        '--namespace',
        systemNamespace,
        '-l',
        `app.kubernetes.io/name=${name}`,
        '-o',
        'jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}',
      ]);
      assert.match(ready.trim(), /^True( True)*$/, name);
    }
  });

  test('keys in memory, no core dumps: the config directory is a tmpfs; core size 0 for the agent, HAProxy and the controller', async () => {
    for (const pod of await podNames('mtls-egress-proxy')) {
      const seen = await processView(pod);
      assert.equal(seen.mount?.type, 'tmpfs', `${pod}: /etc/mtls-egress is ${JSON.stringify(seen.mount)}`);
      // The kubelet sizes a memory-backed emptyDir's tmpfs by its sizeLimit (128Mi).
      assert.match(seen.mount?.options ?? '', /(^|,)size=131072k(,|$)/, pod);
      // PID 1 is node itself (its main thread is named MainThread): prlimit set the limit and exec'd it.
      const agent = seen.processes.find((p) => p.pid === 1);
      assert.match(agent?.command ?? '', /^node \/app\/dist\/cli\.js agent /, pod);
      assert.deepEqual(agent?.core, ['0', '0'], `${pod}: the agent`);
      const haproxy = seen.processes.filter((p) => p.comm === 'haproxy');
      assert.ok(haproxy.length >= 1, `${pod}: HAProxy runs`);
      for (const p of haproxy) assert.deepEqual(p.core, ['0', '0'], `${pod}: haproxy pid ${p.pid}`);
    }
    for (const pod of await podNames('mtls-egress-controller')) {
      const controller = (await processView(pod)).processes.find((p) => p.pid === 1);
      assert.match(controller?.command ?? '', /^node \/app\/dist\/cli\.js controller /, pod);
      assert.deepEqual(controller?.core, ['0', '0'], `${pod}: the controller`);
    }
  });

  test('a new PFX in the Secret: Programmed follows, and the partner sees the new serial from the application Pod', async () => {
    const rotated = first();
    await story.putPfx(teamA, 'partner-api-pfx', rotated);
    await story.waitReady(teamA, 'partner-api', rotated.serial);
    serial = rotated.serial;
    await story.waitForSerial(teamA, 'app', endpoint, serial);
  });

  test('a deleted proxy Pod: its replacement serves the binding, and requests recover', async () => {
    const pods = (
      await story.workloads.kubectlOk(['get', 'pods', '--namespace', systemNamespace, '-l', 'app.kubernetes.io/name=mtls-egress-proxy', '-o', 'name'])
    )
      .trim()
      .split('\n');
    await story.workloads.kubectlOk(['delete', '--namespace', systemNamespace, pods[0]!, '--wait=false']);
    await story.waitAvailable();
    await story.waitReady(teamA, 'partner-api', serial);
    await story.waitForSerial(teamA, 'app', endpoint, serial);
  });

  test('the leader controller Pod deleted: the other takes the Lease, and a rotation still reaches status and the partner', async () => {
    const leader = await story.leaderPod();
    await story.workloads.kubectlOk(['delete', 'pod', '--namespace', systemNamespace, leader, '--wait=false']);
    await pollUntil(async () => ((await story.leaderPod().catch(() => leader)) !== leader ? true : undefined), {
      what: 'another controller to lead',
      timeoutMs: 120_000,
      intervalMs: 500,
    });
    const rotated = first();
    await story.putPfx(teamA, 'partner-api-pfx', rotated);
    await story.waitReady(teamA, 'partner-api', rotated.serial);
    serial = rotated.serial;
    await story.waitForSerial(teamA, 'app', endpoint, serial);
    // Nothing stale: no binding waits on a replica that is gone.
    const b = await story.kube.getBinding(teamA, 'partner-api');
    assert.equal(b.status?.conditions?.find((c) => c.type === 'Programmed')?.reason, reasons.Programmed);
  });

  test('a binding to the cluster’s own API server is refused: DestinationNotAllowed', async () => {
    await story.kube.putSecret(teamA, 'kube-ca', { 'ca.crt': partner.pki.ca.certPem });
    await story.kube.createBinding(teamA, 'kube-api', {
      host: `kubernetes.default.svc.${cluster.clusterDomain}`,
      certificate: { secretRef: { name: 'partner-api-pfx' }, passwordSecretRef: { name: 'partner-api-pfx' } },
      serverCA: { secretRef: { name: 'kube-ca' } },
    });
    await story.kube.waitForBinding(teamA, 'kube-api', 'DestinationNotAllowed', hasReason(reasons.DestinationNotAllowed), 60_000);
  });
});

/** One field of every system Pod of `app` (app.kubernetes.io/name), as kubectl's jsonpath gives it. */
async function podField(app: string, field: 'metadata.name' | 'status.podIP'): Promise<string[]> {
  const out = await story.workloads.kubectlOk([
    'get',
    'pods',
    '--namespace',
    systemNamespace,
    '-l',
    `app.kubernetes.io/name=${app}`,
    '-o',
    `jsonpath={.items[*].${field}}`,
  ]);
  return out.trim().split(/\s+/).filter(Boolean);
}

const podNames = (app: string): Promise<string[]> => podField(app, 'metadata.name');
const podIps = (app: string): Promise<string[]> => podField(app, 'status.podIP');

// Run in the container by `kubectl exec`: the config directory's mount, and every process's
// command and RLIMIT_CORE (soft, hard). The exec'd node itself is left out: kubectl exec
// starts it from the runtime, not under the entrypoint's prlimit.
const processViewScript = `
const fs = require('node:fs');
const mount = fs.readFileSync('/proc/self/mounts', 'utf8').split('\\n').map((l) => l.split(' ')).find((f) => f[1] === '/etc/mtls-egress');
const processes = [];
for (const pid of fs.readdirSync('/proc').filter((d) => /^[0-9]+$/.test(d) && Number(d) !== process.pid)) {
  try {
    const core = /^Max core file size\\s+(\\S+)\\s+(\\S+)/m.exec(fs.readFileSync('/proc/' + pid + '/limits', 'utf8'));
    const command = fs.readFileSync('/proc/' + pid + '/cmdline', 'utf8').split('\\0').join(' ').trim();
    processes.push({ pid: Number(pid), comm: fs.readFileSync('/proc/' + pid + '/comm', 'utf8').trim(), command, core: core && [core[1], core[2]] });
  } catch {}
}
console.log(JSON.stringify({ mount: mount && { type: mount[2], options: mount[3] }, processes }));
`;

async function processView(pod: string): Promise<{
  mount: { type: string; options: string } | undefined;
  processes: Array<{ pid: number; comm: string; command: string; core: [string, string] | null }>;
}> {
  const r = await story.workloads.exec(systemNamespace, pod, ['node', '-e', processViewScript]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Awaited<ReturnType<typeof processView>>;
}
