// `npm run cluster:up -- --node` and `npm run cluster:down`, run as a user runs them (the
// CLI, in a cluster directory of this test's own). A machine holds one node cluster at a
// time, so this file runs in a `node --test` of its own, after the run that shares one
// (package.json's test script); it fails at once if a node cluster is already running.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { captureSnapshot, describeHostChanges, type HostSnapshot } from '../harness/host-state.ts';
import { readNodeRecord, type NodeClusterRecord } from '../harness/node-cluster-state.ts';
import { readNodeClusterConnection } from '../harness/node-cluster.ts';
import { pollUntil } from '../harness/poll.ts';

const repoRoot = resolve(import.meta.dirname, '../..');
const clusterDir = await mkdtemp(join(tmpdir(), 'mtls-egress-cluster-cli-'));
let machineBefore: HostSnapshot;
let recorded: NodeClusterRecord | undefined;

interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function startCli(args: string[]): { exited: Promise<CliRun>; kill: () => void } {
  const child = spawn(process.execPath, [join(repoRoot, 'test/harness/cluster-cli.ts'), ...args], {
    env: { ...process.env, MTLS_EGRESS_CLUSTER_DIR: clusterDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<CliRun>((resolveRun) => child.once('exit', (code, signal) => resolveRun({ code, signal, stdout, stderr })));
  return { exited, kill: () => child.kill('SIGKILL') };
}

/** Live (not zombie) processes whose command line names `dir`: what `down` must leave none of. */
async function processesMentioning(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry))) {
    const [cmdline, stat] = await Promise.all([
      readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => ''),
      readFile(`/proc/${pid}/stat`, 'utf8').catch(() => ''),
    ]);
    const zombie = stat.charAt(stat.lastIndexOf(')') + 2) === 'Z';
    if (!zombie && cmdline.includes(dir)) found.push(`${pid} ${cmdline.replaceAll('\0', ' ').slice(0, 120)}`);
  }
  return found;
}

before(async () => {
  const running = await readNodeRecord();
  assert.equal(running, undefined, `a node cluster is already running (${running?.stateDir}); this test needs the machine's one node-cluster slot`);
  machineBefore = await captureSnapshot([clusterDir]);
});

after(() => rm(clusterDir, { recursive: true, force: true }));

test('an `up --node` killed mid-start is cleaned up by the next `up --node`, which brings the node up', async () => {
  const killed = startCli(['up', '--node']);
  // SIGKILL once the kubelet is running: processes, mounts, cgroups and nftables tables exist.
  await pollUntil(async () => ((await readNodeRecord())?.components.kubelet === undefined ? undefined : true), {
    what: 'the first up to start the kubelet',
    timeoutMs: 10 * 60_000,
    intervalMs: 100,
  }).catch(async (error: unknown) => {
    killed.kill();
    throw new Error(`${String(error)}\n${(await killed.exited).stderr}`);
  });
  killed.kill();
  assert.equal((await killed.exited).signal, 'SIGKILL');
  assert.equal((await readNodeRecord())?.ready, false, 'the killed start left its record behind');

  const second = await startCli(['up', '--node']).exited;
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /removed the leftovers of a node cluster whose owner died/);
  assert.equal(second.stdout, `export KUBECONFIG=${join(clusterDir, 'kubeconfig')}\n`);
  recorded = await readNodeRecord();
  assert.equal(recorded?.ready, true);
  const connection = await readNodeClusterConnection(join(clusterDir, 'node/connection.json'));
  const node = await startKubectl(connection.kubectl, ['get', 'node', connection.nodeName, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']);
  assert.equal(node, 'True');
});

test('`down` removes every process, mount, interface, nftables table, sysctl change and host path that `up` made', async () => {
  assert.ok(recorded !== undefined, 'the previous test brought a node cluster up');
  const down = await startCli(['down']).exited;
  assert.equal(down.code, 0, down.stderr);
  assert.equal(await readNodeRecord(), undefined, 'the machine record is gone');
  assert.deepEqual(await processesMentioning(clusterDir), []);
  // What the record said the machine looked like before `up`…
  for (const path of recorded.host.missingPaths) assert.equal(existsSync(path), false, `${path} was created by up and must be gone`);
  const machineAfter = await captureSnapshot([clusterDir]);
  for (const [name, value] of Object.entries(recorded.host.sysctls)) assert.equal(machineAfter.sysctls[name], value, `sysctl ${name}`);
  // …and everything this test saw before the first `up`.
  assert.deepEqual(describeHostChanges(machineBefore, machineAfter), []);
  assert.equal(existsSync(join(clusterDir, 'node')), false);
  assert.equal(existsSync(join(clusterDir, 'kubeconfig')), false);
});

function startKubectl(kubectl: string, args: string[]): Promise<string> {
  return new Promise((resolveOutput, reject) => {
    const child = spawn(kubectl, ['--kubeconfig', join(clusterDir, 'kubeconfig'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('exit', (code) => (code === 0 ? resolveOutput(stdout) : reject(new Error(`kubectl ${args.join(' ')}: ${stderr}`))));
  });
}
