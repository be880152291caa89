// A real single-node Kubernetes cluster on this machine: the control plane of
// control-plane.ts, plus containerd 2 with runc, the CNI bridge, kubelet, kube-proxy,
// kube-controller-manager and kube-scheduler as host processes, and CoreDNS and
// kube-network-policies as pods. Every binary and image is built here (build-binaries.sh
// --node, build-images.sh); nothing is pulled. See test/harness/README.md.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { AppsV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { checkBuiltBinaries, kubernetesServiceIp, renderKubeconfig, serviceClusterIpRange, startControlPlane, type ControlPlane } from './control-plane.ts';
import { captureBaseline, createCgroupRoot, writeSysctl } from './host-state.ts';
import { createNodeRecord, reapStaleNodeCluster, tearDownNodeCluster, updateNodeRecord, type NodeClusterRecord } from './node-cluster-state.ts';
import {
  nodeLayout,
  nodeNetwork,
  renderAddons,
  renderCniConfig,
  renderContainerdConfig,
  renderGuardRules,
  renderKubeletConfig,
  renderKubeProxyConfig,
  renderRegistryHosts,
  type NodeLayout,
} from './node-config.ts';
import { issueCertificate } from './pki.ts';
import { pollUntil } from './poll.ts';
import { spawnComponent, waitUntilServing, type ComponentProcess } from './processes.ts';

const execFileAsync = promisify(execFile);
const repoRoot = resolve(import.meta.dirname, '../..');
const tempDirPrefix = 'mtls-egress-node-';

/** What a test needs to use a node cluster it did not start; also written to `<stateDir>/connection.json`. */
export interface NodeClusterConnection {
  /** Admin (system:masters) kubeconfig. */
  kubeConfigPath: string;
  apiServerUrl: string;
  nodeName: string;
  /** The node's InternalIP: the machine's own address, where hostNetwork pods and NodePorts listen. */
  nodeIp: string;
  podCidr: string;
  serviceCidr: string;
  /** The `kubernetes` Service's ClusterIP. */
  kubernetesServiceIp: string;
  clusterDnsIp: string;
  clusterDomain: string;
  containerdSocket: string;
  /** kubectl and ctr at the cluster's own versions. */
  kubectl: string;
  ctr: string;
  stateDir: string;
  logDir: string;
}

export interface NodeCluster extends NodeClusterConnection {
  kubeconfig: KubeConfig;
  /** Imports a docker-archive into the node's containerd, where the kubelet finds it under the archive's name. */
  importImage(archive: string): Promise<void>;
  /** Takes down everything the cluster made on this machine. Safe to call twice. */
  stop(): Promise<void>;
}

export interface NodeClusterOptions {
  /** Default: a fresh temp directory, removed by stop(). */
  stateDir?: string;
  /** Default: `kubeconfig` in the state directory. */
  kubeConfigPath?: string;
  /** Keep running after this process exits (`cluster:up -- --node`); otherwise its exit kills the processes and the next start reaps the rest. */
  outliveProcess?: boolean;
  /** Image archives to import before the node starts, beside the cluster's own (pause, CoreDNS, kube-network-policies). */
  images?: readonly string[];
  /** Per step. Default 120s. */
  startTimeoutMs?: number;
  /** Progress lines, e.g. for the CLI. */
  log?: (message: string) => void;
}

export interface NodeBinaries {
  kubelet: string;
  kubeProxy: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kubectl: string;
  containerdDir: string;
  runcDir: string;
  cniPluginDir: string;
}

/** The node's prebuilt binaries. Never builds: `bash test/harness/build-binaries.sh node` does. */
export async function findNodeBinaries(): Promise<NodeBinaries> {
  const built = await checkBuiltBinaries(join(repoRoot, 'test/harness/build-binaries.sh'), ['node']).catch((error: { stderr?: string }) => {
    throw new Error(error.stderr?.trim() || String(error), { cause: error });
  });
  const get = (name: string): string => {
    const path = built.get(name);
    if (path === undefined) throw new Error(`build-binaries.sh node --check did not name ${name}`);
    return path;
  };
  return {
    kubelet: get('kubelet'),
    kubeProxy: get('kube-proxy'),
    kubeControllerManager: get('kube-controller-manager'),
    kubeScheduler: get('kube-scheduler'),
    kubectl: get('kubectl'),
    containerdDir: get('containerd'),
    runcDir: get('runc'),
    cniPluginDir: get('cni-plugins'),
  };
}

export interface BuiltImage {
  reference: string;
  archive: string;
}

/** The images built by build-images.sh, by name (pause, coredns, kube-network-policies, project). Never builds. */
export async function findImages(): Promise<Map<string, BuiltImage>> {
  const script = join(repoRoot, 'test/harness/build-images.sh');
  const { stdout } = await execFileAsync('bash', [script, '--check']).catch((error: { stdout?: string; stderr?: string; code?: number }) => {
    // Exit 3 lists what is current and names what is not; the caller decides what it needs.
    if (error.code === 3 && error.stdout !== undefined) return { stdout: error.stdout };
    throw new Error(error.stderr?.trim() || String(error), { cause: error });
  });
  return new Map(
    stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [name = '', reference = '', archive = ''] = line.split(' ');
        return [name, { reference, archive }] as const;
      }),
  );
}

export function requireImage(images: Map<string, BuiltImage>, name: string, buildCommand: string): BuiltImage {
  const image = images.get(name);
  if (image === undefined) throw new Error(`the ${name} image is missing or stale; build it with: ${buildCommand}`);
  return image;
}

/** The machine's own address and the interface that carries the default route: the kubelet refuses a loopback node IP. */
export async function findNodeAddress(): Promise<{ nodeIp: string; uplink: string }> {
  const routes = JSON.parse((await execFileAsync('ip', ['-j', '-4', 'route', 'show', 'default'])).stdout) as { dev?: string }[];
  const uplink = routes[0]?.dev;
  if (uplink === undefined) throw new Error("no IPv4 default route: cannot tell the machine's own address");
  const links = JSON.parse((await execFileAsync('ip', ['-j', '-4', 'addr', 'show', 'dev', uplink])).stdout) as {
    addr_info?: { local?: string; scope?: string }[];
  }[];
  const nodeIp = links[0]?.addr_info?.find((address) => address.scope === 'global')?.local;
  if (nodeIp === undefined) throw new Error(`no global IPv4 address on ${uplink}`);
  return { nodeIp, uplink };
}

/** Imports a docker-archive into containerd's k8s.io namespace, which is where the kubelet looks. */
export async function importImageIntoNode(connection: Pick<NodeClusterConnection, 'ctr' | 'containerdSocket'>, archive: string): Promise<void> {
  await execFileAsync(
    connection.ctr,
    ['--address', connection.containerdSocket, '--namespace', 'k8s.io', 'images', 'import', '--platform', 'linux/amd64', archive],
    { maxBuffer: 16 * 1024 * 1024 },
  ).catch((error: { stderr?: string }) => {
    throw new Error(`ctr images import ${archive} failed: ${error.stderr?.trim() ?? String(error)}`, { cause: error });
  });
}

/** GET `url`; the status code, or undefined if nothing answered. Local health endpoints only, so their self-signed certificates are not checked. */
function httpStatus(url: string): Promise<number | undefined> {
  return new Promise((resolveStatus) => {
    const request = url.startsWith('https:') ? httpsRequest : httpRequest;
    const probe = request(url, { agent: false, timeout: 2_000, rejectUnauthorized: false }, (response) => {
      response.resume();
      resolveStatus(response.statusCode);
    });
    probe.on('timeout', () => probe.destroy());
    probe.on('error', () => resolveStatus(undefined));
    probe.end();
  });
}

const isOk = (url: string) => async (): Promise<boolean> => (await httpStatus(url)) === 200;

interface NodeComponentSpec {
  name: string;
  binary: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  isServing: () => Promise<boolean>;
}

function componentSpecs(
  layout: NodeLayout,
  binaries: NodeBinaries,
  controlPlane: ControlPlane,
): Record<'containerd' | 'kubelet' | 'kubeProxy' | 'controllerManager' | 'scheduler', NodeComponentSpec> {
  const { ports } = nodeNetwork;
  const ctr = join(binaries.containerdDir, 'ctr');
  return {
    containerd: {
      name: 'containerd',
      binary: join(binaries.containerdDir, 'containerd'),
      args: ['--config', layout.containerd.config],
      // The runc shim runs `runc` from PATH for `-info`, whatever BinaryName says.
      env: { ...process.env, PATH: `${binaries.runcDir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` },
      isServing: () =>
        execFileAsync(ctr, ['--address', layout.containerd.socket, 'version']).then(
          () => true,
          () => false,
        ),
    },
    kubelet: {
      name: 'kubelet',
      binary: binaries.kubelet,
      args: [
        `--config=${layout.kubelet.config}`,
        `--kubeconfig=${layout.kubelet.kubeconfig}`,
        `--root-dir=${layout.kubelet.rootDir}`,
        `--cert-dir=${join(layout.kubelet.dir, 'pki')}`,
        `--hostname-override=${nodeNetwork.nodeName}`,
        `--node-ip=${layout.nodeIp}`,
        '--v=1',
      ],
      isServing: isOk(`http://127.0.0.1:${ports.kubeletHealthz}/healthz`),
    },
    kubeProxy: {
      name: 'kube-proxy',
      binary: binaries.kubeProxy,
      args: [`--config=${layout.kubeProxy.config}`, '--v=1'],
      isServing: isOk(`http://127.0.0.1:${ports.kubeProxyHealthz}/livez`),
    },
    controllerManager: {
      name: 'kube-controller-manager',
      binary: binaries.kubeControllerManager,
      args: [
        `--kubeconfig=${layout.controllerManager.kubeconfig}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${ports.controllerManager}`,
        `--cert-dir=${join(layout.stateDir, 'kube-controller-manager')}`,
        `--service-account-private-key-file=${controlPlane.pki.serviceAccountKey}`,
        `--root-ca-file=${controlPlane.pki.caCert}`,
        `--cluster-signing-cert-file=${controlPlane.pki.caCert}`,
        `--cluster-signing-key-file=${controlPlane.pki.caKey}`,
        '--use-service-account-credentials=true',
        // The node's podCIDR, which the CNI bridge's host-local range matches.
        '--allocate-node-cidrs=true',
        `--cluster-cidr=${nodeNetwork.clusterCidr}`,
        '--node-cidr-mask-size=24',
        `--service-cluster-ip-range=${serviceClusterIpRange}`,
        '--leader-elect=false',
        '--profiling=false',
        '--v=1',
      ],
      isServing: isOk(`https://127.0.0.1:${ports.controllerManager}/healthz`),
    },
    scheduler: {
      name: 'kube-scheduler',
      binary: binaries.kubeScheduler,
      args: [
        `--kubeconfig=${layout.scheduler.kubeconfig}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${ports.scheduler}`,
        `--cert-dir=${join(layout.stateDir, 'kube-scheduler')}`,
        '--leader-elect=false',
        '--profiling=false',
        '--v=1',
      ],
      isServing: isOk(`https://127.0.0.1:${ports.scheduler}/healthz`),
    },
  };
}

async function writeFileIn(path: string, content: string, mode = 0o644): Promise<void> {
  await mkdir(resolve(path, '..'), { recursive: true });
  await writeFile(path, content, { mode });
}

/** Certificates from the control plane's CA and a kubeconfig per component, each with its own identity as in a real cluster. */
async function writeComponentIdentities(layout: NodeLayout, controlPlane: ControlPlane): Promise<{ kubeletServing: { cert: string; key: string } }> {
  const { pki } = controlPlane;
  const caCert = await readFile(pki.caCert);
  const identity = async (name: string, subject: string, kubeconfig: string, servingIps?: string[]): Promise<{ cert: string; key: string }> => {
    const issued = await issueCertificate(pki, name, subject, servingIps === undefined ? {} : { servingIps });
    const [cert, key] = await Promise.all([readFile(issued.cert), readFile(issued.key)]);
    await writeFileIn(kubeconfig, renderKubeconfig(controlPlane.apiServerUrl, caCert, cert, key), 0o600);
    return issued;
  };
  const [kubeletServing] = await Promise.all([
    // The Node authorizer and NodeRestriction know a kubelet by this name and group.
    identity('kubelet', `/O=system:nodes/CN=system:node:${nodeNetwork.nodeName}`, layout.kubelet.kubeconfig, [layout.nodeIp]),
    identity('kube-proxy', '/CN=system:kube-proxy', layout.kubeProxy.kubeconfig),
    identity('kube-controller-manager', '/CN=system:kube-controller-manager', layout.controllerManager.kubeconfig),
    identity('kube-scheduler', '/CN=system:kube-scheduler', layout.scheduler.kubeconfig),
  ]);
  return { kubeletServing };
}

async function waitUntilNodeReady(kubeconfig: KubeConfig, timeoutMs: number): Promise<void> {
  const core = kubeconfig.makeApiClient(CoreV1Api);
  await pollUntil(
    async () => {
      const node = await core.readNode({ name: nodeNetwork.nodeName });
      const ready = node.status?.conditions?.find((condition) => condition.type === 'Ready');
      if (ready?.status === 'True') return true;
      throw new Error(`node Ready=${ready?.status ?? 'unknown'}: ${ready?.message ?? 'not registered yet'}`);
    },
    { what: `node ${nodeNetwork.nodeName} to be Ready`, timeoutMs, intervalMs: 200 },
  );
}

async function waitUntilAddonsReady(kubeconfig: KubeConfig, timeoutMs: number): Promise<void> {
  const apps = kubeconfig.makeApiClient(AppsV1Api);
  await pollUntil(
    async () => {
      const [coredns, policies] = await Promise.all([
        apps.readNamespacedDeployment({ namespace: 'kube-system', name: 'coredns' }),
        apps.readNamespacedDaemonSet({ namespace: 'kube-system', name: 'kube-network-policies' }),
      ]);
      if ((coredns.status?.availableReplicas ?? 0) >= 1 && (policies.status?.numberReady ?? 0) >= 1) return true;
      throw new Error(`CoreDNS available ${coredns.status?.availableReplicas ?? 0}, kube-network-policies ready ${policies.status?.numberReady ?? 0}`);
    },
    { what: 'CoreDNS and kube-network-policies to be ready', timeoutMs, intervalMs: 250 },
  );
}

async function runKubectl(kubectl: string, kubeConfigPath: string, args: string[]): Promise<string> {
  try {
    return (await execFileAsync(kubectl, ['--kubeconfig', kubeConfigPath, ...args])).stdout;
  } catch (error) {
    throw new Error(`kubectl ${args.join(' ')} failed: ${(error as { stderr?: string }).stderr?.trim() ?? String(error)}`, { cause: error });
  }
}

/**
 * Starts a single-node cluster and resolves once the node is Ready and cluster DNS and
 * NetworkPolicy enforcement run. One per machine: a live one makes this fail, a dead
 * one (a SIGKILLed run) is reaped first.
 */
export async function startNodeCluster(options: NodeClusterOptions = {}): Promise<NodeCluster> {
  const timeoutMs = options.startTimeoutMs ?? 120_000;
  const log = options.log ?? (() => undefined);
  if (process.getuid?.() !== 0) throw new Error('a node cluster needs root: it runs a kubelet, containerd and network plumbing');
  // Everything that can be missing is looked up before the machine is touched.
  const [binaries, images, address] = await Promise.all([findNodeBinaries(), findImages(), findNodeAddress()]);
  const clusterImages = ['pause', 'coredns', 'kube-network-policies'].map((name) => requireImage(images, name, 'bash test/harness/build-images.sh cluster'));
  const [pause, coredns, kubeNetworkPolicies] = clusterImages as [BuiltImage, BuiltImage, BuiltImage];

  const reaped = await reapStaleNodeCluster();
  if (reaped !== undefined) log(`removed the leftovers of a node cluster whose owner died (${reaped.stateDir})`);
  const isTemporary = options.stateDir === undefined;
  const stateDir = isTemporary ? await mkdtemp(join(tmpdir(), tempDirPrefix)) : resolve(options.stateDir ?? '');
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const layout = nodeLayout(stateDir, address.nodeIp, address.uplink);
  const kubeConfigPath = resolve(options.kubeConfigPath ?? join(stateDir, 'kubeconfig'));
  const ownerPid = options.outliveProcess === true ? null : process.pid;
  const record: NodeClusterRecord = {
    stateDir,
    ownerPid,
    starterPid: process.pid,
    ready: false,
    kubeConfigPath,
    nodeIp: address.nodeIp,
    uplink: address.uplink,
    components: {},
    // Before any change: this is what `down` restores.
    host: await captureBaseline(),
  };
  await createNodeRecord(record).catch(async (error: unknown) => {
    if (isTemporary) await rm(stateDir, { recursive: true, force: true });
    throw error;
  });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopping ??= tearDownNodeCluster(record));
  // Components start in parallel; their record writes must not interleave.
  let recordWrites = Promise.resolve();
  const saveRecord = (): Promise<void> => (recordWrites = recordWrites.then(() => updateNodeRecord(record)));
  const started: ComponentProcess[] = [];
  const startComponent = async (spec: NodeComponentSpec): Promise<void> => {
    const logFile = join(layout.logDir, `${spec.name}.log`);
    const component = spawnComponent({ name: spec.name, binary: spec.binary, args: spec.args, env: spec.env, logFile, killOnExit: ownerPid !== null });
    started.push(component);
    record.components[spec.name] = component.pid;
    await saveRecord();
    await waitUntilServing(component, logFile, spec.isServing, timeoutMs);
  };

  try {
    await mkdir(layout.logDir, { recursive: true });
    await createCgroupRoot();
    // Services and NetworkPolicy between pods on one bridge need bridged traffic to pass
    // netfilter; the bridge plugin turns forwarding on anyway, as the pods' gateway.
    await writeSysctl('net/bridge/bridge-nf-call-iptables', '1');
    await writeSysctl('net/bridge/bridge-nf-call-ip6tables', '1');
    await writeSysctl('net/ipv4/ip_forward', '1');
    log(`guarding ${layout.uplink}: no cluster traffic leaves this machine`);
    await writeFileIn(join(stateDir, 'guard.nft'), renderGuardRules(layout));
    await execFileAsync('nft', ['-f', join(stateDir, 'guard.nft')]);

    log('starting etcd and kube-apiserver');
    const controlPlane = await startControlPlane({
      stateDir: join(stateDir, 'control-plane'),
      kubeConfigPath,
      outliveProcess: options.outliveProcess,
      node: { nodeIp: layout.nodeIp },
      startTimeoutMs: timeoutMs,
    });
    const apiServerPort = new URL(controlPlane.apiServerUrl).port;
    await execFileAsync('nft', ['add', 'element', 'inet', nodeNetwork.guardTable, 'cluster_ports', `{ ${apiServerPort} }`]);

    const { kubeletServing } = await writeComponentIdentities(layout, controlPlane);
    await Promise.all([
      writeFileIn(layout.containerd.config, renderContainerdConfig(layout, binaries, pause.reference)),
      writeFileIn(join(layout.containerd.registryConfigDir, '_default/hosts.toml'), renderRegistryHosts()),
      writeFileIn(join(layout.cni.confDir, '10-mtls-egress-node.conflist'), renderCniConfig(layout)),
      writeFileIn(
        layout.kubelet.config,
        renderKubeletConfig(layout, { caCert: controlPlane.pki.caCert, servingCert: kubeletServing.cert, servingKey: kubeletServing.key }),
      ),
      writeFileIn(layout.kubelet.resolvConf, '# Cluster DNS only (kubelet resolvConf): no host resolver.\n'),
      writeFileIn(layout.kubeProxy.config, renderKubeProxyConfig(layout)),
      writeFileIn(join(layout.addonsDir, 'addons.yaml'), renderAddons({ coredns: coredns.reference, kubeNetworkPolicies: kubeNetworkPolicies.reference })),
      mkdir(layout.containerd.tmp, { recursive: true }),
    ]);
    const specs = componentSpecs(layout, binaries, controlPlane);

    log('starting containerd, kube-controller-manager, kube-scheduler, the kubelet and kube-proxy');
    const connection: NodeClusterConnection = {
      kubeConfigPath,
      apiServerUrl: controlPlane.apiServerUrl,
      nodeName: nodeNetwork.nodeName,
      nodeIp: layout.nodeIp,
      podCidr: nodeNetwork.podCidr,
      serviceCidr: serviceClusterIpRange,
      kubernetesServiceIp,
      clusterDnsIp: nodeNetwork.clusterDnsIp,
      clusterDomain: nodeNetwork.clusterDomain,
      containerdSocket: layout.containerd.socket,
      kubectl: binaries.kubectl,
      ctr: join(binaries.containerdDir, 'ctr'),
      stateDir,
      logDir: layout.logDir,
    };
    // The caller's images (the project's, 300 MB) import while the kubelet and the add-ons
    // start: only the cluster's own images are needed before that.
    let callerImages: Promise<void> = Promise.resolve();
    const startRuntimeAndKubelet = async (): Promise<void> => {
      await startComponent(specs.containerd);
      await Promise.all(clusterImages.map((image) => importImageIntoNode(connection, image.archive)));
      callerImages = Promise.all((options.images ?? []).map((archive) => importImageIntoNode(connection, archive))).then(() => undefined);
      // Awaited below; until then a failure must not count as unhandled.
      callerImages.catch(() => undefined);
      await startComponent(specs.kubelet);
    };
    // kube-proxy serves only once its Node exists (it waits up to 30s for the kubelet to
    // register it), so everything starts together and the kubelet is not held up by it.
    await Promise.all([startRuntimeAndKubelet(), startComponent(specs.controllerManager), startComponent(specs.scheduler), startComponent(specs.kubeProxy)]);
    await waitUntilNodeReady(controlPlane.kubeconfig, timeoutMs);

    log('starting CoreDNS and kube-network-policies');
    await runKubectl(binaries.kubectl, kubeConfigPath, ['apply', '--server-side', '--force-conflicts', '-f', join(layout.addonsDir, 'addons.yaml')]);
    await Promise.all([waitUntilAddonsReady(controlPlane.kubeconfig, timeoutMs), callerImages]);

    record.ready = true;
    await saveRecord();
    await writeFile(join(stateDir, 'connection.json'), `${JSON.stringify(connection, null, 2)}\n`);
    return {
      ...connection,
      kubeconfig: controlPlane.kubeconfig,
      importImage: (archive) => importImageIntoNode(connection, archive),
      stop,
    };
  } catch (error) {
    const exited = await Promise.all(
      started.filter((component) => component.hasExited()).map(async (component) => `${component.name} ${await component.exited}`),
    );
    await stop().catch((stopError: unknown) => log(`cleaning up after the failed start also failed: ${String(stopError)}`));
    if (exited.length > 0 && error instanceof Error) error.message += ` (exited: ${exited.join(', ')})`;
    throw error;
  }
}

/** Reads `<stateDir>/connection.json` of a running node cluster (one from `cluster:up -- --node`, or the run's shared one). */
export async function readNodeClusterConnection(path: string): Promise<NodeClusterConnection> {
  return JSON.parse(await readFile(path, 'utf8')) as NodeClusterConnection;
}
