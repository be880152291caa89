import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { createAdminHttp, type AdminHttp } from './admin-http.ts';
import { reapOrphanedControlPlanes, writeControlPlaneState, type ControlPlaneState } from './control-plane-state.ts';
import { installCrds, readCrdDocuments, waitUntilCrdsServed } from './crds.ts';
import { createControlPlanePki, issueCertificate, type ControlPlanePki } from './pki.ts';
import { freePorts } from './ports.ts';
import { removeDirectoryOnExit, spawnComponent, stopProcessGroup, waitUntilServing, type ComponentProcess } from './processes.ts';

const execFileAsync = promisify(execFile);

const repoRoot = resolve(import.meta.dirname, '../..');
const tempDirPrefix = 'mtls-egress-control-plane-';

/** ClusterIPs come from here; the first one is the `kubernetes` Service's. */
export const serviceClusterIpRange = '10.96.0.0/24';
export const kubernetesServiceIp = '10.96.0.1';

export interface ControlPlaneBinaries {
  kubeApiServer: string;
  etcd: string;
}

export interface ControlPlaneOptions {
  /** Every *.yaml here is installed as a CRD before startControlPlane resolves. Default: the repo's crds/. */
  crdDir?: string;
  /** Where data, certificates, logs and pids live. Default: a fresh temp directory that stop() deletes. */
  stateDir?: string;
  /** Default: `kubeconfig` in the state directory. */
  kubeConfigPath?: string;
  /**
   * Keep running after this Node process exits (`cluster-cli up`). Otherwise the exit
   * and interrupt handlers kill the control plane, and the next start reaps it if even
   * those never ran.
   */
  outliveProcess?: boolean;
  /** Default: the versions pinned in test/harness/go, as built by test/harness/build-binaries.sh. */
  binaries?: ControlPlaneBinaries;
  /** Per component, and for the CRDs. Default 60s: a cold apiserver on a busy 2-core CI machine is slow. */
  startTimeoutMs?: number;
  /**
   * Serve a node (node-cluster.ts) rather than API clients alone: the apiserver listens on
   * every address and advertises `nodeIp`, so pods reach it through the `kubernetes`
   * Service; it authorizes kubelets as nodes (Node,RBAC and NodeRestriction) and reaches
   * them for logs, exec and port-forward with a client certificate, verifying theirs.
   */
  node?: { nodeIp: string };
}

export interface ControlPlane {
  /** Authenticated as an admin in system:masters. */
  kubeconfig: KubeConfig;
  kubeConfigPath: string;
  apiServerUrl: string;
  etcdUrl: string;
  stateDir: string;
  /** Names of the CRDs installed from the CRD directory. */
  crds: readonly string[];
  logFiles: { kubeApiServer: string; etcd: string };
  /** The CA and the certificates made for this control plane; issueCertificate() makes more. */
  pki: ControlPlanePki;
  /** Stops both processes and deletes what startControlPlane created. Safe to call twice. */
  stop(): Promise<void>;
  /** Stops and starts kube-apiserver on the same port with the same data; resolves when it is ready again. */
  restartApiServer(): Promise<void>;
  /** Stops and starts etcd with the same data; resolves when the apiserver reports ready again. */
  restartEtcd(): Promise<void>;
}

/** A component's fixed identity: started again with the same arguments, it finds its own data. */
interface ComponentSpec {
  name: 'etcd' | 'kube-apiserver';
  binary: string;
  args: string[];
  logFile: string;
  /** How long SIGTERM may take before SIGKILL; 0 kills at once. */
  stopGraceMs: number;
}

/** Runs a build script's `--check`, which prints "name path" per artifact, or fails naming the command that builds it. */
export async function checkBuiltBinaries(script: string, args: readonly string[]): Promise<Map<string, string>> {
  const { stdout } = await execFileAsync('bash', [script, ...args, '--check']);
  return new Map(
    stdout
      .trim()
      .split('\n')
      .map((line) => {
        const space = line.indexOf(' ');
        return [line.slice(0, space), line.slice(space + 1)] as const;
      }),
  );
}

/** The pinned, prebuilt binaries. Never builds: a multi-minute build inside a test's timeout helps nobody. */
export async function findPinnedBinaries(): Promise<ControlPlaneBinaries> {
  const script = join(repoRoot, 'test/harness/build-binaries.sh');
  try {
    const binaries = await checkBuiltBinaries(script, ['control-plane']);
    const kubeApiServer = binaries.get('kube-apiserver');
    const etcd = binaries.get('etcd');
    if (kubeApiServer === undefined || etcd === undefined) throw new Error(`build-binaries.sh control-plane --check did not name kube-apiserver and etcd`);
    return { kubeApiServer, etcd };
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    // The script's own message names the missing binary and the command that builds it.
    throw new Error(stderr || `could not locate the control-plane binaries: ${String(error)}`, { cause: error });
  }
}

interface EtcdPorts {
  client: number;
  /** /health and /metrics; see --listen-client-http-urls below. */
  http: number;
  peer: number;
}

function etcdSpec(binary: string, stateDir: string, ports: EtcdPorts): ComponentSpec {
  const clientUrl = `http://127.0.0.1:${ports.client}`;
  const peerUrl = `http://127.0.0.1:${ports.peer}`;
  return {
    name: 'etcd',
    binary,
    logFile: join(stateDir, 'logs/etcd.log'),
    // With the apiserver's watches open, etcd's graceful stop always waits out its 7s
    // request timeout. Killing it loses nothing acknowledged: every write is in the WAL
    // (written, if not fsynced, and the kernel keeps it when only the process dies), and
    // etcd replays the WAL on start. So a restart is a crash and recovery, which also is
    // the harder case for the apiserver and the operator.
    stopGraceMs: 0,
    args: [
      '--name=default',
      `--data-dir=${join(stateDir, 'etcd-data')}`,
      // Plain HTTP on loopback: only the apiserver talks to it, and TLS would add setup
      // for no test value (envtest does the same).
      `--listen-client-urls=${clientUrl}`,
      `--advertise-client-urls=${clientUrl}`,
      // HTTP on a port of its own: with gRPC and HTTP multiplexed on one port, etcd takes
      // 7 seconds to exit on SIGTERM while the apiserver holds watches open.
      `--listen-client-http-urls=http://127.0.0.1:${ports.http}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=default=${peerUrl}`,
      // Test data is disposable, and fsync on every write makes a CI disk the bottleneck.
      '--unsafe-no-fsync=true',
      '--log-level=warn',
    ],
  };
}

/** What a control plane that serves a node adds to the apiserver. */
function apiServerNodeArgs(nodeIp: string, pki: ControlPlanePki, kubeletClient: { cert: string; key: string }): string[] {
  return [
    '--bind-address=0.0.0.0',
    `--advertise-address=${nodeIp}`,
    // The `kubernetes` Service's endpoint follows the advertised address, so pods reach us.
    '--endpoint-reconciler-type=lease',
    '--authorization-mode=Node,RBAC',
    '--enable-admission-plugins=NodeRestriction',
    `--kubelet-client-certificate=${kubeletClient.cert}`,
    `--kubelet-client-key=${kubeletClient.key}`,
    `--kubelet-certificate-authority=${pki.caCert}`,
    // The kubelet registers its InternalIP; without this the apiserver dials the node's
    // hostname for logs and exec, which resolves to nothing here.
    '--kubelet-preferred-address-types=InternalIP,Hostname',
  ];
}

function apiServerSpec(binary: string, stateDir: string, pki: ControlPlanePki, port: number, etcdUrl: string, nodeArgs: string[]): ComponentSpec {
  // A node's flags replace the API-only ones of the same name rather than repeat them:
  // list flags such as --authorization-mode would append.
  const flagName = (arg: string): string => arg.slice(0, arg.indexOf('='));
  const replaced = new Set(nodeArgs.map(flagName));
  return {
    name: 'kube-apiserver',
    binary,
    logFile: join(stateDir, 'logs/kube-apiserver.log'),
    stopGraceMs: 10_000,
    args: [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${port}`,
      `--tls-cert-file=${pki.servingCert}`,
      `--tls-private-key-file=${pki.servingKey}`,
      `--client-ca-file=${pki.caCert}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki.serviceAccountPublicKey}`,
      `--service-account-signing-key-file=${pki.serviceAccountKey}`,
      `--service-cluster-ip-range=${serviceClusterIpRange}`,
      // RBAC, as in a real cluster, so tests of the operator's Roles can fail for real.
      '--authorization-mode=RBAC',
      '--allow-privileged=true',
      // Nothing routes to the `kubernetes` Service, so nothing needs its endpoints kept current.
      '--endpoint-reconciler-type=none',
      '--profiling=false',
      // Without it, an open watch holds the apiserver's shutdown for its full timeout, so
      // every restart in a test that watches would cost the 10s stop grace.
      '--shutdown-watch-termination-grace-period=1s',
    ]
      .filter((arg) => !replaced.has(flagName(arg)))
      .concat(nodeArgs),
  };
}

/** Polls `probe` until it passes, failing at once (with the log's tail) if the process exits. */
function waitUntilComponentServes(component: ComponentProcess, spec: ComponentSpec, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  return waitUntilServing(component, spec.logFile, probe, timeoutMs);
}

function isEtcdHealthy(healthUrl: string): Promise<boolean> {
  return new Promise((resolveHealth) => {
    const probe = request(healthUrl, { agent: false, timeout: 2_000 }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolveHealth(response.statusCode === 200 && body.includes('"health":"true"')));
    });
    probe.on('timeout', () => probe.destroy());
    probe.on('error', () => resolveHealth(false));
    probe.end();
  });
}

async function isApiServerReady(http: AdminHttp): Promise<boolean> {
  const response = await http({ method: 'GET', path: '/readyz' }).catch(() => undefined);
  return response?.status === 200;
}

export function renderKubeconfig(apiServerUrl: string, caCert: Buffer, adminCert: Buffer, adminKey: Buffer): string {
  // Certificates inline rather than as paths, so the file keeps working when copied.
  const base64 = (pem: Buffer): string => pem.toString('base64');
  return `apiVersion: v1
kind: Config
clusters:
  - name: mtls-egress-test
    cluster:
      server: ${apiServerUrl}
      certificate-authority-data: ${base64(caCert)}
users:
  - name: mtls-egress-test-admin
    user:
      client-certificate-data: ${base64(adminCert)}
      client-key-data: ${base64(adminKey)}
contexts:
  - name: mtls-egress-test
    context:
      cluster: mtls-egress-test
      user: mtls-egress-test-admin
current-context: mtls-egress-test
`;
}

async function writeKubeconfig(path: string, apiServerUrl: string, pki: ControlPlanePki): Promise<KubeConfig> {
  const [caCert, adminCert, adminKey] = await Promise.all([readFile(pki.caCert), readFile(pki.adminCert), readFile(pki.adminKey)]);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, renderKubeconfig(apiServerUrl, caCert, adminCert, adminKey), { mode: 0o600 });
  const kubeconfig = new KubeConfig();
  kubeconfig.loadFromFile(path);
  return kubeconfig;
}

async function createStateDir(requested: string | undefined): Promise<{ stateDir: string; isTemporary: boolean }> {
  if (requested !== undefined) {
    const stateDir = resolve(requested);
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    return { stateDir, isTemporary: false };
  }
  // Best effort: a leftover from a killed run must not stop this run from starting.
  await reapOrphanedControlPlanes(tmpdir(), tempDirPrefix).catch(() => []);
  return { stateDir: await mkdtemp(join(tmpdir(), tempDirPrefix)), isTemporary: true };
}

/** A component as the supervisor sees it: how to run it, and how to tell it serves. */
interface SupervisedComponent {
  spec: ComponentSpec;
  isServing: () => Promise<boolean>;
}

/**
 * Starts, stops and waits for components, keeping the state file's pids current so the
 * control plane can be stopped from outside this process.
 */
function createSupervisor(stateDir: string, state: Omit<ControlPlaneState, 'components'>, timeoutMs: number) {
  const running = new Map<ComponentSpec, ComponentProcess>();
  const recordState = (): Promise<void> =>
    writeControlPlaneState(stateDir, {
      ...state,
      components: Object.fromEntries([...running].map(([spec, component]) => [spec.name, component.pid])),
    });
  const waitUntilServing = async ({ spec, isServing }: SupervisedComponent): Promise<void> => {
    const component = running.get(spec);
    if (component === undefined) throw new Error(`${spec.name} was never started`);
    await waitUntilComponentServes(component, spec, isServing, timeoutMs);
  };
  return {
    waitUntilServing,
    start: async (supervised: SupervisedComponent): Promise<void> => {
      const { spec } = supervised;
      running.set(spec, spawnComponent({ ...spec, killOnExit: state.ownerPid !== null }));
      await recordState();
      await waitUntilServing(supervised);
    },
    stop: async ({ spec }: SupervisedComponent): Promise<void> => {
      const component = running.get(spec);
      if (component !== undefined) await stopProcessGroup(component.pid, spec.stopGraceMs, component.exited);
    },
  };
}

interface ControlPlanePorts {
  etcd: EtcdPorts;
  apiServer: number;
}

async function findControlPlanePorts(): Promise<ControlPlanePorts> {
  const [client = 0, http = 0, peer = 0, apiServer = 0] = await freePorts(4);
  return { etcd: { client, http, peer }, apiServer };
}

/**
 * Starts etcd and kube-apiserver (real binaries, pinned in test/harness/go) on free
 * loopback ports, installs the CRDs, and resolves once both are ready: envtest for this repo.
 */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const timeoutMs = options.startTimeoutMs ?? 60_000;
  // Read first: a missing or broken CRD should fail before any process starts.
  const crds = await readCrdDocuments(resolve(options.crdDir ?? join(repoRoot, 'crds')));
  const binaries = options.binaries ?? (await findPinnedBinaries());
  const { stateDir, isTemporary } = await createStateDir(options.stateDir);
  const kubeConfigPath = resolve(options.kubeConfigPath ?? join(stateDir, 'kubeconfig'));
  await mkdir(join(stateDir, 'logs'), { recursive: true });
  const nodeIp = options.node?.nodeIp;
  const [pki, ports] = await Promise.all([
    createControlPlanePki(join(stateDir, 'pki'), { extraServingIps: nodeIp === undefined ? [] : [nodeIp, kubernetesServiceIp] }),
    findControlPlanePorts(),
  ]);
  const nodeArgs =
    nodeIp === undefined
      ? []
      : apiServerNodeArgs(nodeIp, pki, await issueCertificate(pki, 'apiserver-kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client'));

  const etcdUrl = `http://127.0.0.1:${ports.etcd.client}`;
  const apiServerUrl = `https://127.0.0.1:${ports.apiServer}`;
  const http = createAdminHttp(apiServerUrl, pki);
  const etcd: SupervisedComponent = {
    spec: etcdSpec(binaries.etcd, stateDir, ports.etcd),
    isServing: () => isEtcdHealthy(`http://127.0.0.1:${ports.etcd.http}/health`),
  };
  const apiServer: SupervisedComponent = {
    spec: apiServerSpec(binaries.kubeApiServer, stateDir, pki, ports.apiServer, etcdUrl, nodeArgs),
    isServing: () => isApiServerReady(http),
  };
  const ownerPid = options.outliveProcess === true ? null : process.pid;
  const cancelStateDirRemovalOnExit = isTemporary && ownerPid !== null ? removeDirectoryOnExit(stateDir) : () => undefined;
  const supervisor = createSupervisor(stateDir, { ownerPid, apiServerUrl, kubeConfigPath }, timeoutMs);
  // Every apiserver start rebuilds the CRDs' watch caches; ready means they are usable again.
  const waitUntilApiServerServes = async (): Promise<void> => {
    await supervisor.waitUntilServing(apiServer);
    await waitUntilCrdsServed(http, crds, timeoutMs);
  };

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      // The apiserver first, so it does not spend its shutdown retrying a vanished etcd.
      await supervisor.stop(apiServer);
      await supervisor.stop(etcd);
      await rm(kubeConfigPath, { force: true });
      if (isTemporary) await rm(stateDir, { recursive: true, force: true });
      cancelStateDirRemovalOnExit();
    })();
    return stopping;
  };

  try {
    await supervisor.start(etcd);
    await supervisor.start(apiServer);
    const kubeconfig = await writeKubeconfig(kubeConfigPath, apiServerUrl, pki);
    await installCrds(http, crds, timeoutMs);
    return {
      kubeconfig,
      kubeConfigPath,
      apiServerUrl,
      etcdUrl,
      stateDir,
      crds: crds.map((crd) => crd.name),
      logFiles: { kubeApiServer: apiServer.spec.logFile, etcd: etcd.spec.logFile },
      pki,
      stop,
      restartApiServer: async () => {
        await supervisor.stop(apiServer);
        await supervisor.start(apiServer);
        await waitUntilCrdsServed(http, crds, timeoutMs);
      },
      restartEtcd: async () => {
        await supervisor.stop(etcd);
        await supervisor.start(etcd);
        await waitUntilApiServerServes();
      },
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
