// Load on a binding from inside the cluster while the proxy Deployment is rolled, drained,
// evicted or killed, for test/node/rollout.test.ts and `npm run bench:rollout`. The client
// runs in an application Pod (kubectl exec, the project's image, plain Node) and behaves
// as a real one does: keep-alive connections, each new connection resolving the headless
// Service's name again through the cluster's DNS, and no retries: a request that fails
// counts. It is stricter than Node's default in one way: it connects to one address of the
// answer, picked at random, and does not fall over to the next when that one refuses (as
// a client that caches one address does), so a replica that closed its listeners while
// DNS still named it is a failure here.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { KubeApiError } from '../../src/k8s/client.ts';
import type { NodeClusterHandle } from '../harness/use-node-cluster.ts';
import { pollUntil } from '../harness/poll.ts';
import type { NodeWorkloads } from '../node/workloads.ts';
import type { TestKube } from './kube.ts';
import { InClusterStory, systemNamespace } from './in-cluster-story.ts';

/** What the load has seen so far; every count is since the load started. */
export interface LoadCounts {
  label: string;
  ok: number;
  failed: number;
  /** A failure by kind: an HTTP status, or the socket error's code. */
  errors: Record<string, number>;
  /** Connections the client opened (each after a DNS lookup). */
  connections: number;
  /** Responses that said "Connection: close": the proxy asked the client to move on. */
  closedByProxy: number;
  /** Requests on their way at the moment of the snapshot, by proxy pod address. */
  inflight: Record<string, number>;
  /** Answered requests by proxy pod address. */
  okByAddress: Record<string, number>;
  /** Failed requests by proxy pod address ("?" when no address was reached). */
  failedByAddress: Record<string, number>;
  /** Connections open now, by proxy pod address. */
  open: Record<string, number>;
}

// Reads stdin lines: "snap LABEL" prints a LoadCounts line; the end of stdin stops the
// clients after their requests in flight and prints the last line, labelled "final".
const loadScript = `const http = require('node:http');
const dns = require('node:dns');
const readline = require('node:readline');
const url = new URL(process.argv[1]);
const clients = Number(process.argv[2]);
const pauseMs = Number(process.argv[3]);
const lookup = (host, options, callback) => dns.lookup(host, { all: true, family: 4 }, (error, addresses) => {
  if (error) return callback(error);
  const a = addresses[Math.floor(Math.random() * addresses.length)];
  callback(null, a.address, a.family);
});
const agent = new http.Agent({ keepAlive: true, maxSockets: clients, lookup, autoSelectFamily: false });
const c = { ok: 0, failed: 0, errors: {}, connections: 0, closedByProxy: 0, inflight: {}, okByAddress: {}, failedByAddress: {}, open: {} };
const bump = (o, k) => { o[k] = (o[k] || 0) + 1; };
let stopping = false;
function one() {
  return new Promise((resolve) => {
    let address = '?';
    let done = false;
    const finish = (error) => {
      if (done) return;
      done = true;
      c.inflight[address] = (c.inflight[address] || 1) - 1;
      if (error) { c.failed++; bump(c.errors, error); bump(c.failedByAddress, address); } else { c.ok++; bump(c.okByAddress, address); }
      resolve();
    };
    const req = http.request({ host: url.hostname, port: url.port, path: '/', agent, timeout: 15000 }, (res) => {
      if (res.headers.connection === 'close') c.closedByProxy++;
      res.resume();
      res.on('end', () => finish(res.statusCode === 200 ? undefined : 'HTTP ' + res.statusCode));
      res.on('error', (e) => finish(e.code || e.message));
    });
    req.on('socket', (socket) => {
      const seen = () => { address = socket.remoteAddress || address; bump(c.inflight, address); };
      if (socket.remoteAddress) return seen();
      c.connections++;
      socket.once('connect', () => {
        seen();
        const at = socket.remoteAddress;
        bump(c.open, at);
        socket.once('close', () => { c.open[at]--; });
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (e) => { if (e.address) address = e.address; finish(e.code || e.message); });
    req.end();
  });
}
async function client() {
  while (!stopping) {
    await one();
    if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
  }
}
const running = Promise.all(Array.from({ length: clients }, client));
const print = (label) => {
  for (const o of [c.inflight, c.open]) for (const k of Object.keys(o)) if (o[k] === 0) delete o[k];
  process.stdout.write(JSON.stringify({ label, ...c }) + '\\n');
};
readline.createInterface({ input: process.stdin }).on('line', (line) => { if (line.startsWith('snap ')) print(line.slice(5)); })
  .on('close', () => { stopping = true; running.then(() => { print('final'); agent.destroy(); }); });`;

export class RolloutLoad {
  readonly #child: ChildProcess;
  readonly #waiting: Array<(counts: LoadCounts) => void> = [];
  readonly #stderr: string[] = [];
  readonly #exited: Promise<number | null>;

  constructor(cluster: NodeClusterHandle, namespace: string, pod: string, url: string, options: { clients: number; pauseMs: number }) {
    this.#child = spawn(
      cluster.kubectl,
      [
        '--kubeconfig',
        cluster.kubeConfigPath,
        'exec',
        '-i',
        '--namespace',
        namespace,
        pod,
        '--',
        'node',
        '-e',
        loadScript,
        url,
        String(options.clients),
        String(options.pauseMs),
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    createInterface({ input: this.#child.stdout! }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      this.#waiting.shift()?.(JSON.parse(line) as LoadCounts);
    });
    this.#child.stderr!.on('data', (chunk: Buffer) => this.#stderr.push(chunk.toString()));
    this.#exited = new Promise((resolve) => this.#child.once('exit', resolve));
  }

  /** The counts now. */
  snapshot(label: string): Promise<LoadCounts> {
    return this.#ask(() => this.#child.stdin!.write(`snap ${label}\n`));
  }

  /** Stops the clients after their requests in flight; the final counts. */
  async stop(): Promise<LoadCounts> {
    const counts = await this.#ask(() => this.#child.stdin!.end());
    await this.#exited;
    return counts;
  }

  #ask(send: () => void): Promise<LoadCounts> {
    return new Promise((resolve, reject) => {
      this.#waiting.push(resolve);
      void this.#exited.then((code) => reject(new Error(`the load's kubectl exec exited ${code}: ${this.#stderr.join('').trim()}`)));
      send();
    });
  }
}

/** Failures between two snapshots, by kind. */
export function failuresBetween(before: LoadCounts, after: LoadCounts): { failed: number; ok: number; errors: Record<string, number> } {
  const errors: Record<string, number> = {};
  for (const [kind, n] of Object.entries(after.errors)) {
    const d = n - (before.errors[kind] ?? 0);
    if (d > 0) errors[kind] = d;
  }
  return { failed: after.failed - before.failed, ok: after.ok - before.ok, errors };
}

export interface ProxyPod {
  name: string;
  ip: string;
  uid: string;
  ready: boolean;
  terminating: boolean;
  containerId: string;
  restarts: number;
}

/** The proxy Deployment's pods, as the API has them now. */
export async function proxyPods(workloads: NodeWorkloads): Promise<ProxyPod[]> {
  const list = JSON.parse(
    await workloads.kubectlOk(['get', 'pods', '--namespace', systemNamespace, '-l', 'app.kubernetes.io/name=mtls-egress-proxy', '-o', 'json']),
  ) as {
    items: Array<{
      metadata: { name: string; uid: string; deletionTimestamp?: string };
      status: {
        podIP?: string;
        conditions?: Array<{ type: string; status: string }>;
        containerStatuses?: Array<{ containerID?: string; restartCount: number }>;
      };
    }>;
  };
  return list.items.map((p) => ({
    name: p.metadata.name,
    ip: p.status.podIP ?? '',
    uid: p.metadata.uid,
    ready: p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    terminating: p.metadata.deletionTimestamp !== undefined,
    containerId: (p.status.containerStatuses?.[0]?.containerID ?? '').replace(/^containerd:\/\//, ''),
    restarts: p.status.containerStatuses?.[0]?.restartCount ?? 0,
  }));
}

/** Until `replicas` proxy pods are Ready and none is terminating: every drain over. */
export function waitSettled(workloads: NodeWorkloads, replicas: number, timeoutMs = 300_000): Promise<ProxyPod[]> {
  return pollUntil(
    async () => {
      const pods = await proxyPods(workloads);
      return pods.length === replicas && pods.every((p) => p.ready && !p.terminating) ? pods : undefined;
    },
    { what: `${replicas} proxy pods Ready and none terminating`, timeoutMs, intervalMs: 500 },
  );
}

/** The policy/v1 Eviction subresource, as `kubectl drain` uses it: 201 evicted, 429 refused by the PodDisruptionBudget. */
export async function evict(kube: TestKube, pod: string): Promise<number> {
  try {
    await kube.client.create(`/api/v1/namespaces/${systemNamespace}/pods/${pod}/eviction`, {
      apiVersion: 'policy/v1',
      kind: 'Eviction',
      metadata: { name: pod, namespace: systemNamespace },
    });
    return 201;
  } catch (err) {
    if (err instanceof KubeApiError && err.status !== 0) return err.status;
    throw err;
  }
}

/** SIGKILL to the pod's container, through containerd, as the OOM killer or a crash ends it: no preStop, no SIGTERM, no drain. */
export async function killContainer(cluster: NodeClusterHandle, containerId: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn(cluster.ctr, ['--address', cluster.containerdSocket, '--namespace', 'k8s.io', 'tasks', 'kill', '--signal', 'SIGKILL', containerId], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const err: Buffer[] = [];
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ctr tasks kill exited ${code}: ${Buffer.concat(err).toString().trim()}`))));
  });
}

/** The stage: a partner, the product from deploy/ with `replicas` proxy pods, a binding, and an application Pod to load it from. */
export async function setUpRolloutStage(story: InClusterStory, options: { replicas: number }): Promise<{ namespace: string; endpoint: string }> {
  const partner = await story.startPartner();
  await story.install({ allowedDestinations: InClusterStory.partnerDestinations(partner) });
  await story.workloads.kubectlOk(['scale', '--namespace', systemNamespace, 'deployment/mtls-egress-proxy', `--replicas=${options.replicas}`]);
  await waitSettled(story.workloads, options.replicas);
  const namespace = await story.workloads.namespace('rollout');
  const client = partner.pki.issueClient({ cn: 'rollout.client' });
  await story.bind(namespace, 'partner-api', partner, client);
  const binding = await story.waitReady(namespace, 'partner-api', client.serial);
  const endpoint = binding.status!.endpoint!;
  await story.workloads.client(namespace, 'app');
  // Through every replica's NetworkPolicy and listener before the load starts.
  await story.waitForSerial(namespace, 'app', endpoint, client.serial);
  return { namespace, endpoint };
}

/** Until the load has had `count` more answers: it runs, whatever happens to the proxy pods. */
export async function waitForAnswers(load: RolloutLoad, from: LoadCounts, count: number): Promise<LoadCounts> {
  return pollUntil(
    async () => {
      const now = await load.snapshot('progress');
      return now.ok - from.ok >= count ? now : undefined;
    },
    { what: `${count} more answers to the load`, timeoutMs: 120_000, intervalMs: 250 },
  );
}
