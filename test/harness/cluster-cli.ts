// A cluster for local use, outside any test run:
//
//   node test/harness/cluster-cli.ts up          an API-only control plane (kube-apiserver + etcd) in the background
//   node test/harness/cluster-cli.ts up --node   a single-node cluster: kubelet, containerd, CNI, kube-proxy,
//                                                CoreDNS, NetworkPolicy; returns when the node is Ready
//   node test/harness/cluster-cli.ts down        stop whichever runs and undo everything it did to the machine
//
// Both `up`s print `export KUBECONFIG=…` on stdout. Everything lives under .cluster/ at the
// repo root (git-ignored): the kubeconfig at .cluster/kubeconfig, the control plane's data,
// certificates, logs and pids under .cluster/control-plane/, and a node cluster's under
// .cluster/node/ (its connection.json is what MTLS_EGRESS_TEST_NODE_CLUSTER takes).
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { startControlPlane } from './control-plane.ts';
import { isRecordedControlPlaneRunning, readControlPlaneState, stopRecordedControlPlane } from './control-plane-state.ts';
import { isRecordedNodeClusterRunning, readNodeRecord, tearDownNodeCluster } from './node-cluster-state.ts';
import { findImages, startNodeCluster } from './node-cluster.ts';

const repoRoot = resolve(import.meta.dirname, '../..');
// MTLS_EGRESS_CLUSTER_DIR moves it, so the harness's own tests of up/down leave a developer's cluster alone.
const clusterDir = resolve(process.env.MTLS_EGRESS_CLUSTER_DIR ?? join(repoRoot, '.cluster'));
const stateDir = join(clusterDir, 'control-plane');
const nodeStateDir = join(clusterDir, 'node');
const kubeConfigPath = join(clusterDir, 'kubeconfig');

function say(message: string): void {
  // stdout carries only the export line, so `eval "$(node test/harness/cluster-cli.ts up)"` works.
  process.stderr.write(`cluster: ${message}\n`);
}

async function stopLeftovers(): Promise<void> {
  const state = await readControlPlaneState(stateDir);
  if (state !== undefined) await stopRecordedControlPlane(stateDir, state);
  await rm(stateDir, { recursive: true, force: true });
  await rm(kubeConfigPath, { force: true });
}

/** Our node cluster (from `up --node`), when the machine's record names it. */
async function readOwnNodeRecord() {
  const record = await readNodeRecord();
  return record?.stateDir === nodeStateDir ? record : undefined;
}

async function upApiOnly(): Promise<void> {
  const node = await readOwnNodeRecord();
  if (node !== undefined && isRecordedNodeClusterRunning(node)) {
    say(`a node cluster is running (its API server serves plain clients too); \`down\` first for an API-only one`);
    return;
  }
  const state = await readControlPlaneState(stateDir);
  if (state !== undefined && isRecordedControlPlaneRunning(stateDir, state)) {
    say(`already running at ${state.apiServerUrl}`);
    return;
  }
  // A half-dead control plane (etcd alive, apiserver crashed, or a machine reboot) is
  // not worth repairing: start from nothing.
  await stopLeftovers();
  const startedAt = performance.now();
  const controlPlane = await startControlPlane({ stateDir, kubeConfigPath, outliveProcess: true });
  const seconds = ((performance.now() - startedAt) / 1000).toFixed(1);
  say(`up in ${seconds}s at ${controlPlane.apiServerUrl}; CRDs: ${controlPlane.crds.join(', ') || 'none'}`);
  say(`logs: ${controlPlane.logFiles.kubeApiServer}, ${controlPlane.logFiles.etcd}`);
}

/** Runs `test/bootstrap.sh --node` with its progress on our stderr (a first build takes minutes). */
function bootstrapNode(): Promise<void> {
  return new Promise((resolveBootstrap, reject) => {
    const child = spawn('bash', [join(repoRoot, 'test/bootstrap.sh'), '--node'], { stdio: ['ignore', 2, 2] });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolveBootstrap() : reject(new Error(`test/bootstrap.sh --node exited with ${code}`))));
  });
}

async function upNode(): Promise<void> {
  const running = await readOwnNodeRecord();
  if (running !== undefined && isRecordedNodeClusterRunning(running)) {
    say(`a node cluster is already running; its state is in ${nodeStateDir}`);
    return;
  }
  // The node needs more than `npm run cluster:up`'s bootstrap: Debian packages, the node's
  // binaries and images. All idempotent, and quick when cached.
  say('making sure the node binaries and images are built (bash test/bootstrap.sh --node)');
  await bootstrapNode();
  // One kubeconfig path: an API-only control plane gives way to the node cluster.
  await stopLeftovers();
  const project = (await findImages()).get('project');
  if (project === undefined) say('no current project image: `npm run image` builds one and imports it into the node');
  const startedAt = performance.now();
  const cluster = await startNodeCluster({
    stateDir: nodeStateDir,
    kubeConfigPath,
    outliveProcess: true,
    images: project === undefined ? [] : [project.archive],
    log: (message) => say(`${((performance.now() - startedAt) / 1000).toFixed(1)}s ${message}`),
  });
  const seconds = ((performance.now() - startedAt) / 1000).toFixed(1);
  say(`node ${cluster.nodeName} Ready in ${seconds}s at ${cluster.nodeIp}; API server ${cluster.apiServerUrl}`);
  if (project !== undefined) say(`image ${project.reference} is on the node: \`kubectl apply -k deploy/\` runs it without a pull`);
  say(`kubectl ${cluster.kubectl.split('-').at(-1)}: ${cluster.kubectl}`);
  say(`logs: ${cluster.logDir}`);
  say(`node tests against it: MTLS_EGRESS_TEST_NODE_CLUSTER=${join(nodeStateDir, 'connection.json')}`);
}

async function down(): Promise<void> {
  const state = await readControlPlaneState(stateDir);
  await stopLeftovers();
  if (state !== undefined) say('stopped the control plane');
  const node = await readNodeRecord();
  if (node === undefined) {
    if (state === undefined) say('nothing was running');
    return;
  }
  if (node.stateDir !== nodeStateDir && isRecordedNodeClusterRunning(node)) {
    say(`the node cluster in ${node.stateDir} belongs to a live test run (pid ${node.ownerPid}); it stops with that run`);
    return;
  }
  await tearDownNodeCluster(node);
  await rm(kubeConfigPath, { force: true });
  say(
    `stopped the node cluster and restored the machine (${node.host.missingPaths.length} host paths, ${Object.keys(node.host.sysctls).length} sysctls checked)`,
  );
}

const [command, ...flags] = process.argv.slice(2);
const commands: Record<string, () => Promise<void>> = {
  up: () => (flags.includes('--node') ? upNode() : upApiOnly()),
  down,
};
const run = commands[command ?? ''];
if (run === undefined || flags.some((flag) => flag !== '--node') || (command === 'down' && flags.length > 0)) {
  process.stderr.write('usage: node test/harness/cluster-cli.ts up [--node] | down\n');
  process.exitCode = 2;
} else {
  try {
    await run();
    if (command === 'up') process.stdout.write(`export KUBECONFIG=${kubeConfigPath}\n`);
  } catch (error) {
    say(error instanceof Error ? error.message : String(error));
    process.exitCode = 1;
  }
}
