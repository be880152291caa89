// What the single-node cluster costs (test/harness/node-cluster.ts), in one run:
//   1. first-run build times of the node's binaries and images, as the build scripts
//      recorded them in $MTLS_EGRESS_CACHE/build-times.tsv when they last built each;
//   2. a cached `cluster:up -- --node` (the CLI, as a user runs it) to node Ready, and
//      `cluster:down`, over a few rounds, plus a pod of the project image from created to Ready;
//   3. the image sizes.
// Prints the figures and one JSON line. Needs the machine's one node-cluster slot: it
// fails at once if a node cluster is running. Bounded: a fixed number of rounds.
//
//   node test/bench/cluster.bench.ts                       (npm run bench:cluster)
//   BENCH_ROUNDS=5 node test/bench/cluster.bench.ts
//   node test/bench/cluster.bench.ts --cold                first measures a cold build: every binary and
//                                                          image into an empty cache, with an empty Go build
//                                                          cache (modules stay downloaded); 15+ minutes
import { execFile, spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { readNodeRecord } from '../harness/node-cluster-state.ts';
import { findImages, readNodeClusterConnection } from '../harness/node-cluster.ts';

const execFileAsync = promisify(execFile);
const repoRoot = resolve(import.meta.dirname, '../..');
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const cold = process.argv.includes('--cold');

interface BuildTime {
  name: string;
  version: string;
  /** The first build of this version: what a first run pays. */
  seconds: number;
  /** The latest rebuild of it (the project image rebuilds on every source change, with buildah's layer cache). */
  latestSeconds: number;
}

async function readBuildTimes(cacheDir: string): Promise<Map<string, BuildTime>> {
  const text = await readFile(join(cacheDir, 'build-times.tsv'), 'utf8').catch(() => '');
  const times = new Map<string, BuildTime>();
  for (const line of text.split('\n').filter(Boolean)) {
    const [name = '', version = '', secondsText = '0'] = line.split('\t');
    const seconds = Number(secondsText);
    const known = times.get(name);
    times.set(name, known?.version === version ? { ...known, latestSeconds: seconds } : { name, version, seconds, latestSeconds: seconds });
  }
  return times;
}

function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number | null; stdout: string; stderr: string; seconds: number }> {
  const started = performance.now();
  return new Promise((resolveRun) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('exit', (code) => resolveRun({ code, stdout, stderr, seconds: (performance.now() - started) / 1000 }));
  });
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? Number.NaN;
};
const mib = (bytes: number): number => Math.round((bytes / 1024 / 1024) * 10) / 10;

/** A cold build into a fresh cache and Go build cache; the build scripts record each step's time there. */
async function coldBuild(): Promise<{ totalSeconds: number; steps: Map<string, BuildTime> }> {
  const cacheDir = await mkdtemp(join(tmpdir(), 'mtls-egress-cold-cache-'));
  const goCache = await mkdtemp(join(tmpdir(), 'mtls-egress-cold-gocache-'));
  const env = { ...process.env, MTLS_EGRESS_CACHE: cacheDir, GOCACHE: goCache };
  try {
    console.log(`cold build into ${cacheDir} (GOCACHE ${goCache}); this takes a while`);
    const started = performance.now();
    for (const [script, args] of [
      ['test/harness/build-binaries.sh', ['--node']],
      ['test/harness/build-images.sh', ['all']],
    ] as const) {
      const result = await run('bash', [join(repoRoot, script), ...args], env);
      if (result.code !== 0) throw new Error(`${script} failed:\n${result.stderr}`);
    }
    return { totalSeconds: (performance.now() - started) / 1000, steps: await readBuildTimes(cacheDir) };
  } finally {
    // buildah's overlay storage may hold mounts only while it runs; the directories go.
    await rm(cacheDir, { recursive: true, force: true });
    await rm(goCache, { recursive: true, force: true });
  }
}

async function measureUpDown(): Promise<{ upSeconds: number[]; readySeconds: number[]; downSeconds: number[]; podSeconds: number[] }> {
  const clusterDir = await mkdtemp(join(tmpdir(), 'mtls-egress-bench-cluster-'));
  const env = { ...process.env, MTLS_EGRESS_CLUSTER_DIR: clusterDir };
  const cli = join(repoRoot, 'test/harness/cluster-cli.ts');
  const figures = { upSeconds: [] as number[], readySeconds: [] as number[], downSeconds: [] as number[], podSeconds: [] as number[] };
  try {
    for (let round = 1; round <= rounds; round++) {
      const up = await run(process.execPath, [cli, 'up', '--node'], env);
      if (up.code !== 0) throw new Error(`cluster:up --node failed:\n${up.stderr}`);
      const ready = /node \S+ Ready in ([\d.]+)s/.exec(up.stderr)?.[1];
      figures.upSeconds.push(up.seconds);
      figures.readySeconds.push(Number(ready));
      figures.podSeconds.push(await podCreatedToReady(join(clusterDir, 'node/connection.json'), round));
      const down = await run(process.execPath, [cli, 'down'], env);
      if (down.code !== 0) throw new Error(`cluster:down failed:\n${down.stderr}`);
      figures.downSeconds.push(down.seconds);
      console.log(
        `round ${round}: up ${up.seconds.toFixed(1)}s (node Ready after ${ready}s of it), pod ${figures.podSeconds.at(-1)?.toFixed(1)}s, down ${down.seconds.toFixed(1)}s`,
      );
    }
    return figures;
  } finally {
    await run(process.execPath, [cli, 'down'], env);
    await rm(clusterDir, { recursive: true, force: true });
  }
}

/** A pod of the project image, from `kubectl run` to Ready, as `kubectl wait` sees it. */
async function podCreatedToReady(connectionFile: string, round: number): Promise<number> {
  const connection = await readNodeClusterConnection(connectionFile);
  const kubectl = (...args: string[]) => execFileAsync(connection.kubectl, ['--kubeconfig', connection.kubeConfigPath, ...args]);
  const name = `bench-${round}`;
  const started = performance.now();
  await kubectl(
    'run',
    name,
    '--image=mtls-egress:0.1.0',
    '--image-pull-policy=IfNotPresent',
    '--restart=Never',
    '--command',
    '--',
    'node',
    '-e',
    'setInterval(() => {}, 1 << 30)',
  );
  await kubectl('wait', '--for=condition=Ready', `pod/${name}`, '--timeout=120s');
  return (performance.now() - started) / 1000;
}

const record = await readNodeRecord();
if (record !== undefined) {
  console.error(`a node cluster is running (${record.stateDir}); stop it first (npm run cluster:down)`);
  process.exit(1);
}

const cacheDir = process.env.MTLS_EGRESS_CACHE ?? join(homedir(), '.cache/mtls-egress');
const coldResult = cold ? await coldBuild() : undefined;
const buildTimes = coldResult?.steps ?? (await readBuildTimes(cacheDir));
const images = await findImages();
const project = images.get('project');
const upDown = await measureUpDown();

const binarySteps = [
  'kube-apiserver',
  'etcd',
  'kubelet+kube-proxy+kube-controller-manager+kube-scheduler+kubectl',
  'kube-apiserver+kubelet+kube-proxy+kube-controller-manager+kube-scheduler+kubectl',
  'containerd',
  'runc',
  'cni-plugins',
  'coredns',
  'kube-network-policies',
];
const imageSteps = ['base-image', 'pause-image', 'coredns-image', 'kube-network-policies-image', 'project-image'];
const sum = (names: string[]): number => names.reduce((total, name) => total + (buildTimes.get(name)?.seconds ?? 0), 0);

console.log('\nfirst-run build times' + (cold ? ' (measured cold now)' : ` (as recorded in ${join(cacheDir, 'build-times.tsv')})`));
for (const name of [...binarySteps, ...imageSteps]) {
  const entry = buildTimes.get(name);
  if (entry === undefined) continue;
  const rebuilt = entry.latestSeconds === entry.seconds ? '' : ` (latest rebuild ${entry.latestSeconds} s)`;
  console.log(`  ${name.padEnd(80)} ${entry.version.padEnd(20)} ${String(entry.seconds).padStart(5)} s${rebuilt}`);
}
console.log(`  binaries total ${sum(binarySteps)} s, images total ${sum(imageSteps)} s${coldResult ? `, wall ${coldResult.totalSeconds.toFixed(0)} s` : ''}`);
const projectBytes = project !== undefined && existsSync(project.archive) ? statSync(project.archive).size : Number.NaN;
const clusterImageBytes = ['pause', 'coredns', 'kube-network-policies']
  .map((name) => images.get(name))
  .reduce((total, image) => total + (image === undefined ? 0 : statSync(image.archive).size), 0);
console.log(
  `\ncached cluster:up -- --node, ${rounds} rounds: median ${median(upDown.upSeconds).toFixed(1)} s wall (node Ready and add-ons up after ${median(upDown.readySeconds).toFixed(1)} s of it; the rest is the bootstrap check)`,
);
console.log(`pod of the project image, created → Ready: median ${median(upDown.podSeconds).toFixed(1)} s`);
console.log(`cluster:down: median ${median(upDown.downSeconds).toFixed(1)} s`);
console.log(`image ${project?.reference ?? '(not built)'}: ${mib(projectBytes)} MiB uncompressed; the cluster's own images ${mib(clusterImageBytes)} MiB`);
console.log(
  JSON.stringify({
    bench: 'cluster',
    cold,
    buildSeconds: Object.fromEntries([...buildTimes.values()].map((entry) => [entry.name, entry.seconds])),
    binariesBuildSeconds: sum(binarySteps),
    imagesBuildSeconds: sum(imageSteps),
    clusterUpSecondsMedian: median(upDown.upSeconds),
    nodeReadySecondsMedian: median(upDown.readySeconds),
    podReadySecondsMedian: median(upDown.podSeconds),
    clusterDownSecondsMedian: median(upDown.downSeconds),
    projectImageMiB: mib(projectBytes),
    clusterImagesMiB: mib(clusterImageBytes),
  }),
);
