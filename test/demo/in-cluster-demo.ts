// npm run demo -- --in-cluster: the demo's story on a real node, as users run the product
// (see run-demo.ts). Prints the same lines as the host demo.
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import type { NodeCluster } from '../harness/node-cluster.ts';
import { attachOrStartNodeCluster } from '../harness/use-node-cluster.ts';
import { InClusterStory } from '../support/in-cluster-story.ts';

const repoRoot = resolve(import.meta.dirname, '../..');

export async function runInCluster(options: { keep: boolean; step: (text: string) => void }): Promise<number> {
  const { step } = options;
  let started: NodeCluster | undefined;
  try {
    step('Building what the node runs, once (bash test/bootstrap.sh node): Kubernetes, containerd, CoreDNS, the images');
    execFileSync('bash', [resolve(repoRoot, 'test/bootstrap.sh'), 'node'], { stdio: ['ignore', 'inherit', 'inherit'] });
    const attached = await attachOrStartNodeCluster({ outliveProcess: options.keep, step });
    started = attached.started;
    const { cluster } = attached;
    const { projectImage } = cluster;
    const story = new InClusterStory(cluster, { deleteAfterTests: false });
    const kubectl = (...args: string[]): string => execFileSync(cluster.kubectl, ['--kubeconfig', cluster.kubeConfigPath, ...args], { encoding: 'utf8' });

    step('Starting a partner API that requires mTLS, as a Pod behind a Service in its own namespace');
    const partner = await story.startPartner();
    console.log(`partner API: https://${partner.host} (accepts only client certificates from "In-Cluster Partner CA")`);

    // Pod and Service ranges are refused egress destinations unless a platform team opens them.
    const allowed = InClusterStory.partnerDestinations(partner);
    step(`kubectl apply --server-side -k deploy/  (image ${projectImage.reference}, built from the Dockerfile; no registry)`);
    console.log(`with an overlay that opens the partner's addresses: --allowed-destinations=${allowed.join(',')}`);
    await story.install({ allowedDestinations: allowed });
    console.log(kubectl('get', 'deployments', '--namespace', 'mtls-egress-system').trimEnd());

    step('The partner sends a PFX and its password; we store them in a Secret and bind them to the partner host');
    execFileSync(cluster.kubectl, ['--kubeconfig', cluster.kubeConfigPath, 'apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: 'team-a', labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } },
      }),
    });
    const client = partner.pki.issueClient({ cn: 'payments.acme.example', notAfter: new Date(Date.now() + 90 * 86_400_000) });
    await story.kube.deleteBinding('team-a', 'partner-api').catch(() => undefined);
    await story.bind('team-a', 'partner-api', partner, client);
    console.log(`ClientCertificateBinding team-a/partner-api → ${partner.host}:443 (PFX made by openssl pkcs12 -export)`);
    const binding = await story.waitReady('team-a', 'partner-api', client.serial);

    step('kubectl get ccb -n team-a -o wide');
    console.log(kubectl('get', 'ccb', '-n', 'team-a', '-o', 'wide').trimEnd());

    const url = `${binding.status!.endpoint!}/accounts`;
    step(`An application with no certificate code calls the endpoint over plain HTTP: GET ${url}`);
    await story.workloads.kubectl(['delete', 'pod', '--namespace', 'team-a', 'app', '--wait=true']);
    await story.workloads.client('team-a', 'app');
    const seen = await story.waitForSerial('team-a', 'app', url, client.serial);
    console.log(`HTTP 200 from the partner, which saw client certificate CN=${seen.cn}, O=${seen.organization}, serial ${seen.serialNumber} (SNI ${seen.sni})`);

    if (options.keep) {
      step('Still running. Try:');
      console.log(`  export KUBECONFIG=${cluster.kubeConfigPath}`);
      console.log(`  ${cluster.kubectl} get ccb -A -o wide`);
      console.log(`  ${cluster.kubectl} exec -n team-a app -- node -e "fetch('${url}').then(r => r.text()).then(console.log)"`);
      console.log(started ? 'Stop it with: npm run cluster:down' : 'It is the cluster:up cluster; stop it with: npm run cluster:down');
      return 0;
    }
    return 0;
  } catch (err) {
    console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  } finally {
    if (started && !options.keep) {
      step('Stopping the node cluster');
      await started.stop();
      console.log('stopped: the machine is as it was');
    }
  }
}
