import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import {
  findImages,
  importImageIntoNode,
  readNodeClusterConnection,
  requireImage,
  startNodeCluster,
  type BuiltImage,
  type NodeCluster,
  type NodeClusterConnection,
} from './node-cluster.ts';
import { pollUntil } from './poll.ts';

/**
 * The path of a node cluster's connection file. global-setup.ts sets it for the test
 * files of a run that includes test/node/ (the cluster starts in the background while
 * other files run); point it at `.cluster/node/connection.json` to run node tests against
 * `npm run cluster:up -- --node`.
 */
export const sharedNodeClusterEnv = 'MTLS_EGRESS_TEST_NODE_CLUSTER';

/** What a test may do with a node cluster it shares: use it, not stop it. */
export interface NodeClusterHandle extends NodeClusterConnection {
  /** Admin (system:masters). */
  kubeconfig: KubeConfig;
  /** Imports a docker-archive into the node's containerd, under the name in the archive. */
  importImage(archive: string): Promise<void>;
  /** The project's image (`npm run image`): its reference, as deploy/ names it, is already on the node. */
  projectImage: BuiltImage;
}

/** What global-setup.ts writes when the shared cluster could not start, so every node test fails with the reason. */
interface StartFailure {
  error: string;
}

/** How long a test file waits for a node cluster that global setup is still starting. */
const sharedStartTimeoutMs = 10 * 60_000;

async function findProjectImage(): Promise<BuiltImage> {
  return requireImage(await findImages(), 'project', 'npm run image');
}

function handle(connection: NodeClusterConnection, projectImage: BuiltImage): NodeClusterHandle {
  const kubeconfig = new KubeConfig();
  kubeconfig.loadFromFile(connection.kubeConfigPath);
  return { ...connection, kubeconfig, projectImage, importImage: (archive) => importImageIntoNode(connection, archive) };
}

async function connectToSharedNodeCluster(path: string): Promise<NodeClusterHandle> {
  const content = await pollUntil(async () => (existsSync(path) ? readFile(path, 'utf8') : undefined), {
    what: `the run's node cluster (${path})`,
    timeoutMs: sharedStartTimeoutMs,
    intervalMs: 500,
  });
  const parsed = JSON.parse(content) as NodeClusterConnection | StartFailure;
  if ('error' in parsed) throw new Error(`the run's node cluster did not start: ${parsed.error}`);
  return handle(parsed, await findProjectImage());
}

/**
 * The run's shared node cluster when it has one, else a private one for this file,
 * stopped after its tests. Call it at the top of a test file:
 * `const cluster = await useNodeCluster();`. Tests sharing it work in namespaces of their own.
 */
export async function useNodeCluster(): Promise<NodeClusterHandle> {
  const shared = process.env[sharedNodeClusterEnv];
  if (shared) return connectToSharedNodeCluster(shared);
  const projectImage = await findProjectImage();
  const cluster = await startNodeCluster({ images: [projectImage.archive] });
  // Stopped once the file's own after() hooks have run (they uninstall from it, and hooks
  // run in the order they were registered, this one first): when nothing else is left to do.
  process.once('beforeExit', () => void cluster.stop());
  return handle(cluster, projectImage);
}

/** Where `npm run cluster:up -- --node` leaves its cluster's connection. */
export const cliNodeClusterConnection = resolve(import.meta.dirname, '../../.cluster/node/connection.json');

/**
 * For scripts (the in-cluster bench and demo): the cluster `npm run cluster:up -- --node`
 * runs, with the project's image imported into it, else one started here, which the
 * caller stops (`started`). `step` hears which of the two it is before the wait.
 */
export async function attachOrStartNodeCluster(
  options: { outliveProcess?: boolean; step?: (text: string) => void } = {},
): Promise<{ cluster: NodeClusterHandle; started?: NodeCluster }> {
  const projectImage = await findProjectImage();
  const connection = existsSync(cliNodeClusterConnection) ? await readNodeClusterConnection(cliNodeClusterConnection).catch(() => undefined) : undefined;
  if (connection) {
    options.step?.('Using the node cluster `npm run cluster:up -- --node` runs');
    await importImageIntoNode(connection, projectImage.archive);
    return { cluster: handle(connection, projectImage) };
  }
  options.step?.('Starting a single-node Kubernetes cluster: kubelet, containerd, CNI, kube-proxy, CoreDNS, NetworkPolicy');
  const started = await startNodeCluster({ images: [projectImage.archive], outliveProcess: options.outliveProcess });
  return { cluster: handle(started, projectImage), started };
}
