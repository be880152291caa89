// What a CA bundle many bindings trust costs the proxy namespace: N bindings (default 50
// and 500, in one namespace) name one serverCA Secret of about 450 KiB of real CA
// certificates, against a real API server and etcd and the real controller
// (--data-plane haproxy, no agent: what is measured is what the controller stores). Once
// the index counts every binding and nothing changes any more, every object in the proxy
// namespace is listed, and the bytes of their data (Secret data, ConfigMap data and
// binaryData, as the API returns them: base64) are summed.
//
//   npm run bench:bundles    (also the second half of npm run bench:tenants)
//   BENCH_BINDINGS=50 BENCH_CA_KIB=900 npm run bench:bundles
//
// Uses nothing but the API and the controller's command line, so the same file runs
// against an older commit for a before/after. Prints a table, then one JSON line:
//   {"bench":"shared-bundles","caBytes":N,"runs":[{"bindings":50,"bytes":N,"objects":N,"largest":N,"servedS":N},...]}

import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { gunzipSync } from 'node:zlib';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.ts';
import { pollUntil } from '../harness/poll.ts';
import { caBundle } from '../support/ca-bundle.ts';
import { startController, type ControllerProcess } from '../support/controller-process.ts';
import { TestKube } from '../support/kube.ts';
import { PartnerPki } from '../support/partner-pki.ts';

const counts = (process.env.BENCH_BINDINGS ?? '50,500').split(',').map(Number);
const caBytes = Number(process.env.BENCH_CA_KIB ?? 450) * 1024;
const password = 'shared-bundles-bench-password';

interface Stored {
  metadata: { name: string };
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
}

interface Run {
  bindings: number;
  /** Sum of every object's data and binaryData values in the proxy namespace. */
  bytes: number;
  objects: number;
  largest: number;
  /** Bindings created → the index counts them all and the namespace stops changing. */
  servedS: number;
}

const dataBytes = (o: Stored): number => [...Object.values(o.data ?? {}), ...Object.values(o.binaryData ?? {})].reduce((sum, v) => sum + v.length, 0);

/** How many bindings the index counts: read from the ConfigMap as an agent would, whatever the format. */
function indexedBindings(configMaps: Stored[]): number | undefined {
  for (const cm of configMaps) {
    const packed = cm.binaryData?.['manifest.json.gz'];
    if (packed) return (JSON.parse(gunzipSync(Buffer.from(packed, 'base64')).toString('utf8')) as { bindings?: number }).bindings;
  }
  return undefined;
}

async function measure(cluster: ControlPlane, bundle: string, n: number, pki: PartnerPki): Promise<Run> {
  const kube = new TestKube(cluster.kubeconfig);
  const proxyNs = await kube.namespace('bench-bundles-proxy');
  const ns = await kube.namespace('bench-bundles-team');
  await kube.putSecret(ns, 'partner-ca', { 'ca.crt': bundle });
  await kube.putPfxSecret(ns, 'client-pfx', pki.issueClient({ cn: 'bench.client' }), password);
  let controller: ControllerProcess | undefined;
  try {
    controller = await startController({
      kubeConfigPath: cluster.kubeConfigPath,
      namespaces: [proxyNs, ns],
      id: `bundles-${n}`,
      args: ['--data-plane', 'haproxy', '--listener-ports', `10000-${10000 + n + 99}`],
    });
    const t = performance.now();
    for (let i = 0; i < n; i++) {
      await kube.createBinding(ns, `b-${i}`, {
        host: 'localhost',
        certificate: { secretRef: { name: 'client-pfx' }, passwordSecretRef: { name: 'client-pfx' } },
        serverCA: { secretRef: { name: 'partner-ca' } },
      });
    }
    const list = async (): Promise<Stored[]> => {
      const [secrets, configMaps] = await Promise.all([
        kube.client.list<Stored>(`/api/v1/namespaces/${proxyNs}/secrets`),
        kube.client.list<Stored>(`/api/v1/namespaces/${proxyNs}/configmaps`),
      ]);
      // The API server's own root CA ConfigMap in every namespace is not the controller's.
      return [...secrets.items, ...configMaps.items.filter((c) => c.metadata.name !== 'kube-root-ca.crt')];
    };
    let last = -1;
    let servedAt = 0;
    const objects = await pollUntil(
      async () => {
        const all = await list();
        const bytes = all.reduce((sum, o) => sum + dataBytes(o), 0);
        const settled = indexedBindings(all) === n && bytes === last;
        if (bytes !== last) servedAt = performance.now();
        last = bytes;
        return settled ? all : undefined;
      },
      { what: `the index to count ${n} bindings and the namespace to settle`, timeoutMs: 600_000, intervalMs: 2_000 },
    );
    return {
      bindings: n,
      bytes: objects.reduce((sum, o) => sum + dataBytes(o), 0),
      objects: objects.length,
      largest: Math.max(...objects.map(dataBytes)),
      servedS: Math.round((servedAt - t) / 100) / 10,
    };
  } finally {
    await controller?.kill();
  }
}

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(2)} MiB`;

const pki = new PartnerPki('Shared Bundles Bench CA');
const bundle = caBundle(caBytes, pki.ca.certPem);
console.log(
  `bundle: ${bundle.length} bytes, ${(bundle.match(/BEGIN CERTIFICATE/g) ?? []).length} certificates, sha256 ${createHash('sha256').update(bundle).digest('hex').slice(0, 16)}`,
);
const cluster = await startControlPlane();
try {
  const runs: Run[] = [];
  for (const n of counts) {
    const run = await measure(cluster, bundle, n, pki);
    runs.push(run);
    console.log(
      `${String(n).padStart(5)} bindings: ${mib(run.bytes)} in ${run.objects} objects (${Math.round(run.bytes / n)} bytes a binding), largest ${mib(run.largest)}, settled ${run.servedS} s after the first binding`,
    );
  }
  console.log(JSON.stringify({ bench: 'shared-bundles', caBytes: bundle.length, runs }));
} finally {
  await cluster.stop();
}
