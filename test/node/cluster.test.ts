// The single-node cluster of test/harness/node-cluster.ts, as a user of the project meets
// it: a Ready node at the pinned release, the project's image running from deploy/'s name
// without a registry, under the restricted Pod Security level, with logs, exec and
// Services found by DNS name across namespaces.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { readNodeRecord } from '../harness/node-cluster-state.ts';
import { pollUntil } from '../harness/poll.ts';
import { useNodeCluster } from '../harness/use-node-cluster.ts';
import { NodeWorkloads } from './workloads.ts';

const cluster = await useNodeCluster();
const core = cluster.kubeconfig.makeApiClient(CoreV1Api);
const workloads = new NodeWorkloads(cluster);

const pinnedKubernetes = /^\s*(?:require\s+)?k8s\.io\/kubernetes\s+(v\S+)/m.exec(
  readFileSync(resolve(import.meta.dirname, '../harness/go/kubernetes/go.mod'), 'utf8'),
)?.[1];

test("the node is Ready, at the pinned Kubernetes release, on containerd 2, at the machine's own address", async () => {
  const node = await core.readNode({ name: cluster.nodeName });
  assert.equal(node.status?.conditions?.find((condition) => condition.type === 'Ready')?.status, 'True');
  assert.equal(node.status?.nodeInfo?.kubeletVersion, pinnedKubernetes);
  assert.match(node.status?.nodeInfo?.containerRuntimeVersion ?? '', /^containerd:\/\/2\./);
  assert.deepEqual(
    node.status?.addresses?.filter((address) => address.type === 'InternalIP').map((address) => address.address),
    [cluster.nodeIp],
  );
  assert.equal(node.spec?.podCIDR, cluster.podCidr);
});

test('a pod from the project image runs as uid 65532 under the restricted Pod Security level', async () => {
  const namespace = await workloads.namespace('restricted');
  // Admission really enforces the level: a root container is refused before it exists.
  const refused = await workloads.kubectl(
    ['apply', '-f', '-'],
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'as-root', namespace },
      spec: { containers: [{ name: 'as-root', image: workloads.image, securityContext: { runAsUser: 0 } }] },
    }),
  );
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /violates PodSecurity "restricted:latest"/);

  await workloads.httpServer(namespace, 'app');
  const pod = await core.readNamespacedPod({ namespace, name: 'app' });
  const status = pod.status?.containerStatuses?.[0];
  assert.equal(status?.ready, true);
  // deploy/'s short name, resolved by the kubelet to the imported image: no registry was asked.
  assert.equal(status?.image, cluster.projectImage.reference);
  const uid = await workloads.exec(namespace, 'app', ['node', '-p', 'process.getuid()']);
  assert.equal(uid.stdout.trim(), '65532');
  const status2 = await workloads.exec(namespace, 'app', ['cat', '/proc/self/status']);
  // RuntimeDefault seccomp in force (mode 2: filter), no capabilities, no privilege escalation.
  assert.match(status2.stdout, /^Seccomp:\s+2$/m);
  assert.match(status2.stdout, /^CapEff:\s+0+$/m);
  assert.match(status2.stdout, /^NoNewPrivs:\s+1$/m);
});

test('kubectl logs and exec reach the container through the kubelet', async () => {
  const namespace = await workloads.namespace('logs-exec');
  await workloads.httpServer(namespace, 'talker');
  const logs = await workloads.kubectlOk(['logs', '--namespace', namespace, 'talker']);
  assert.match(logs, /^talker listening on 8080$/m);
  const exec = await workloads.exec(namespace, 'talker', ['node', '-e', 'console.log("exec " + require("node:os").hostname())']);
  assert.equal(exec.code, 0, exec.stderr);
  assert.equal(exec.stdout.trim(), 'exec talker');
});

test("kubectl port-forward reaches a pod's port from this machine", async () => {
  const namespace = await workloads.namespace('port-forward');
  await workloads.httpServer(namespace, 'forwarded');
  const forward = spawn(cluster.kubectl, ['--kubeconfig', cluster.kubeConfigPath, 'port-forward', '--namespace', namespace, 'pod/forwarded', ':8080'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    const [, port] =
      ((await once(createInterface({ input: forward.stdout }), 'line')) as [string])[0].match(/^Forwarding from 127\.0\.0\.1:(\d+) -> 8080$/) ?? [];
    assert.ok(port !== undefined, 'kubectl printed the local port');
    const response = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(await response.text(), 'forwarded uid=65532\n');
  } finally {
    forward.kill();
  }
});

test('the guard keeps cluster traffic on this machine: nothing is forwarded out of the uplink', async () => {
  const guard = execFileSync('nft', ['list', 'table', 'inet', 'mtls-egress-node-guard'], { encoding: 'utf8' });
  const uplink = (await readNodeRecord())?.uplink ?? 'the record is missing';
  const chain = (name: string): string => new RegExp(`chain ${name} \\{([^}]*)\\}`).exec(guard)?.[1] ?? '';
  assert.match(chain('forward'), new RegExp(`hook forward .*\\n\\s+oifname "${uplink}" drop\\n`));
  assert.match(chain('postrouting'), new RegExp(`oifname "${uplink}" ip saddr 10\\.244\\.0\\.0/16 drop`));
  assert.match(chain('input'), new RegExp(`iifname "${uplink}" tcp dport @cluster_ports drop`));
  // The API server and the kubelet listen beyond loopback; the uplink cannot reach them.
  const ports = /elements = \{ ([\d, ]+) \}/.exec(guard)?.[1]?.split(', ').sort();
  assert.deepEqual(ports, [new URL(cluster.apiServerUrl).port, '10250'].sort());
});

test('a Service is reached by its DNS name from a pod in another namespace', async () => {
  const [serverNamespace, clientNamespace] = await Promise.all([workloads.namespace('dns-server'), workloads.namespace('dns-client')]);
  await Promise.all([workloads.httpServer(serverNamespace, 'echo'), workloads.client(clientNamespace, 'caller')]);
  const resolved = await workloads.exec(clientNamespace, 'caller', [
    'node',
    '-e',
    `require('node:dns').promises.lookup(process.argv[1]).then((a) => console.log(a.address))`,
    `echo.${serverNamespace}.svc.${cluster.clusterDomain}`,
  ]);
  const service = await core.readNamespacedService({ namespace: serverNamespace, name: 'echo' });
  assert.equal(resolved.stdout.trim(), service.spec?.clusterIP);
  const body = await workloads.waitForFetch(clientNamespace, 'caller', `http://echo.${serverNamespace}.svc.${cluster.clusterDomain}`, true);
  assert.equal(body, 'echo uid=65532');
  // The short form a pod's search path completes, as apps write it.
  assert.equal((await workloads.fetchFrom(clientNamespace, 'caller', `http://echo.${serverNamespace}`)).output, 'echo uid=65532');
});

test('names outside the cluster do not resolve: cluster DNS forwards nowhere', async () => {
  const namespace = await workloads.namespace('no-forward');
  await workloads.client(namespace, 'asker');
  const lookup = await workloads.exec(namespace, 'asker', [
    'node',
    '-e',
    `require('node:dns').promises.lookup('registry.npmjs.org').then(() => console.log('resolved'), (e) => console.log(e.code))`,
  ]);
  assert.notEqual(lookup.stdout.trim(), 'resolved');
});

test('an image that was never imported fails on the node at once: no registry is asked', async () => {
  const namespace = await workloads.namespace('no-pull');
  await workloads.apply([
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'absent', namespace },
      spec: {
        securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } },
        containers: [
          { name: 'absent', image: 'example.invalid/absent:1', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } },
        ],
      },
    },
  ]);
  const message = await pollUntil(
    async () => {
      const events = await core.listNamespacedEvent({ namespace, fieldSelector: 'involvedObject.name=absent,reason=Failed' });
      return events.items.find((event) => event.message?.includes('Failed to pull image'))?.message;
    },
    { what: 'the pull of an absent image to fail', timeoutMs: 60_000, intervalMs: 250 },
  );
  // The node's containerd sends every registry to a closed port on loopback.
  assert.match(message, /127\.0\.0\.1:9: connect: connection refused/);
});
