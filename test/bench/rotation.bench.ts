// Rotation latency through the proxy agent: the time from the API write of a rotated
// certificate (its credential Secret, then the proxy ConfigMap, as the controller writes
// them) until the partner sees the new serial on a request through nginx. Also the
// agent's own share of it (write the generation, nginx -t, reload until confirmed).
// Real apiserver, etcd, agent, nginx and mTLS partner on loopback; nothing is mocked.
//
//   node test/bench/rotation.bench.ts
//   BENCH_ROTATIONS=50 BENCH_BINDINGS=500 node test/bench/rotation.bench.ts

import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { annotationAppliedHash } from '../../src/contract/proxy-objects.ts';
import { renderNginx } from '../../src/dataplane/nginx/render.ts';
import { startControlPlane } from '../harness/control-plane.ts';
import { pollUntil } from '../harness/poll.ts';
import { createAgentPod, partnerRoute, podAnnotations, ProxyConfigWriter, startAgent } from '../support/agent-process.ts';
import { TestKube } from '../support/kube.ts';
import { startMtlsPartner, type PartnerSeen } from '../support/mtls-partner.ts';
import { callProxy } from '../support/nginx-process.ts';
import { PartnerPki, type Issued } from '../support/partner-pki.ts';
import { freePort } from '../harness/ports.ts';
import { temporaryDirectory } from '../harness/temporary-directories.ts';

const rotations = Number(process.env.BENCH_ROTATIONS ?? 10);
const bindings = Number(process.env.BENCH_BINDINGS ?? 50);
const podName = 'mtls-egress-proxy-0';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function summary(label: string, values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  return `${label.padEnd(34)} p50 ${percentile(sorted, 50).toFixed(0).padStart(5)} ms   max ${sorted.at(-1)!.toFixed(0).padStart(5)} ms`;
}

process.env.LOG_LEVEL ??= 'info';
const cluster = await startControlPlane();
const pki = new PartnerPki('Bench Partner CA');
const serverCert = pki.issueServer({ cn: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
const partner = await startMtlsPartner({ cert: serverCert.certPem, key: serverCert.keyPem, clientCA: pki.ca.certPem, record: false });
let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
try {
  const kube = new TestKube(cluster.kubeconfig);
  const ns = await kube.namespace('bench-rotation');
  await createAgentPod(kube.client, ns, podName);
  const writer = new ProxyConfigWriter(kube.client, ns);
  const sharedKey = pki.issueClient({ cn: 'key-donor' }).keyPem;
  const clients: Issued[] = [];
  const ports: number[] = [];
  for (let i = 0; i < bindings; i++) {
    clients.push(pki.issueClient({ cn: `bench-${i}`, keyPem: sharedKey }));
    ports.push(await freePort());
  }
  const routes = (): ReturnType<typeof partnerRoute>[] =>
    clients.map((client, i) =>
      partnerRoute({ namespace: ns, name: `b${i}`, listenerPort: ports[i]!, partnerPort: partner.port, client, partnerCA: pki.ca.certPem }),
    );
  const publish = async (): Promise<string> => {
    const current = routes();
    const rendered = renderNginx(current, { listenAddress: '127.0.0.1', workerProcesses: 2 });
    await writer.publish(writer.objects(rendered, current));
    return rendered.hash;
  };
  const waitForHash = (hash: string): Promise<unknown> =>
    pollUntil(async () => ((await podAnnotations(kube.client, ns, podName))[annotationAppliedHash] === hash ? true : undefined), {
      what: 'the applied hash',
      timeoutMs: 60_000,
      intervalMs: 20,
    });

  agent = await startAgent({
    kubeConfigPath: cluster.kubeConfigPath,
    namespace: ns,
    podName,
    configDir: join(temporaryDirectory('bench-agent'), 'config'),
    nginxPrefix: temporaryDirectory('bench-prefix'),
  });
  let t = performance.now();
  await waitForHash(await publish());
  console.log(`first config (${bindings} bindings): applied ${((performance.now() - t) / 1000).toFixed(2)} s after the API write`);

  const toPartner: number[] = [];
  const toAnnotation: number[] = [];
  for (let r = 0; r < rotations; r++) {
    const which = r % bindings;
    clients[which] = pki.issueClient({ cn: `bench-${which}` });
    const serial = clients[which]!.serial;
    t = performance.now();
    const hash = await publish();
    await pollUntil(
      async () => {
        const response = await callProxy(ports[which]!).catch(() => undefined);
        return response?.status === 200 && (JSON.parse(response.body) as PartnerSeen).serialNumber === serial ? true : undefined;
      },
      { what: `the partner to see serial ${serial}`, timeoutMs: 60_000, intervalMs: 10 },
    );
    toPartner.push(performance.now() - t);
    await waitForHash(hash);
    toAnnotation.push(performance.now() - t);
  }
  const applied = agent
    .logged('config applied')
    .slice(-rotations)
    .map((line) => line.ms as Record<string, number>);
  console.log(`${rotations} rotations of one binding among ${bindings}:`);
  console.log(summary('API write → partner sees new serial', toPartner));
  console.log(summary('API write → Pod annotation', toAnnotation));
  console.log(
    summary(
      'agent: write generation',
      applied.map((ms) => ms.write!),
    ),
  );
  console.log(
    summary(
      'agent: nginx -t',
      applied.map((ms) => ms.test!),
    ),
  );
  console.log(
    summary(
      'agent: reload until confirmed',
      applied.map((ms) => ms.reload!),
    ),
  );
  console.log(
    summary(
      'agent: total',
      applied.map((ms) => ms.total!),
    ),
  );
  console.log(`exit on SIGTERM: ${await agent.stop()}`);
} finally {
  await agent?.kill();
  await partner.close();
  await cluster.stop();
}
