// A control plane for local use, outside any test run:
//
//   node test/harness/cluster-cli.ts up     start it in the background; prints `export KUBECONFIG=…`
//   node test/harness/cluster-cli.ts down   stop it and delete its data
//
// Everything lives under .cluster/ at the repo root (git-ignored): the kubeconfig at
// .cluster/kubeconfig, and data, certificates, logs and pids under .cluster/control-plane/.
// Tests run against it when MTLS_EGRESS_TEST_KUBECONFIG=.cluster/kubeconfig is set.
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { startControlPlane } from './control-plane.ts';
import {
  isRecordedControlPlaneRunning,
  readControlPlaneState,
  stopRecordedControlPlane,
} from './control-plane-state.ts';

const clusterDir = resolve(import.meta.dirname, '../../.cluster');
const stateDir = join(clusterDir, 'control-plane');
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

async function up(): Promise<void> {
  const state = await readControlPlaneState(stateDir);
  if (state !== undefined && isRecordedControlPlaneRunning(stateDir, state)) {
    say(`already running at ${state.apiServerUrl}`);
  } else {
    // A half-dead control plane (etcd alive, apiserver crashed, or a machine reboot) is
    // not worth repairing: start from nothing.
    await stopLeftovers();
    const startedAt = performance.now();
    const controlPlane = await startControlPlane({ stateDir, kubeConfigPath, outliveProcess: true });
    const seconds = ((performance.now() - startedAt) / 1000).toFixed(1);
    say(`up in ${seconds}s at ${controlPlane.apiServerUrl}; CRDs: ${controlPlane.crds.join(', ') || 'none'}`);
    say(`logs: ${controlPlane.logFiles.kubeApiServer}, ${controlPlane.logFiles.etcd}`);
  }
  process.stdout.write(`export KUBECONFIG=${kubeConfigPath}\n`);
}

async function down(): Promise<void> {
  const state = await readControlPlaneState(stateDir);
  await stopLeftovers();
  say(state === undefined ? 'nothing was running' : 'stopped');
}

const commands: Record<string, () => Promise<void>> = { up, down };
const command = commands[process.argv[2] ?? ''];
if (command === undefined) {
  process.stderr.write('usage: node test/harness/cluster-cli.ts up|down\n');
  process.exitCode = 2;
} else {
  try {
    await command();
  } catch (error) {
    say(error instanceof Error ? error.message : String(error));
    process.exitCode = 1;
  }
}
