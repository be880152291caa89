// npm run demo [-- --keep] [-- --in-cluster]
//
// The main job on one machine: a real Kubernetes control plane, the mtls-egress
// controller, the proxy agent running HAProxy, and a partner API that demands a client
// certificate. It creates a PFX (with openssl) and a ClientCertificateBinding, shows
// `kubectl get ccb`, then calls the endpoint over plain HTTP and prints what the partner
// says it saw: the client certificate's subject. Then it stops everything, or with
// --keep leaves it running and says how to use it.
//
// --in-cluster tells the same story the way users run it: on a single-node cluster
// (kubelet, containerd, CoreDNS, NetworkPolicy), with the project's image built from the
// Dockerfile, deploy/ applied with kubectl, the partner as a Pod behind a Service, and the
// call made from an application Pod. The first run builds the node and the images
// (about 20 minutes on 2 cores); later runs take about a minute.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startControlPlane } from '../harness/control-plane.ts';
import { defaultDataPlane } from '../../src/dataplane/registry.ts';
import { startEgressStack } from '../support/egress-stack.ts';
import { callProxy } from '../support/nginx-process.ts';
import { runInCluster } from './in-cluster-demo.ts';

const { values } = parseArgs({ options: { keep: { type: 'boolean', default: false }, 'in-cluster': { type: 'boolean', default: false } } });
const step = (text: string): void => console.log(`\n\x1b[1m▸ ${text}\x1b[0m`);
const repoRoot = resolve(import.meta.dirname, '../..');

if (values['in-cluster']) {
  process.exitCode = await runInCluster({ keep: values.keep, step });
  process.exit();
}

step('Starting a local Kubernetes control plane (kube-apiserver + etcd) with the ClientCertificateBinding CRD');
const cluster = await startControlPlane();
const kubectl = (...args: string[]): string =>
  execFileSync('kubectl', ['--kubeconfig', cluster.kubeConfigPath, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
let stopping = false;

async function shutdown(stack?: Awaited<ReturnType<typeof startEgressStack>>): Promise<void> {
  if (stopping) return;
  stopping = true;
  step('Stopping everything');
  await stack?.stop();
  await cluster.stop();
  console.log('stopped: no process left running');
}

try {
  step(`Starting the controller, the proxy agent (with ${defaultDataPlane === 'haproxy' ? 'HAProxy' : 'nginx'}) and a partner API that requires mTLS`);
  const stack = await startEgressStack({
    kubeconfig: cluster.kubeconfig,
    kubeConfigPath: cluster.kubeConfigPath,
    namespaces: { bindings: 'team-a', proxy: 'mtls-egress-system' },
    password: 'demo-pfx-password',
  });
  process.once('SIGINT', () => void shutdown(stack).then(() => process.exit(130)));
  console.log(`partner API: ${stack.partner.url} (accepts only client certificates from "Partner CA")`);

  step('The partner sends a PFX and its password; we store them in a Secret and bind them to the partner host');
  const client = stack.partnerPki.issueClient({ cn: 'payments.acme.example', notAfter: new Date(Date.now() + 90 * 86_400_000) });
  await stack.putBinding('partner-api', client);
  console.log(`ClientCertificateBinding team-a/partner-api → localhost:${stack.partner.port} (PFX made by openssl pkcs12 -export)`);

  const binding = await stack.kube.waitForBinding(
    'team-a',
    'partner-api',
    'Ready',
    (b) => b.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True',
    60_000,
  );
  step('kubectl get ccb -n team-a -o wide');
  console.log(kubectl('get', 'ccb', '-n', 'team-a', '-o', 'wide').trimEnd());

  const port = binding.status!.listenerPort!;
  step(`An application with no certificate code calls the endpoint over plain HTTP: GET http://127.0.0.1:${port}/accounts`);
  const res = await callProxy(port, { path: '/accounts' });
  const seen = JSON.parse(res.body) as { cn: string; organization: string; serialNumber: string; sni: string };
  console.log(
    `HTTP ${res.status} from the partner, which saw client certificate CN=${seen.cn}, O=${seen.organization}, serial ${seen.serialNumber} (SNI ${seen.sni})`,
  );

  if (values.keep) {
    const dir = join(repoRoot, '.cluster');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'demo-kubeconfig'), kubectl('config', 'view', '--raw'), { mode: 0o600 });
    step('Still running. Try:');
    console.log(`  export KUBECONFIG=${join(dir, 'demo-kubeconfig')}`);
    console.log('  kubectl get ccb -A -o wide');
    console.log('  kubectl describe ccb -n team-a partner-api');
    console.log(`  curl -s http://127.0.0.1:${port}/anything`);
    console.log('Press Ctrl-C to stop everything.');
    await new Promise(() => undefined);
  }
  await shutdown(stack);
} catch (err) {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  await shutdown();
  process.exitCode = 1;
}
