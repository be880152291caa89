// Starts what a `node --test` run shares among its test files (each of which runs in a
// process of its own), and passes it on through environment variables:
//
//   node --test --test-global-setup=test/harness/global-setup.ts "test/integration/**/*.test.ts" "test/node/**/*.test.ts"
//
// - one API-only control plane, always; test files get it from useControlPlane();
// - one node cluster when the run includes test/node/ files. It starts in the background,
//   so it overlaps the files that run first; useNodeCluster() waits for it.
// The runner starts the test-file processes after globalSetup returns, so they inherit the variables.
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane, type ControlPlane } from './control-plane.ts';
import { findImages, requireImage, startNodeCluster, type NodeCluster } from './node-cluster.ts';
import { sharedKubeconfigEnv } from './use-control-plane.ts';
import { sharedNodeClusterEnv } from './use-node-cluster.ts';

let controlPlane: ControlPlane | undefined;
let nodeCluster: Promise<NodeCluster | undefined> | undefined;
let nodeRunDir: string | undefined;

/** Whether the runner was given a test/node/ file or glob. */
function runIncludesNodeTests(): boolean {
  return process.argv.slice(1).some((argument) => /(^|\/)test\/node(\/|$)/.test(argument));
}

/** Test files poll for this file: rename it into place, so none reads half of it. */
async function publish(connectionFile: string, content: string): Promise<void> {
  await writeFile(`${connectionFile}.tmp`, content);
  await rename(`${connectionFile}.tmp`, connectionFile);
}

async function startSharedNodeCluster(connectionFile: string): Promise<NodeCluster | undefined> {
  try {
    const projectImage = requireImage(await findImages(), 'project', 'npm run image');
    const cluster = await startNodeCluster({ images: [projectImage.archive] });
    await publish(connectionFile, await readFile(join(cluster.stateDir, 'connection.json'), 'utf8'));
    return cluster;
  } catch (error) {
    // Every node test file then fails with this reason instead of waiting for a cluster.
    await publish(connectionFile, JSON.stringify({ error: error instanceof Error ? error.message : String(error) }));
    return undefined;
  }
}

export async function globalSetup(): Promise<void> {
  // Respect what the developer already points at (`cluster-cli up`, `up --node`).
  if (!process.env[sharedKubeconfigEnv]) {
    controlPlane = await startControlPlane();
    process.env[sharedKubeconfigEnv] = controlPlane.kubeConfigPath;
  }
  if (runIncludesNodeTests() && !process.env[sharedNodeClusterEnv]) {
    nodeRunDir = await mkdtemp(join(tmpdir(), 'mtls-egress-node-run-'));
    const connectionFile = join(nodeRunDir, 'connection.json');
    process.env[sharedNodeClusterEnv] = connectionFile;
    nodeCluster = startSharedNodeCluster(connectionFile);
  }
}

export async function globalTeardown(): Promise<void> {
  await controlPlane?.stop();
  await (await nodeCluster)?.stop();
  if (nodeRunDir !== undefined) await rm(nodeRunDir, { recursive: true, force: true });
}
