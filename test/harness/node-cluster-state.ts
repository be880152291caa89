// The machine-wide record of the node cluster, and the teardown that reads it.
//
// A machine holds one node cluster at a time: its kubelet, kube-proxy, bridge, cgroups
// and nftables tables have fixed names and ports. The record at nodeRecordPath says which
// state directory owns them and what the machine looked like before (HostBaseline), so
// `cluster:down`, the next `up` after a SIGKILLed run, and stop() all take down the same
// things the same way.
import { existsSync } from 'node:fs';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readControlPlaneState, stopRecordedControlPlane } from './control-plane-state.ts';
import {
  deleteLink,
  deleteNodeNftTables,
  removeCgroupRoot,
  removeCreatedPaths,
  removeNodeIptablesChains,
  restoreSysctls,
  unmountUnder,
  type HostBaseline,
} from './host-state.ts';
import { nodeNetwork } from './node-config.ts';
import { pollUntil } from './poll.ts';
import { isComponentOf, isProcessAlive, stopProcessGroup } from './processes.ts';

/** On the root file system, not a tmpfs here: a record outlives a reboot, as the host paths it lists do. */
export const nodeRecordPath = process.env.MTLS_EGRESS_NODE_RECORD ?? '/run/mtls-egress-node.json';

export interface NodeClusterRecord {
  stateDir: string;
  /** The process whose exit takes the cluster with it; null for `cluster:up -- --node`. */
  ownerPid: number | null;
  /** The process that started it: a start whose starter died before `ready` is a leftover. */
  starterPid: number;
  /** Written once the node and its add-ons are ready. */
  ready: boolean;
  kubeConfigPath: string;
  nodeIp: string;
  uplink: string;
  /** Node component name → process-group leader pid. The control plane keeps its own record in stateDir/control-plane. */
  components: Record<string, number>;
  host: HostBaseline;
}

export async function readNodeRecord(): Promise<NodeClusterRecord | undefined> {
  try {
    return JSON.parse(await readFile(nodeRecordPath, 'utf8')) as NodeClusterRecord;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Claims the machine for a new node cluster; fails if another process claimed it first. */
export async function createNodeRecord(record: NodeClusterRecord): Promise<void> {
  await writeFile(nodeRecordPath, `${JSON.stringify(record, null, 2)}\n`, { flag: 'wx' }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EEXIST') throw new Error(`another node cluster claimed this machine just now (${nodeRecordPath})`, { cause: error });
    throw error;
  });
}

export async function updateNodeRecord(record: NodeClusterRecord): Promise<void> {
  // Rename into place, so a reader never sees half a file.
  await writeFile(`${nodeRecordPath}.tmp`, `${JSON.stringify(record, null, 2)}\n`);
  await rename(`${nodeRecordPath}.tmp`, nodeRecordPath);
}

/**
 * Whether the recorded cluster is alive and still wanted: its owner lives (or it has
 * none), it is ready or still being started by a live process, and its kubelet runs
 * (or it has not got that far).
 */
export function isRecordedNodeClusterRunning(record: NodeClusterRecord): boolean {
  const ownerAlive = record.ownerPid === null || isProcessAlive(record.ownerPid);
  const starting = !record.ready && isProcessAlive(record.starterPid);
  const kubelet = record.components.kubelet;
  const kubeletAlive = kubelet !== undefined && isProcessAlive(kubelet) && isComponentOf(kubelet, record.stateDir);
  return ownerAlive && (starting || (record.ready && kubeletAlive));
}

async function stopComponent(pid: number | undefined, stateDir: string, graceMs: number): Promise<void> {
  if (pid !== undefined && isProcessAlive(pid) && isComponentOf(pid, stateDir)) await stopProcessGroup(pid, graceMs);
}

/** containerd's runc shims re-parent themselves away from containerd; they are ours if their command line names our socket. */
async function killShims(stateDir: string): Promise<void> {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(join('/proc', entry, 'cmdline'), 'utf8').catch(() => '');
    if (!cmdline.includes('containerd-shim') || !cmdline.includes(stateDir)) continue;
    const pid = Number(entry);
    try {
      process.kill(pid, 'SIGKILL');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
    await pollUntil(() => (isProcessAlive(pid) ? undefined : true), { what: `shim ${pid} to exit`, timeoutMs: 10_000, intervalMs: 20 });
  }
}

/**
 * Takes down everything the recorded cluster made, in the order that lets nothing come
 * back: the kubelet (which would restart pods), the other node components, every
 * container (the pods' cgroups), containerd and its shims, the control plane; then
 * mounts, the bridge, nftables tables, sysctls, cgroups, created host paths, the state
 * directory and the record. Safe on a half-started or half-stopped cluster, and on one
 * whose owner was SIGKILLed.
 */
export async function tearDownNodeCluster(record: NodeClusterRecord): Promise<void> {
  const { stateDir, components } = record;
  await stopComponent(components.kubelet, stateDir, 10_000);
  await Promise.all(['kube-proxy', 'kube-scheduler', 'kube-controller-manager'].map((name) => stopComponent(components[name], stateDir, 5_000)));
  await removeCgroupRoot();
  await stopComponent(components.containerd, stateDir, 5_000);
  await killShims(stateDir);
  const controlPlaneDir = join(stateDir, 'control-plane');
  const controlPlane = await readControlPlaneState(controlPlaneDir).catch(() => undefined);
  if (controlPlane !== undefined) await stopRecordedControlPlane(controlPlaneDir, controlPlane);
  await unmountUnder([stateDir, ...record.host.missingPaths]);
  await deleteLink(nodeNetwork.bridge);
  await deleteNodeNftTables(record.host);
  await removeNodeIptablesChains(record.host);
  await restoreSysctls(record.host);
  await removeCreatedPaths(record.host);
  await rm(stateDir, { recursive: true, force: true });
  if (existsSync(nodeRecordPath)) await rm(nodeRecordPath, { force: true });
}

/**
 * Before a new cluster claims the machine: tears down a recorded one whose owner died
 * (SIGKILL, OOM, a crashed CI step) or whose processes are gone, and fails if a live one
 * is still there.
 */
export async function reapStaleNodeCluster(): Promise<NodeClusterRecord | undefined> {
  const record = await readNodeRecord();
  if (record === undefined) return undefined;
  if (isRecordedNodeClusterRunning(record)) {
    const owner = record.ownerPid === null ? '`npm run cluster:up -- --node`' : `process ${record.ownerPid}`;
    throw new Error(
      `a node cluster started by ${owner} is running (state in ${record.stateDir}); ` +
        'this machine holds one at a time: stop it with `npm run cluster:down`, or point tests at it with MTLS_EGRESS_TEST_NODE_CLUSTER',
    );
  }
  await tearDownNodeCluster(record);
  return record;
}
