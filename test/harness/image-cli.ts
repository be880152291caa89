// `npm run image`: builds the project's Dockerfile with buildah (test/harness/build-images.sh,
// on a node:24-trixie-slim built from Debian packages) and, when a node cluster runs on
// this machine, imports the image into its containerd under the name deploy/ uses, so
// `kubectl apply -k deploy/` runs it with imagePullPolicy IfNotPresent and no registry.
//
//   node test/harness/image-cli.ts        prints the image reference and its archive on stdout
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isRecordedNodeClusterRunning, readNodeRecord } from './node-cluster-state.ts';
import { findImages, importImageIntoNode, readNodeClusterConnection, requireImage } from './node-cluster.ts';

const repoRoot = resolve(import.meta.dirname, '../..');

function say(message: string): void {
  process.stderr.write(`image: ${message}\n`);
}

function buildProjectImage(): Promise<void> {
  return new Promise((resolveBuild, reject) => {
    const child = spawn('bash', [join(repoRoot, 'test/harness/build-images.sh'), 'project'], { stdio: ['ignore', 2, 2] });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolveBuild() : reject(new Error(`build-images.sh project exited with ${code}`))));
  });
}

try {
  await buildProjectImage();
  const image = requireImage(await findImages(), 'project', 'bash test/harness/build-images.sh project');
  const record = await readNodeRecord();
  const connectionFile = record === undefined ? undefined : join(record.stateDir, 'connection.json');
  if (record !== undefined && isRecordedNodeClusterRunning(record) && connectionFile !== undefined && existsSync(connectionFile)) {
    await importImageIntoNode(await readNodeClusterConnection(connectionFile), image.archive);
    say(`imported into the node cluster in ${record.stateDir}`);
  } else {
    say('no node cluster is running; `npm run cluster:up -- --node` imports the image when it starts');
  }
  process.stdout.write(`${image.reference} ${image.archive}\n`);
} catch (error) {
  say(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
}
