// The product as users run it, on the test node: deploy/ applied with kubectl (or the
// Helm chart installed with helm), a partner that demands a client certificate running as
// a Pod behind a Service, a binding, and an application Pod with no certificate code
// calling the binding's endpoint. Used by the node e2e suite (test/node/product.test.ts,
// test/node/helm-install.test.ts) and by `npm run demo -- --in-cluster`.
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as types from '../../src/api/v1alpha1/types.ts';
import type { NodeClusterHandle } from '../harness/use-node-cluster.ts';
import { pollUntil } from '../harness/poll.ts';
import { NodeWorkloads } from '../node/workloads.ts';
import { chartDir, parseManifests, releaseName, runHelm } from './helm.ts';
import { TestKube, type Binding } from './kube.ts';
import { PartnerPki, toPfx, type Issued } from './partner-pki.ts';

const repoRoot = resolve(import.meta.dirname, '../..');
export const systemNamespace = 'mtls-egress-system';
const crdName = 'clientcertificatebindings.mtls-egress.io';

/** What the partner answers: the client certificate it authenticated, and how it was reached. */
export interface PartnerAnswer {
  cn: string;
  organization: string;
  serialNumber: string;
  sni: string | false;
  host: string;
}

/**
 * An HTTPS server that requires a client certificate from the partner's client CA and
 * answers with the one it saw, run from the project image with `node -e` (the only image
 * on the node). Certificates come from a Secret mounted at /tls.
 */
const partnerScript = `const fs = require('node:fs');
const server = require('node:https').createServer({
  cert: fs.readFileSync('/tls/tls.crt'), key: fs.readFileSync('/tls/tls.key'), ca: fs.readFileSync('/tls/client-ca.crt'),
  requestCert: true, rejectUnauthorized: true,
}, (req, res) => {
  const peer = req.socket.getPeerCertificate();
  const body = JSON.stringify({ cn: peer.subject?.CN ?? '', organization: peer.subject?.O ?? '',
    serialNumber: (peer.serialNumber ?? '').toLowerCase().replace(/^0+(?=.)/, ''), sni: req.socket.servername, host: req.headers.host });
  console.log('partner saw ' + body);
  res.writeHead(200, { 'content-type': 'application/json' }).end(body);
});
server.on('tlsClientError', (error) => console.log('partner refused a handshake: ' + error.code));
server.listen(8443, () => console.log('partner listening on 8443'));`;

export interface Partner {
  namespace: string;
  /** The Service's DNS name, in the partner's certificate: what a binding names as host. */
  host: string;
  serviceIp: string;
  podIp: string;
  pki: PartnerPki;
}

export class InClusterStory {
  readonly cluster: NodeClusterHandle;
  readonly workloads: NodeWorkloads;
  readonly kube: TestKube;

  /** Outside a test run (the demo), nothing is registered with node:test. */
  constructor(cluster: NodeClusterHandle, options: { deleteAfterTests?: boolean } = {}) {
    this.cluster = cluster;
    this.workloads = new NodeWorkloads(cluster, options);
    this.kube = new TestKube(cluster.kubeconfig);
  }

  /**
   * `kubectl apply --server-side -k deploy/`, then waits until both Deployments are
   * Available. With `allowedDestinations`, through an overlay of deploy/ that adds the
   * controller's --allowed-destinations: how a platform team opens a partner inside the
   * cluster (the pod and Service ranges are refused destinations by default).
   */
  async install(options: { allowedDestinations?: readonly string[] } = {}): Promise<void> {
    let dir = resolve(repoRoot, 'deploy');
    if (options.allowedDestinations?.length) {
      dir = resolve(repoRoot, '.cluster/deploy-overlay');
      mkdirSync(dir, { recursive: true });
      const patch = [{ op: 'add', path: '/spec/template/spec/containers/0/args/-', value: `--allowed-destinations=${options.allowedDestinations.join(',')}` }];
      writeFileSync(
        join(dir, 'kustomization.yaml'),
        `# Written by test/support/in-cluster-story.ts: deploy/ with the partner's addresses opened.\nresources: [../../deploy]\npatches:\n  - target: {kind: Deployment, name: mtls-egress-controller}\n    patch: '${JSON.stringify(patch)}'\n`,
      );
    }
    await this.workloads.kubectlOk(['apply', '--server-side', '--force-conflicts', '-k', dir]);
    await this.waitAvailable();
  }

  /**
   * The README's Helm install: the namespace made and labelled to enforce the restricted
   * Pod Security level, then `helm install mtls-egress deploy/helm/mtls-egress
   * -n mtls-egress-system --wait` with `values` as --set flags. Resolves with helm's
   * output, NOTES included.
   */
  async helmInstall(values: readonly string[] = []): Promise<string> {
    if ((await this.workloads.kubectl(['get', 'namespace', systemNamespace])).code !== 0) {
      await this.workloads.kubectlOk(['create', 'namespace', systemNamespace]);
    }
    await this.workloads.kubectlOk(['label', '--overwrite', 'namespace', systemNamespace, 'pod-security.kubernetes.io/enforce=restricted']);
    const args = ['install', releaseName, chartDir, '--namespace', systemNamespace, '--wait', '--timeout', '5m', ...values.flatMap((v) => ['--set', v])];
    const result = await runHelm(args, { kubeConfigPath: this.cluster.kubeConfigPath });
    if (result.code !== 0) throw new Error(`helm ${args.join(' ')} exited ${result.code}: ${result.stderr.trim()}`);
    await this.waitAvailable();
    return result.stdout;
  }

  /** `helm upgrade --reuse-values --wait` with `values` as --set flags, then waits until both Deployments have rolled out. */
  async helmUpgrade(values: readonly string[]): Promise<void> {
    const args = [
      'upgrade',
      releaseName,
      chartDir,
      '--namespace',
      systemNamespace,
      '--reuse-values',
      '--wait',
      '--timeout',
      '5m',
      ...values.flatMap((v) => ['--set', v]),
    ];
    const result = await runHelm(args, { kubeConfigPath: this.cluster.kubeConfigPath });
    if (result.code !== 0) throw new Error(`helm ${args.join(' ')} exited ${result.code}: ${result.stderr.trim()}`);
    await this.waitAvailable();
  }

  /**
   * Leaves the node as if mtls-egress had never been installed in mtls-egress-system,
   * whichever way it was (deploy/ with kubectl, or the chart), but for a CRD the chart
   * kept (crds.keep), which the next release takes back: the node is shared by the files
   * of one run, which run one after another.
   */
  async uninstall(): Promise<void> {
    const helm = await runHelm(['uninstall', releaseName, '--namespace', systemNamespace, '--ignore-not-found', '--wait', '--timeout', '3m'], {
      kubeConfigPath: this.cluster.kubeConfigPath,
    });
    if (helm.code !== 0) throw new Error(`helm uninstall exited ${helm.code}: ${helm.stderr.trim()}`);
    // What deploy/ applies, less a CRD that Helm owns and the next release takes back.
    const crd = await this.workloads.kubectl(['get', 'crd', crdName, '-o', 'jsonpath={.metadata.labels.app\\.kubernetes\\.io/managed-by}']);
    const keepCrd = crd.code === 0 && crd.stdout === 'Helm';
    const deployed = parseManifests(await this.workloads.kubectlOk(['kustomize', resolve(repoRoot, 'deploy')])).filter(
      (o) => !(keepCrd && o.kind === 'CustomResourceDefinition'),
    );
    await this.workloads.kubectlOk(
      ['delete', '-f', '-', '--ignore-not-found', '--wait', '--timeout=180s'],
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: deployed }),
    );
    await this.workloads.kubectlOk(['delete', 'namespace', systemNamespace, '--ignore-not-found', '--wait', '--timeout=180s']);
  }

  async waitAvailable(): Promise<void> {
    for (const name of ['mtls-egress-controller', 'mtls-egress-proxy']) {
      await this.workloads.kubectlOk(['rollout', 'status', '--namespace', systemNamespace, `deployment/${name}`, '--timeout=180s']);
    }
  }

  /** The partner: its own namespace, a Pod that demands a client certificate, a Service in front. */
  async startPartner(): Promise<Partner> {
    const namespace = await this.workloads.namespace('partner');
    const host = `partner.${namespace}.svc.${this.cluster.clusterDomain}`;
    const pki = new PartnerPki('In-Cluster Partner CA');
    const server = pki.issueServer({ cn: host, dnsNames: [host, `partner.${namespace}.svc`] });
    const pod = this.workloads.pod(namespace, 'partner', ['node', '-e', partnerScript], { readinessPort: 8443 }) as {
      spec: { containers: Array<Record<string, unknown>>; volumes?: unknown[] };
    };
    pod.spec.containers[0]!.volumeMounts = [{ name: 'tls', mountPath: '/tls', readOnly: true }];
    pod.spec.volumes = [{ name: 'tls', secret: { secretName: 'partner-tls' } }];
    await this.workloads.apply([
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'partner-tls', namespace },
        stringData: { 'tls.crt': server.certPem, 'tls.key': server.keyPem, 'client-ca.crt': pki.ca.certPem },
      },
      pod,
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'partner', namespace },
        spec: { selector: { app: 'partner' }, ports: [{ port: 443, targetPort: 8443 }] },
      },
    ]);
    await this.workloads.waitForReady(namespace, 'partner');
    const serviceIp = (await this.workloads.kubectlOk(['get', 'service', '--namespace', namespace, 'partner', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    const podIp = (await this.workloads.kubectlOk(['get', 'pod', '--namespace', namespace, 'partner', '-o', 'jsonpath={.status.podIP}'])).trim();
    return { namespace, host, serviceIp, podIp, pki };
  }

  /** The partner's Service address and Pod address (where the Service sends the connection): what opening it takes. */
  static partnerDestinations(partner: Partner): string[] {
    return [`${partner.serviceIp}/32`, `${partner.podIp}/32`];
  }

  /** The PFX (made by the real openssl) and its password in Secrets, and a binding to the partner. */
  async bind(namespace: string, name: string, partner: Partner, client: Issued, password = 'in-cluster-pfx-password'): Promise<void> {
    await this.putPfx(namespace, `${name}-pfx`, client, password);
    await this.kube.putSecret(namespace, `${name}-partner-ca`, { 'ca.crt': partner.pki.ca.certPem });
    await this.kube.createBinding(namespace, name, {
      host: partner.host,
      certificate: { secretRef: { name: `${name}-pfx` }, passwordSecretRef: { name: `${name}-pfx` } },
      serverCA: { secretRef: { name: `${name}-partner-ca` } },
    });
  }

  /** Writes a new PFX into the binding's Secret: a rotation, as a platform team does it. */
  async putPfx(namespace: string, secret: string, client: Issued, password = 'in-cluster-pfx-password'): Promise<void> {
    await this.kube.putSecret(namespace, secret, { 'keystore.p12': toPfx(client, { password }), password });
  }

  /** Polls until the binding is Ready (Programmed: every ready proxy replica serves its certificate) with this serial. */
  waitReady(namespace: string, name: string, serial: string, timeoutMs = 120_000): Promise<Binding> {
    return this.kube.waitForBinding(
      namespace,
      name,
      `Ready with serial ${serial}`,
      (b) =>
        b.status?.observedGeneration === b.metadata.generation &&
        b.status?.certificate?.serialNumber === serial &&
        b.status?.conditions?.find((c) => c.type === types.ConditionReady)?.status === 'True',
      timeoutMs,
    );
  }

  /** GET `url` from an application pod; the partner's answer, parsed. */
  async call(namespace: string, pod: string, url: string): Promise<PartnerAnswer> {
    const result = await this.workloads.fetchFrom(namespace, pod, url, 5_000);
    if (!result.ok) throw new Error(`${namespace}/${pod} could not call ${url}: ${result.output}`);
    return JSON.parse(result.output) as PartnerAnswer;
  }

  /** Polls until a call from `pod` reaches the partner, which saw `serial`. */
  waitForSerial(namespace: string, pod: string, url: string, serial: string, timeoutMs = 120_000): Promise<PartnerAnswer> {
    return pollUntil(
      async () => {
        const answer = await this.call(namespace, pod, url);
        if (answer.serialNumber === serial) return answer;
        throw new Error(`the partner saw serial ${answer.serialNumber}`);
      },
      { what: `${namespace}/${pod} to reach the partner with serial ${serial}`, timeoutMs, intervalMs: 500 },
    );
  }

  /** The controller pod holding the leader Lease. */
  async leaderPod(): Promise<string> {
    const lease = await this.kube.client.get<{ spec: { holderIdentity?: string } }>(
      `/apis/coordination.k8s.io/v1/namespaces/${systemNamespace}/leases/mtls-egress-controller`,
    );
    const holder = lease.spec.holderIdentity;
    if (!holder) throw new Error('no controller holds the Lease');
    return holder;
  }

  kubectlRaw(args: readonly string[]): Promise<string> {
    return new Promise((done, fail) =>
      execFile(this.cluster.kubectl, ['--kubeconfig', this.cluster.kubeConfigPath, ...args], { encoding: 'utf8' }, (error, stdout, stderr) =>
        error ? fail(new Error(`kubectl ${args.join(' ')}: ${stderr}`)) : done(stdout),
      ),
    );
  }
}
