// npm run bench:in-cluster — the product on the test node, as users run it:
//   1. `kubectl apply -k deploy/` until both Deployments are Available, and each pod's RSS at
//      idle (no binding);
//   2. 100 bindings (each its own PFX, made by openssl) to a partner Pod: created until every
//      one is Ready (every proxy replica serves its certificate), and each pod's RSS then;
//   3. the controller and proxy Deployments deleted and `kubectl apply -k deploy/` again, with
//      the 100 bindings in place (a GitOps sync of a fresh install): apply until every binding
//      is Ready.
// RSS is read from each pod's memory cgroup on the node (total_rss). Uses the node cluster
// `npm run cluster:up -- --node` runs, or starts one. Prints figures and one JSON line.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as types from '../../src/api/v1alpha1/types.ts';
import { pollUntil } from '../harness/poll.ts';
import { attachOrStartNodeCluster } from '../harness/use-node-cluster.ts';
import { InClusterStory, systemNamespace } from '../support/in-cluster-story.ts';
import type { Binding } from '../support/kube.ts';

const count = Number(process.env.BENCH_BINDINGS ?? 100);
const MB = 1024 * 1024;

const { cluster, started } = await attachOrStartNodeCluster();

/** Every memory cgroup directory of a pod on the node, by pod uid. */
function podRssMb(uid: string): number {
  const root = '/sys/fs/cgroup/memory/mtls-egress-node/kubepods';
  const candidates = [join(root, `pod${uid}`), ...['burstable', 'besteffort', 'guaranteed'].map((qos) => join(root, qos, `pod${uid}`))];
  const dir = candidates.find((path) => existsSync(path));
  if (!dir) return NaN;
  const stat = readFileSync(join(dir, 'memory.stat'), 'utf8');
  return Number(/^total_rss (\d+)$/m.exec(stat)?.[1] ?? NaN) / MB;
}

try {
  const story = new InClusterStory(cluster, { deleteAfterTests: false });
  const kubectl = (args: string[]): Promise<string> => story.workloads.kubectlOk(args);

  const rss = async (): Promise<Record<string, number>> => {
    const pods = JSON.parse(await kubectl(['get', 'pods', '--namespace', systemNamespace, '-o', 'json'])) as {
      items: Array<{ metadata: { name: string; uid: string } }>;
    };
    return Object.fromEntries(pods.items.map((p) => [p.metadata.name, Math.round(podRssMb(p.metadata.uid))]));
  };
  const byKind = (pods: Record<string, number>): Record<string, number[]> => {
    const kinds: Record<string, number[]> = { controller: [], proxy: [] };
    for (const [name, mb] of Object.entries(pods)) (name.includes('proxy') ? kinds.proxy! : kinds.controller!).push(mb);
    return kinds;
  };

  // A fresh install: no earlier run's Deployments.
  await story.workloads.kubectl(['delete', 'deployment', '--namespace', systemNamespace, 'mtls-egress-controller', 'mtls-egress-proxy', '--wait=true']);
  const partner = await story.startPartner();
  const allowedDestinations = InClusterStory.partnerDestinations(partner);
  let t = performance.now();
  await story.install({ allowedDestinations });
  const installSeconds = (performance.now() - t) / 1000;
  await new Promise((r) => setTimeout(r, 5_000)); // let the fresh pods settle before reading idle memory
  const idle = byKind(await rss());

  const ns = await story.workloads.namespace('bench');
  const clients = Array.from({ length: count }, (_, i) => partner.pki.issueClient({ cn: `bench-${i}.client` }));
  const listPath = `/apis/${types.group}/${types.version}/namespaces/${ns}/${types.plural}`;
  const allReady = (): Promise<true | undefined> =>
    story.kube.client.list<Binding>(listPath).then((list) => {
      const ready = list.items.filter((b) => b.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      return ready.length === count ? true : undefined;
    });
  t = performance.now();
  for (const [i, client] of clients.entries()) await story.bind(ns, `b-${i}`, partner, client);
  await pollUntil(allReady, { what: `${count} bindings Ready`, timeoutMs: 600_000, intervalMs: 250 });
  const createdToReadySeconds = (performance.now() - t) / 1000;
  await new Promise((r) => setTimeout(r, 2_000));
  const loaded = byKind(await rss());

  // A GitOps sync onto an empty install: the bindings are there first.
  await story.workloads.kubectl(['delete', 'deployment', '--namespace', systemNamespace, 'mtls-egress-controller', 'mtls-egress-proxy', '--wait=true']);
  t = performance.now();
  await story.install({ allowedDestinations });
  await pollUntil(allReady, { what: `${count} bindings Ready after a fresh install`, timeoutMs: 600_000, intervalMs: 250 });
  const applyToReadySeconds = (performance.now() - t) / 1000;

  const fmt = (values: number[] | undefined): string => (values ?? []).join(', ');
  console.log(`kubectl apply -k deploy/ to both Deployments Available: ${installSeconds.toFixed(1)} s`);
  console.log(`${count} bindings created to all Ready: ${createdToReadySeconds.toFixed(1)} s`);
  console.log(`kubectl apply -k deploy/ with ${count} bindings in place, to all Ready: ${applyToReadySeconds.toFixed(1)} s`);
  console.log(`RSS at idle: controller ${fmt(idle.controller)} MB, proxy ${fmt(idle.proxy)} MB`);
  console.log(`RSS with ${count} bindings: controller ${fmt(loaded.controller)} MB, proxy ${fmt(loaded.proxy)} MB`);
  const imageMb = Math.round(statSync(cluster.projectImage.archive).size / MB);
  console.log(`project image archive: ${imageMb} MB`);
  console.log(
    JSON.stringify({
      bench: 'in-cluster',
      bindings: count,
      installSeconds: Number(installSeconds.toFixed(1)),
      createdToReadySeconds: Number(createdToReadySeconds.toFixed(1)),
      applyToReadySeconds: Number(applyToReadySeconds.toFixed(1)),
      rssIdleMb: idle,
      rssLoadedMb: loaded,
      imageArchiveMb: imageMb,
    }),
  );
  await story.workloads.kubectl(['delete', 'namespace', ns, partner.namespace, '--wait=false']);
} finally {
  await started?.stop();
}
