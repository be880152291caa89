// The Helm chart (deploy/helm/mtls-egress) with the real helm, kubectl and API server:
// it lints; deploy/ is exactly what it renders (one source, no drift); its values render
// what they promise and the controller and agent accept the flags they become; its
// output applies (server-side dry run) and meets the restricted Pod Security level; and
// `helm install`, `upgrade` and `uninstall` treat the CRD as the chart says (upgraded with
// the release, kept on uninstall). With watchNamespaces the controller works with
// exactly the RBAC the chart gives it, and reads no other namespace's Secrets.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { describe, test } from 'node:test';
import { load } from 'js-yaml';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { parseAgentConfig, parseControllerConfig } from '../../src/config.ts';
import { pollUntil } from '../harness/poll.ts';
import { usePrivateControlPlane } from '../harness/use-control-plane.ts';
import { startController } from '../support/controller-process.ts';
import { driftedFiles } from '../support/deploy-generator.ts';
import { chartDir, helmTemplate, objectId, parseManifests, releaseName, releaseNamespace, repoRoot, runHelm, type Manifest } from '../support/helm.ts';
import { hasReason, TestKube } from '../support/kube.ts';
import { PartnerPki } from '../support/partner-pki.ts';

const run = promisify(execFile);
// No CRD from the harness: the chart installs it, as on a user's cluster. Private: the
// chart's cluster-wide objects (CRD, ClusterRoles) would collide with deploy.test.ts's.
const cluster = await usePrivateControlPlane({ crdDir: mkdtempSync(join(tmpdir(), 'mtls-egress-no-crds-')) });
const kube = new TestKube(cluster.kubeconfig);
const crdName = 'clientcertificatebindings.mtls-egress.io';

function kubectl(args: readonly string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('kubectl', ['--kubeconfig', cluster.kubeConfigPath, ...args], { cwd: repoRoot });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

async function rendered(args: readonly string[] = []): Promise<Manifest[]> {
  return parseManifests(await helmTemplate(args));
}

function find(objects: Manifest[], kind: string, name: string): Manifest | undefined {
  return objects.find((o) => o.kind === kind && o.metadata.name === name);
}

interface PodTemplate {
  spec: { template: { spec: { containers: Array<{ name: string; image: string; args: string[]; imagePullPolicy?: string }> } } };
}

function containerOf(objects: Manifest[], deployment: string): { name: string; image: string; args: string[]; imagePullPolicy?: string } {
  const d = find(objects, 'Deployment', deployment) as (Manifest & PodTemplate) | undefined;
  assert.ok(d, `Deployment ${deployment} is rendered`);
  return d.spec.template.spec.containers[0]!;
}

/**
 * kustomize's built-in schema predates ValidatingAdmissionPolicy (Kubernetes 1.30), so its
 * `namespace:` gives the two cluster-scoped policy objects a namespace; the API server
 * clears it (EnsureObjectNamespaceMatchesRequestNamespace), and deploy.test.ts applies
 * deploy/ for real. Everything else is compared as kustomize renders it.
 */
function withoutPolicyNamespace(objects: Manifest[]): Manifest[] {
  return objects.map((o) => {
    if (o.kind !== 'ValidatingAdmissionPolicy' && o.kind !== 'ValidatingAdmissionPolicyBinding') return o;
    const { namespace: _, ...metadata } = o.metadata;
    return { ...o, metadata };
  });
}

/** Value sets the chart supports, each linted, dry-run applied and admitted under restricted. */
const valueSets: Array<[string, string[]]> = [
  ['the defaults', []],
  ['dataPlane=haproxy', ['--set', 'dataPlane=haproxy']],
  ['dataPlane=none', ['--set', 'dataPlane=none']],
  [
    'watchNamespaces, allowedDestinations, clusterCidrs, listenerPorts, replicas and placement',
    [
      '--set',
      'watchNamespaces={team-a,team-b}',
      '--set',
      'allowedDestinations={10.96.0.93/32,192.168.0.0/16}',
      '--set',
      'clusterCidrs={10.244.0.0/16,10.96.0.0/12}',
      '--set',
      'listenerPorts.first=20000,listenerPorts.last=20099',
      '--set',
      'controller.replicas=1,proxy.replicas=2,proxy.podDisruptionBudget.minAvailable=1',
      '--set',
      'controller.nodeSelector.pool=system,proxy.tolerations[0].key=egress,proxy.tolerations[0].operator=Exists',
      '--set',
      'image.repository=registry.example/mtls-egress,image.tag=0.1.1,image.pullSecrets={regcred}',
    ],
  ],
  [
    'metricsAccess by name and pod, and a larger config volume',
    [
      '--set-json',
      'metricsAccess={"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"observability"}},"podSelector":{"matchLabels":{"app.kubernetes.io/name":"prometheus"}}}',
      '--set',
      'proxy.configVolumeSizeLimit=256Mi,proxy.resources.limits.memory=1536Mi',
    ],
  ],
];

describe('the Helm chart', () => {
  for (const [name, args] of valueSets) {
    test(`helm lint --strict passes: ${name}`, async () => {
      const r = await runHelm(['lint', '--strict', chartDir, ...args]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    });
  }

  test('deploy/ is exactly what the chart renders (npm run generate has nothing to change)', async () => {
    assert.deepEqual(await driftedFiles(), [], 'run npm run generate: deploy/ or the chart’s copy of crds/ drifted from the chart');
  });

  test('helm template makes the same objects as kubectl kustomize deploy/, field for field', async () => {
    const fromHelm = await rendered();
    const fromKustomize = parseManifests((await run('kubectl', ['kustomize', 'deploy/'], { cwd: repoRoot, encoding: 'utf8' })).stdout);
    // The namespace is Helm's to make (--create-namespace): only the kustomize base has it.
    const kustomized = withoutPolicyNamespace(fromKustomize.filter((o) => o.kind !== 'Namespace'));
    assert.deepEqual(fromHelm.map(objectId).sort(), kustomized.map(objectId).sort());
    // Helm keeps the CRD on uninstall (crds.keep); kubectl has no such notion.
    const crd = find(fromHelm, 'CustomResourceDefinition', crdName)!;
    assert.equal(crd.metadata.annotations?.['helm.sh/resource-policy'], 'keep');
    delete crd.metadata.annotations;
    const byId = new Map(kustomized.map((o) => [objectId(o), o]));
    for (const object of fromHelm) assert.deepEqual(object, byId.get(objectId(object)), objectId(object));
  });

  test('helm template --set dataPlane=nginx makes what deploy/ with the data-plane-nginx component makes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mtls-egress-overlay-'));
    const deploy = relative(dir, join(repoRoot, 'deploy'));
    writeFileSync(join(dir, 'kustomization.yaml'), `resources: [${deploy}]\ncomponents: [${deploy}/data-plane-nginx]\n`);
    const fromKustomize = withoutPolicyNamespace(
      parseManifests((await run('kubectl', ['kustomize', dir], { encoding: 'utf8' })).stdout).filter((o) => o.kind !== 'Namespace'),
    );
    const fromHelm = await rendered(['--set', 'dataPlane=nginx']);
    const crd = find(fromHelm, 'CustomResourceDefinition', crdName)!;
    delete crd.metadata.annotations;
    const byId = new Map(fromKustomize.map((o) => [objectId(o), o]));
    assert.deepEqual(fromHelm.map(objectId).sort(), [...byId.keys()].sort());
    for (const object of fromHelm) assert.deepEqual(object, byId.get(objectId(object)), objectId(object));
  });

  test('one version: Chart.yaml version and appVersion, package.json, and deploy/’s image tag', () => {
    const chart = load(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as { version: string; appVersion: string };
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    const kustomization = load(readFileSync(join(repoRoot, 'deploy/kustomization.yaml'), 'utf8')) as { images: Array<{ name: string; newTag: string }> };
    assert.equal(chart.version, pkg.version);
    assert.equal(chart.appVersion, pkg.version);
    assert.equal(kustomization.images.find((i) => i.name === 'mtls-egress')?.newTag, pkg.version);
  });

  const refused: Array<[string, string[], RegExp]> = [
    ['an unknown value (a typo)', ['--set', 'dataplane=nginx'], /additional propert(y|ies) .*dataplane|dataplane.*not allowed/i],
    ['a data plane that does not exist', ['--set', 'dataPlane=envoy'], /dataPlane/],
    ['a destination that is not a CIDR', ['--set', 'allowedDestinations={api.partner.example}'], /allowedDestinations/],
    ['a namespace that is not a DNS label', ['--set', 'watchNamespaces={Team_A}'], /watchNamespaces/],
    ['a listener range that runs backwards', ['--set', 'listenerPorts.first=11000,listenerPorts.last=10000'], /first \(11000\) is above last \(10000\)/],
    ['a listener range over the status port', ['--set', 'listenerPorts.first=8000,listenerPorts.last=8999'], /holds 8081/],
    [
      'a PodDisruptionBudget no drain could meet (minAvailable)',
      ['--set', 'proxy.replicas=2,proxy.podDisruptionBudget.minAvailable=2'],
      /minAvailable \(2\) must be below proxy\.replicas \(2\)/,
    ],
    ['a PodDisruptionBudget no drain could meet (maxUnavailable 0)', ['--set', 'proxy.podDisruptionBudget.maxUnavailable=0'], /maxUnavailable 0/],
    ['a drain delay past any grace period', ['--set', 'proxy.drainDelaySeconds=600'], /drainDelaySeconds/],
    ['an image digest that is not one', ['--set', 'image.digest=latest'], /digest/],
    ['a config volume size that is not a quantity', ['--set', 'proxy.configVolumeSizeLimit=lots'], /configVolumeSizeLimit/],
  ];
  for (const [name, args, message] of refused) {
    test(`refuses ${name}, at helm time`, async () => {
      const r = await runHelm(['template', releaseName, chartDir, '--namespace', releaseNamespace, ...args]);
      assert.notEqual(r.code, 0, `rendered although it should not:\n${r.stdout.slice(0, 400)}`);
      assert.match(r.stderr, message);
    });
  }

  test('dataPlane: haproxy by default and nginx pass their --data-plane to the controller and the agent; none renders no proxy', async () => {
    for (const [dataPlane, args] of [
      ['haproxy', []],
      ['nginx', ['--set', 'dataPlane=nginx']],
    ] as const) {
      const objects = await rendered(args);
      assert.ok(containerOf(objects, 'mtls-egress-controller').args.includes(`--data-plane=${dataPlane}`));
      const agent = containerOf(objects, 'mtls-egress-proxy').args;
      assert.deepEqual(agent.slice(0, 3), ['agent', `--data-plane=${dataPlane}`, '--manage']);
    }

    const none = await rendered(['--set', 'dataPlane=none']);
    assert.ok(containerOf(none, 'mtls-egress-controller').args.includes('--data-plane=none'));
    assert.deepEqual(
      none.filter((o) => o.metadata.name.startsWith('mtls-egress-proxy')).map(objectId),
      [],
      'no proxy Deployment, Service, PodDisruptionBudget, RBAC or NetworkPolicy',
    );
    // Status only: no proxy objects to write, no cluster networks to read.
    const role = find(none, 'Role', 'mtls-egress-controller') as Manifest & { rules: Array<{ resources: string[] }> };
    assert.deepEqual(
      role.rules.flatMap((r) => r.resources),
      ['leases', 'leases'],
    );
    const clusterRole = find(none, 'ClusterRole', 'mtls-egress-controller') as Manifest & { rules: Array<{ resources: string[] }> };
    assert.ok(!clusterRole.rules.some((r) => r.resources.includes('nodes')));
  });

  test('watchNamespaces narrows the controller: --namespaces, a RoleBinding per namespace, no cluster-wide Secrets', async () => {
    const objects = await rendered(['--set', 'watchNamespaces={team-a,team-b}']);
    assert.ok(containerOf(objects, 'mtls-egress-controller').args.includes('--namespaces=team-a,team-b'));
    assert.equal(find(objects, 'ClusterRoleBinding', 'mtls-egress-controller'), undefined);
    const watch = objects.filter((o) => o.kind === 'RoleBinding' && o.metadata.name === 'mtls-egress-controller-watch');
    assert.deepEqual(watch.map((o) => o.metadata.namespace).sort(), ['team-a', 'team-b']);
    // Nodes, ServiceCIDRs and Calico's IP pools are cluster-scoped: bound apart, and nothing else with them.
    const networks = find(objects, 'ClusterRole', 'mtls-egress-controller-cluster-networks') as Manifest & { rules: Array<{ resources: string[] }> };
    assert.deepEqual(networks.rules.flatMap((r) => r.resources).sort(), ['endpoints', 'ippools', 'nodes', 'servicecidrs']);
    assert.ok(find(objects, 'ClusterRoleBinding', 'mtls-egress-controller-cluster-networks'));
  });

  test('image, listener range, destinations and cluster CIDRs become the image and flags they name', async () => {
    const objects = await rendered([
      '--set',
      'image.repository=registry.example/mtls-egress,image.tag=0.2.0,image.pullPolicy=Always',
      '--set',
      'listenerPorts.first=20000,listenerPorts.last=20099',
      '--set',
      'allowedDestinations={10.96.0.93/32}',
      '--set',
      'clusterCidrs={10.244.0.0/16}',
    ]);
    const controller = containerOf(objects, 'mtls-egress-controller');
    assert.equal(controller.image, 'registry.example/mtls-egress:0.2.0');
    assert.equal(controller.imagePullPolicy, 'Always');
    assert.equal(containerOf(objects, 'mtls-egress-proxy').image, 'registry.example/mtls-egress:0.2.0');
    for (const flag of ['--listener-ports=20000-20099', '--allowed-destinations=10.96.0.93/32', '--cluster-cidrs=10.244.0.0/16']) {
      assert.ok(controller.args.includes(flag), `${flag} in ${controller.args.join(' ')}`);
    }
    // With the ranges given, the controller still lists Nodes: their own addresses are refused whatever the ranges.
    const clusterRole = find(objects, 'ClusterRole', 'mtls-egress-controller') as Manifest & { rules: Array<{ resources: string[] }> };
    assert.ok(clusterRole.rules.some((r) => r.resources.includes('nodes')));
    const digest = `sha256:${'a'.repeat(64)}`;
    const pinned = await rendered(['--set', `image.digest=${digest}`]);
    assert.equal(containerOf(pinned, 'mtls-egress-controller').image, `mtls-egress@${digest}`);
  });

  for (const dataPlane of ['haproxy', 'nginx', 'none'] as const) {
    test(`the flags the chart renders are accepted by the controller${dataPlane === 'none' ? '' : ' and the agent'}: dataPlane=${dataPlane}`, async () => {
      const objects = await rendered([
        '--set',
        `dataPlane=${dataPlane}`,
        '--set',
        'watchNamespaces={team-a},allowedDestinations={10.96.0.93/32},controller.extraArgs={--workers=8}',
      ]);
      const env = { POD_NAMESPACE: releaseNamespace, POD_NAME: 'mtls-egress-controller-0' };
      const [command, ...controllerArgs] = containerOf(objects, 'mtls-egress-controller').args;
      assert.equal(command, 'controller');
      const config = parseControllerConfig(controllerArgs, env);
      assert.equal(config.dataPlane, dataPlane);
      assert.deepEqual(config.namespaces, ['team-a']);
      assert.equal(config.workers, 8);
      assert.deepEqual(config.listenerPorts, { first: 10000, last: 10999 });
      if (dataPlane === 'none') return;
      const [agent, ...agentArgs] = containerOf(objects, 'mtls-egress-proxy').args;
      assert.equal(agent, 'agent');
      const agentConfig = parseAgentConfig(agentArgs, { POD_NAMESPACE: releaseNamespace, POD_NAME: 'mtls-egress-proxy-0' });
      assert.equal(agentConfig.dataPlane, dataPlane);
      assert.equal(agentConfig.manage, true);
    });
  }

  test('the metrics and status ports admit the monitoring namespaces alone; the listener ports are left to the per-binding policies', async () => {
    interface Policy {
      spec: { podSelector: { matchLabels: Record<string, string> }; ingress: Array<{ from?: unknown[]; ports: Array<{ port: number }> }> };
    }
    const ingressOf = (objects: Manifest[], name: string): Policy['spec']['ingress'] =>
      (find(objects, 'NetworkPolicy', name) as unknown as Policy).spec.ingress;
    const defaults = await rendered();
    const monitoring = [{ namespaceSelector: { matchLabels: { 'mtls-egress.io/monitoring': 'true' } } }];
    assert.deepEqual(ingressOf(defaults, 'mtls-egress-controller'), [{ from: monitoring, ports: [{ protocol: 'TCP', port: 8080 }] }]);
    assert.deepEqual(ingressOf(defaults, 'mtls-egress-proxy-default-deny'), [
      {
        from: monitoring,
        ports: [
          { protocol: 'TCP', port: 8081 },
          { protocol: 'TCP', port: 8082 },
        ],
      },
    ]);
    // Every rule of every shipped policy names its peers: none is open to every pod.
    for (const policy of defaults.filter((o) => o.kind === 'NetworkPolicy') as unknown as Policy[]) {
      for (const rule of policy.spec.ingress) assert.ok(rule.from && rule.from.length > 0, JSON.stringify(rule));
    }
    const narrowed = await rendered([
      '--set-json',
      'metricsAccess={"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"In","values":["monitoring","observability"]}]},"podSelector":{"matchLabels":{"app.kubernetes.io/name":"prometheus"}}}',
    ]);
    // A selector of one's own replaces the default label; it is not merged with it.
    assert.deepEqual(ingressOf(narrowed, 'mtls-egress-controller')[0]!.from, [
      {
        namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: ['monitoring', 'observability'] }] },
        podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } },
      },
    ]);
  });

  test('the proxy’s config volume, which holds every key, is memory-backed with a size limit', async () => {
    interface Volumes {
      spec: { template: { spec: { volumes: Array<{ name: string; emptyDir?: { medium?: string; sizeLimit?: string } }> } } };
    }
    const configVolume = (objects: Manifest[]) =>
      (find(objects, 'Deployment', 'mtls-egress-proxy') as unknown as Volumes).spec.template.spec.volumes.find((v) => v.name === 'config');
    assert.deepEqual(configVolume(await rendered())?.emptyDir, { medium: 'Memory', sizeLimit: '128Mi' });
    assert.deepEqual(configVolume(await rendered(['--set', 'proxy.configVolumeSizeLimit=256Mi']))?.emptyDir, { medium: 'Memory', sizeLimit: '256Mi' });
  });

  test('NOTES.txt tells how to create the first binding, in a watched namespace', async () => {
    const r = await runHelm(['install', releaseName, chartDir, '--namespace', releaseNamespace, '--dry-run=client', '--set', 'watchNamespaces={payments}']);
    assert.equal(r.code, 0, r.stderr);
    const notes = r.stdout.slice(r.stdout.indexOf('NOTES:'));
    assert.match(notes, /kubectl create secret generic partner-keystore -n payments --from-file=keystore\.p12=/);
    assert.match(notes, /kind: ClientCertificateBinding/);
    assert.match(notes, /kubectl get ccb -n payments -o wide/);
    assert.match(notes, /status\.endpoint/);
    assert.match(notes, /kubectl label namespace monitoring mtls-egress\.io\/monitoring=true/);
  });

  describe('against the API server', () => {
    test('the namespace, as the README makes it: enforcing the restricted Pod Security level', async () => {
      for (const args of [
        ['create', 'namespace', releaseNamespace],
        ['label', 'namespace', releaseNamespace, 'pod-security.kubernetes.io/enforce=restricted'],
      ]) {
        const r = await kubectl(args);
        assert.equal(r.code, 0, r.stderr);
      }
      // No controller-manager here makes it; the pods dry-run below run as it.
      await kube.client.create(`/api/v1/namespaces/${releaseNamespace}/serviceaccounts`, {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: { name: 'default', namespace: releaseNamespace },
      });
      for (const ns of ['team-a', 'team-b']) await kube.namespace(ns, { exact: true });
    });

    for (const [name, args] of valueSets) {
      test(`helm template | kubectl apply --server-side --dry-run=server passes, and every pod is admitted under restricted: ${name}`, async () => {
        const manifests = await helmTemplate(args);
        const dry = await kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], manifests);
        assert.equal(dry.code, 0, dry.stderr);
        assert.match(dry.stdout, /deployment\.apps\/mtls-egress-controller serverside-applied \(server dry run\)/);
        for (const d of parseManifests(manifests).filter((o) => o.kind === 'Deployment') as Array<Manifest & PodTemplate>) {
          // As the default ServiceAccount: the chart's own exist only once it is installed, and
          // Pod Security judges the pod's security settings, not who it runs as.
          const spec = { ...d.spec.template.spec, serviceAccountName: 'default' };
          const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: `pss-${d.metadata.name}`, namespace: releaseNamespace }, spec };
          await kube.client.request('POST', `/api/v1/namespaces/${releaseNamespace}/pods`, { query: { dryRun: 'All' }, body: pod });
        }
      });
    }

    test('helm install creates the CRD with the release; helm upgrade changes it; helm uninstall keeps it', async () => {
      const install = await runHelm(['install', releaseName, chartDir, '--namespace', releaseNamespace], { kubeConfigPath: cluster.kubeConfigPath });
      assert.equal(install.code, 0, install.stderr);
      assert.match(install.stdout, /STATUS: deployed/);
      const established = await kubectl(['wait', '--for=condition=Established', `crd/${crdName}`, '--timeout=30s']);
      assert.equal(established.code, 0, established.stderr);
      const crdPath = `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crdName}`;
      type Crd = { metadata: { labels?: Record<string, string>; annotations?: Record<string, string> } };
      assert.equal((await kube.client.get<Crd>(crdPath)).metadata.annotations?.['meta.helm.sh/release-name'], releaseName);

      // Helm's crds/ folder would never be upgraded; the chart's CRD template is.
      const upgrade = await runHelm(['upgrade', releaseName, chartDir, '--namespace', releaseNamespace, '--set', 'commonLabels.example\\.com/upgraded=yes'], {
        kubeConfigPath: cluster.kubeConfigPath,
      });
      assert.equal(upgrade.code, 0, upgrade.stderr);
      assert.equal((await kube.client.get<Crd>(crdPath)).metadata.labels?.['example.com/upgraded'], 'yes');

      const uninstall = await runHelm(['uninstall', releaseName, '--namespace', releaseNamespace, '--wait'], { kubeConfigPath: cluster.kubeConfigPath });
      assert.equal(uninstall.code, 0, uninstall.stderr);
      assert.match(uninstall.stdout + uninstall.stderr, /kept due to the resource policy/);
      await kube.client.get(crdPath);
      await assert.rejects(kube.client.get(`/apis/apps/v1/namespaces/${releaseNamespace}/deployments/mtls-egress-controller`), /404/);
    });

    test('with watchNamespaces, the controller works with exactly the chart’s RBAC and reads only those namespaces', async () => {
      const watched = await kube.namespace('watched');
      const other = await kube.namespace('unwatched');
      // A new release takes the kept CRD back: Helm adopts what carries its release's name.
      const install = await runHelm(
        ['install', releaseName, chartDir, '--namespace', releaseNamespace, '--set', `dataPlane=none,watchNamespaces={${watched}}`],
        { kubeConfigPath: cluster.kubeConfigPath },
      );
      assert.equal(install.code, 0, install.stderr);
      const sa = `system:serviceaccount:${releaseNamespace}:mtls-egress-controller`;
      const canI = async (...args: string[]): Promise<string> => (await kubectl(['auth', 'can-i', ...args, '--as', sa])).stdout.trim();
      assert.equal(await canI('list', 'secrets', '-n', watched), 'yes');
      assert.equal(await canI('list', 'secrets', '-n', other), 'no');
      assert.equal(await canI('list', 'secrets', '--all-namespaces'), 'no');
      assert.equal(await canI('list', 'nodes'), 'no', 'status only (dataPlane none) reads no cluster networks');

      const pki = new PartnerPki();
      for (const ns of [watched, other]) {
        await kube.putPfxSecret(ns, 'pfx', pki.issueClient({ cn: `${ns}.client` }), 'pw');
        await kube.createBinding(ns, 'b', { host: 'api.partner.example', certificate: { secretRef: { name: 'pfx' }, passwordSecretRef: { name: 'pfx' } } });
      }
      const controller = await startController({
        kubeConfigPath: await kube.serviceAccountKubeconfig(releaseNamespace, 'mtls-egress-controller'),
        namespaces: [watched],
        id: 'helm-rbac',
        leaseName: 'mtls-egress-controller',
        args: ['--namespace', releaseNamespace, '--data-plane', 'none'],
      });
      try {
        await kube.waitForBinding(watched, 'b', 'Ready', hasReason(reasons.BindingReady));
        assert.deepEqual(
          controller.logs.filter((l) => /\b403\b|forbidden/i.test(l)),
          [],
          'no request was refused',
        );
        assert.equal((await kube.getBinding(other, 'b')).status, undefined, 'the unwatched namespace’s binding is left alone');
      } finally {
        await controller.stop();
      }
      const uninstall = await runHelm(['uninstall', releaseName, '--namespace', releaseNamespace, '--wait'], { kubeConfigPath: cluster.kubeConfigPath });
      assert.equal(uninstall.code, 0, uninstall.stderr);
      await pollUntil(async () => ((await canI('list', 'secrets', '-n', watched)) === 'no' ? true : undefined), {
        what: 'the watch RoleBinding to go with the release',
        timeoutMs: 10_000,
      });
    });
  });
});
