// npm run bench:controller
//
// Cold start: 1,000 bindings, each with its own PFX Secret, exist before the controller
// starts; we time from process start until every binding has status. Then one binding's
// Secret is rotated repeatedly and we time each rotation until status shows the new
// serial (p50/p99). Finally the controller's RSS. Real apiserver, etcd and controller
// process on loopback; nothing is mocked.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as types from '../../src/api/v1alpha1/types.ts';
import { startControlPlane } from '../harness/control-plane.ts';
import { pollUntil } from '../harness/poll.ts';
import { httpGet, startController } from '../support/controller-process.ts';
import { TestKube, type Binding } from '../support/kube.ts';
import { PartnerPki, toPfx } from '../support/partner-pki.ts';
import { deployedEnvironment, mallocSettings } from '../support/deployed-environment.ts';

const repo = resolve(import.meta.dirname, '../..');
const count = Number(process.env.BENCH_BINDINGS ?? 1000);
const rotations = Number(process.env.BENCH_ROTATIONS ?? 100);
const password = 'bench-password';
// What the deployment runs with (the NODE_OPTIONS of deploy/controller.yaml): V8 sizes its
// heap from the machine's memory, 24 GiB here, and would otherwise hold ~100 MB of garbage
// that a pod with a memory limit never sees. BENCH_NODE_OPTIONS="" measures without them.
const deployed = deployedEnvironment(join(repo, 'deploy/controller.yaml'));
if (deployed.NODE_OPTIONS === undefined) throw new Error('deploy/controller.yaml sets no NODE_OPTIONS');
const nodeOptions = (process.env.BENCH_NODE_OPTIONS ?? deployed.NODE_OPTIONS).split(' ').filter(Boolean);
// And its malloc settings, which the controller process (a child) inherits.
Object.assign(process.env, mallocSettings(deployed));

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

// The controller as the image runs it: compiled JavaScript. Run from src/*.ts, Node's type
// stripper costs each thread (the main one and every decode worker) memory the image never
// spends. BENCH_CLI=src measures the sources instead.
const builtCli = process.env.BENCH_CLI === 'src' ? undefined : join(repo, 'dist/cli.js');
if (builtCli) execFileSync(join(repo, 'node_modules/.bin/tsc'), ['-p', join(repo, 'tsconfig.build.json')], { stdio: 'inherit' });

const cluster = await startControlPlane();
try {
  const kube = new TestKube(cluster.kubeconfig);
  const ns = await kube.namespace('bench');
  const pki = new PartnerPki();
  const key = pki.issueClient({ cn: 'bench-key' }).keyPem;

  let t = performance.now();
  const queue = Array.from({ length: count }, (_, i) => i);
  const createOne = async (i: number): Promise<void> => {
    const issued = pki.issueClient({ cn: `bench-${i}.client`, keyPem: key });
    await kube.putPfxSecret(ns, `pfx-${i}`, issued, password);
    await kube.createBinding(ns, `b-${i}`, {
      host: `partner-${i % 20}.example`,
      certificate: { secretRef: { name: `pfx-${i}` }, passwordSecretRef: { name: `pfx-${i}` } },
    });
  };
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let i = queue.shift(); i !== undefined; i = queue.shift()) await createOne(i);
    }),
  );
  console.log(`setup: ${count} PFX Secrets (openssl) and bindings created in ${((performance.now() - t) / 1000).toFixed(1)}s`);

  const listPath = `/apis/${types.group}/${types.version}/namespaces/${ns}/${types.plural}`;
  // A watch, opened before the controller starts, not a polling list: listing 1,000
  // bindings every 100 ms would load the apiserver that shares these 2 cores with the
  // controller and skew the figure.
  const ready = new Set<string>();
  const initial = await kube.client.list<Binding>(listPath, { limit: 1 });
  const watchAbort = new AbortController();
  const isReady = (b: Binding): boolean =>
    b.status?.observedGeneration === b.metadata.generation && b.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
  void kube.client
    .watch<Binding>(
      listPath,
      { resourceVersion: initial.metadata.resourceVersion, allowWatchBookmarks: true },
      (e) => {
        if (e.type !== 'BOOKMARK' && isReady(e.object)) ready.add(e.object.metadata.name);
      },
      watchAbort.signal,
    )
    .catch(() => undefined);
  t = performance.now();
  const controller = await startController({
    kubeConfigPath: cluster.kubeConfigPath,
    namespaces: [ns],
    id: 'bench',
    args: ['--log-level', 'info', '--workers', '8'],
    nodeOptions,
    cli: builtCli,
  });
  await pollUntil(() => (ready.size === count ? true : undefined), { what: `${count} bindings Ready`, timeoutMs: 300_000, intervalMs: 10 });
  watchAbort.abort();
  const coldStartS = (performance.now() - t) / 1000;
  const rssMb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${controller.child.pid}/status`, 'utf8'))?.[1]) / 1024;
  if (process.env.BENCH_HEAP_SNAPSHOT) {
    controller.child.kill('SIGUSR2');
    await new Promise((r) => setTimeout(r, 8000));
  }
  // Where the memory is: V8's heap of the main thread (used and reserved), and the rest.
  const metrics = (await httpGet(controller.healthPort, '/metrics')).body;
  const gauge = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN) / 1024 / 1024;
  const heap = { used: gauge('nodejs_heap_size_used_bytes'), total: gauge('nodejs_heap_size_total_bytes'), external: gauge('nodejs_external_memory_bytes') };

  const latencies: number[] = [];
  for (let r = 0; r < rotations; r++) {
    const issued = pki.issueClient({ cn: 'bench-0.client', keyPem: key });
    const pfx = toPfx(issued, { password });
    const start = performance.now();
    await kube.putSecret(ns, 'pfx-0', { 'keystore.p12': pfx, password });
    await pollUntil(async () => ((await kube.getBinding(ns, 'b-0')).status?.certificate?.serialNumber === issued.serial ? true : undefined), {
      what: 'rotation visible',
      timeoutMs: 10_000,
      intervalMs: 2,
    });
    latencies.push(performance.now() - start);
  }
  latencies.sort((a, b) => a - b);
  const rssAfterMb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${controller.child.pid}/status`, 'utf8'))?.[1]) / 1024;
  await controller.stop();

  console.log(`cold start: ${count} bindings Ready ${coldStartS.toFixed(2)}s after controller start (goal < 10s)`);
  console.log(
    `one binding changed (${rotations} Secret rotations, write → status seen by polling GET): p50 ${percentile(latencies, 50).toFixed(1)}ms, p99 ${percentile(latencies, 99).toFixed(1)}ms (goals 100ms / 500ms)`,
  );
  console.log(`controller: ${builtCli ? 'dist/cli.js (compiled, as the image runs it)' : 'src/cli.ts'}; node options: ${nodeOptions.join(' ') || '(none)'}`);
  console.log(`controller RSS: ${rssMb.toFixed(0)} MB after cold start, ${rssAfterMb.toFixed(0)} MB after rotations (goal < 250 MB)`);
  console.log(
    `  main thread's V8 heap after cold start: ${heap.used.toFixed(0)} MB used of ${heap.total.toFixed(0)} MB reserved; ${heap.external.toFixed(0)} MB external`,
  );
} finally {
  await cluster.stop();
}
