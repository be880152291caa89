// npm run bench:scale
//
// 10,000 bindings in one cluster. For each data plane (HAProxy, then nginx), a fresh real
// kube-apiserver and etcd get every binding and its PFX Secret before the controller
// starts; then the built controller, the real agent running the real server, and a real
// mTLS partner on loopback (only the kubelet is played: the proxy Pod is marked Ready by
// hand). Measured:
//   1. cold start: controller start → every binding CertificateValid, and → every binding
//      CertificateValid and Programmed (goal < 60 s); counted from one watch, never by
//      listing 10,000 bindings over and over;
//   2. the controller's RSS (peak and end; goal < 400 MB), and the agent's;
//   3. the data plane's memory: RSS summed over the server's processes (and PSS, which
//      counts the pages they share once);
//   4. the largest object in the proxy namespace (goal < 256 KiB) among every kind the
//      controller writes there, as the API serves it (JSON), read through the API only;
//   5. API requests per second during the cold start, from the apiserver's own
//      apiserver_request_total, and the verbs and resources that make them;
//   6. one binding's PFX Secret rotated, until the partner sees the new certificate
//      (p50/p99 over BENCH_ROTATIONS; goal p99 < 1 s);
//   7. the proxy objects the controller writes per such change, from its own
//      mtls_egress_proxy_object_writes_total (goal: that binding's objects only);
//   8. a new proxy replica (the built dist/cli.js, as the image runs it, unless
//      BENCH_CLI=src): the first agent stops, and a second one starts on a fresh
//      config directory against every binding already in the API; timed from its spawn
//      until its Pod reports the controller's config hash (HAProxy or nginx serving every
//      binding; goal < 30 s), with its peak RSS (goal < 300 MB) and its server's.
// The certificates are distinct (test/support/bulk-pfx.ts), kept in
// ~/.cache/mtls-egress/bench-scale/ for the next run.
//
//   npm run bench:scale
//   BENCH_BINDINGS=200 BENCH_PLANES=haproxy npm run bench:scale
//   BENCH_SECRETS=100 BENCH_NAMESPACES=10 BENCH_PLANES=none npm run bench:scale
//
// BENCH_PLANES=none is the shape of an external check: the controller run as exactly
// `mtls-egress controller --kubeconfig F --listener-ports 10000-29999` (all namespaces,
// nginx by default, no agent), so it reports the time to every binding CertificateValid,
// the largest object in the controller's namespace and the controller's peak RSS; its
// rotations are timed to the binding's status, as there is no partner.
//
// Knobs: BENCH_BINDINGS (10000); BENCH_SECRETS (default = bindings, every certificate
// distinct; fewer Secrets are shared by the bindings of their namespace); BENCH_NAMESPACES
// (10); BENCH_PLANES (haproxy,nginx, or none); BENCH_ROTATIONS (20; 0 skips them);
// BENCH_REPLICA (1; 0 skips the new replica; "only": no agent during the cold start, so
// the replica starts once every binding is CertificateValid and the controller has
// written every proxy object, with no rotations); BENCH_TIMEOUT_S (600:
// how long each data plane's run may take, setup included: one that runs out says how far
// it got); BENCH_CONCURRENCY (12 API writes in flight during setup); BENCH_NODE_OPTIONS (the
// controller's: deploy/'s by default, none for the external shape); BENCH_CLI=src (run
// src/cli.ts rather than the built dist/cli.js); BENCH_LOG_DIR (write the controller's and
// the agent's logs there, PLANE-controller.log and PLANE-agent.log, and when each rotation's
// Secret was patched, PLANE-rotations.log).
//
// Prints a table per data plane, then one JSON line:
//   {"bench":"scale","bindings":N,"secrets":N,"namespaces":N,...,"dataPlanes":{"haproxy":{...},"nginx":{...}}}

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import * as types from '../../src/api/v1alpha1/types.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { decodePfx } from '../../src/pki/pfx.ts';
import { annotationAppliedHash, annotationContentHash, parseManifest, proxyConfigMapName } from '../../src/contract/proxy-objects.ts';
import { createAdminHttp } from '../harness/admin-http.ts';
import { apiRequests, samples } from '../support/prometheus-samples.ts';
import { deployedEnvironment, mallocSettings } from '../support/deployed-environment.ts';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.ts';
import { pollUntil, StopPolling } from '../harness/poll.ts';
import { createAgentPod, podAnnotations, startAgent, type AgentProcess } from '../support/agent-process.ts';
import { cachedPfxSet, type BulkPfxSet } from '../support/bulk-pfx.ts';
import { httpGet, safeJson, startController, startControllerProcess, type ControllerProcess } from '../support/controller-process.ts';
import { TestKube, type Binding } from '../support/kube.ts';
import { startMtlsPartner, type MtlsPartner, type PartnerSeen } from '../support/mtls-partner.ts';
import { callProxy } from '../support/nginx-process.ts';
import { PartnerPki } from '../support/partner-pki.ts';
import { cpuSeconds, pssMb, rssMb } from '../support/process-usage.ts';
import { freePort } from '../harness/ports.ts';
import { temporaryDirectory } from '../harness/temporary-directories.ts';
import { removeDirectoryOnExit } from '../harness/processes.ts';

type Plane = 'haproxy' | 'nginx' | 'none';

const repo = resolve(import.meta.dirname, '../..');
const count = Number(process.env.BENCH_BINDINGS ?? 10_000);
const secretCount = Number(process.env.BENCH_SECRETS ?? count);
const namespaceCount = Math.min(Number(process.env.BENCH_NAMESPACES ?? 10), secretCount);
const planes = (process.env.BENCH_PLANES ?? 'haproxy,nginx').split(',') as Plane[];
const rotations = Number(process.env.BENCH_ROTATIONS ?? 20);
const replica = process.env.BENCH_REPLICA !== '0';
const replicaOnly = process.env.BENCH_REPLICA === 'only';
const timeoutS = Number(process.env.BENCH_TIMEOUT_S ?? 600);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 12);
const logDir = process.env.BENCH_LOG_DIR;
const password = 'scale-bench-password';
/** The external check's listener range; the data planes get one just wide enough (HAProxy binds all of it). */
const externalListenerPorts = '10000-29999';
const proxyNamespace = 'mtls-egress-system';
const proxyPod = 'mtls-egress-proxy-0';
/** The replica started once everything is in the API. */
const replicaPod = 'mtls-egress-proxy-1';
/** The kinds the controller writes in its namespace, and their API groups. */
const proxyKinds: ReadonlyArray<[string, string]> = [
  ['configmaps', '/api/v1'],
  ['secrets', '/api/v1'],
  ['networkpolicies', '/apis/networking.k8s.io/v1'],
  ['leases', '/apis/coordination.k8s.io/v1'],
];
const goals = { coldStartS: 60, controllerRssMb: 400, largestObjectBytes: 256 * 1024, rotationP99Ms: 1000, replicaServedS: 30, replicaRssMb: 300 };

for (const [name, value] of Object.entries({
  BENCH_BINDINGS: count,
  BENCH_SECRETS: secretCount,
  BENCH_NAMESPACES: namespaceCount,
  BENCH_TIMEOUT_S: timeoutS,
})) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a whole number ≥ 1`);
}
if (!Number.isInteger(rotations) || rotations < 0) throw new Error('BENCH_ROTATIONS must be a whole number ≥ 0');
if (planes.some((p) => !['haproxy', 'nginx', 'none'].includes(p)) || (planes.includes('none') && planes.length > 1)) {
  throw new Error(`BENCH_PLANES is haproxy, nginx, both (haproxy,nginx), or none; not ${planes.join(',')}`);
}

// ---- what a binding uses ----------------------------------------------------------------

/** Secret j lives in namespace j % K; binding i in namespace i % K, using that namespace's Secrets in turn. */
function secretOf(i: number): number {
  const k = i % namespaceCount;
  const inNamespace = Math.floor((secretCount - 1 - k) / namespaceCount) + 1;
  return k + namespaceCount * (Math.floor(i / namespaceCount) % inNamespace);
}
const namespaceName = (k: number): string => `team-${k}`;
const bindingKey = (i: number): string => `${namespaceName(i % namespaceCount)}/b-${i}`;

// ---- processes: memory and CPU from /proc --------------------------------------------------

/** Live processes: pid, process group, command line. */
function processes(): Array<{ pid: number; group: number; cmdline: string }> {
  const found = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const group = Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]!.split(' ')[2]);
      found.push({ pid: Number(entry), group, cmdline: readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ') });
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

const serverGroups = new WeakMap<AgentProcess, { scanned: number; pid: unknown }>();

/**
 * The nginx or HAProxy the agent runs: every process of the group it last reported
 * starting. The agent's log is read on from where the last call stopped: parsing all of
 * it four times a second kept this process's event loop busy enough at 10,000 bindings
 * (a debug log of tens of thousands of lines) to add seconds to every rotation it timed.
 */
function dataPlanePids(agent: AgentProcess | undefined): number[] {
  if (!agent) return [];
  const seen = serverGroups.get(agent) ?? { scanned: 0, pid: undefined };
  for (; seen.scanned < agent.logs.length; seen.scanned++) {
    const line = agent.logs[seen.scanned]!;
    if (line.includes('"msg":"nginx started"') || line.includes('"msg":"haproxy started"')) seen.pid = safeJson(line)?.pid;
  }
  serverGroups.set(agent, seen);
  const started = seen.pid;
  return typeof started === 'number'
    ? processes()
        .filter((p) => p.group === started)
        .map((p) => p.pid)
    : [];
}

interface Peak {
  peak: number;
  last: number;
}

/** RSS every 250 ms, keeping each target's peak: the controller, the agent, the data plane's processes summed. */
function sampleMemory(targets: { controller: () => number | undefined; agent: () => AgentProcess | undefined }, everyMs = 250) {
  const figures = { controller: { peak: 0, last: 0 }, agent: { peak: 0, last: 0 }, dataPlane: { peak: 0, last: 0 } };
  const note = (peak: Peak, value: number): void => {
    peak.last = value;
    peak.peak = Math.max(peak.peak, value);
  };
  const sample = (): void => {
    const controller = targets.controller();
    const agent = targets.agent();
    if (controller) note(figures.controller, rssMb(controller));
    if (agent) {
      note(figures.agent, rssMb(agent.pid));
      note(
        figures.dataPlane,
        dataPlanePids(agent).reduce((sum, pid) => sum + rssMb(pid), 0),
      );
    }
  };
  let timer: NodeJS.Timeout | undefined = setInterval(sample, everyMs);
  return {
    figures,
    sample,
    /** A last sample, once: a second stop must not sample processes already gone. */
    stop(): void {
      if (!timer) return;
      sample();
      clearInterval(timer);
      timer = undefined;
    },
  };
}

/** The data plane's RSS as sampled, and its PSS now: taken while its processes still run. */
function dataPlaneMemory(memory: ReturnType<typeof sampleMemory>, agent: AgentProcess | undefined): NonNullable<PlaneFigures['dataPlaneMb']> {
  const pids = dataPlanePids(agent);
  return {
    rssPeak: mb(memory.figures.dataPlane.peak),
    rssEnd: mb(memory.figures.dataPlane.last),
    pssEnd: mb(pids.reduce((sum, pid) => sum + pssMb(pid), 0)),
    processes: pids.length,
  };
}

// ---- metrics ------------------------------------------------------------------------------

/** The controller's proxy object writes, by "resource verb". */
async function objectWrites(controller: ControllerProcess): Promise<Map<string, number>> {
  const writes = new Map<string, number>();
  for (const { labels, value } of samples((await httpGet(controller.healthPort, '/metrics')).body, 'mtls_egress_proxy_object_writes_total')) {
    writes.set(`${labels.resource} ${labels.verb}`, value);
  }
  return writes;
}

/**
 * The controller's object writes once it has gone quiet, and about when the counter last
 * moved (within a second or so after): the end of the writes a change (or the cold start)
 * set off, which may trail the status that announced it. Quiet is a second under 10% of a
 * core, after which the counter has not moved: the counter alone would call a controller
 * quiet while it spends seconds rendering 10,000 bindings before its first write. The
 * counter is read only once the CPU is quiet, as serving /metrics (10,000 bindings'
 * series) is work too. Gives up after `capMs` (quiet: false).
 */
async function settledWrites(
  controller: ControllerProcess,
  remainingMs: () => number,
  capMs = 60_000,
  /** Not quiet before the counter passes this: a change that must be written is not done before its first write, however idle the wait before it. */
  atLeast = 0,
): Promise<{ writes: Map<string, number>; lastChangeAt: number; quiet: boolean }> {
  const pid = controller.child.pid!;
  const started = performance.now();
  let writes = await objectWrites(controller);
  let lastChangeAt = performance.now();
  let quietSince = lastChangeAt;
  let cpu = cpuSeconds(pid);
  while (remainingMs() > 0 && performance.now() - started < capMs) {
    await sleep(250);
    const busy = cpuSeconds(pid) - cpu > 0.025;
    cpu = cpuSeconds(pid);
    if (busy) quietSince = performance.now();
    if (busy || performance.now() - quietSince < 1000) continue;
    const latest = await objectWrites(controller);
    cpu = cpuSeconds(pid);
    if (total(latest) === total(writes) && total(latest) >= atLeast) return { writes, lastChangeAt, quiet: true };
    if (total(latest) !== total(writes)) lastChangeAt = performance.now();
    writes = latest;
    quietSince = performance.now();
  }
  return { writes: await objectWrites(controller), lastChangeAt, quiet: false };
}

function difference(after: Map<string, number>, before: Map<string, number>): Map<string, number> {
  const delta = new Map<string, number>();
  for (const [k, v] of after) if (v - (before.get(k) ?? 0) !== 0) delta.set(k, v - (before.get(k) ?? 0));
  return delta;
}
const total = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);

/** Where a process's memory is: the main thread's V8 heap, and what lies outside it, from its /metrics. */
async function heapOf(port: number | undefined): Promise<HeapFigures | undefined> {
  const metrics = port === undefined ? undefined : await httpGet(port, '/metrics').catch(() => undefined);
  if (!metrics) return undefined;
  const gauge = (name: string): number => mb((samples(metrics.body, name)[0]?.value ?? NaN) / 1024 / 1024);
  return { used: gauge('nodejs_heap_size_used_bytes'), total: gauge('nodejs_heap_size_total_bytes'), external: gauge('nodejs_external_memory_bytes') };
}

// ---- bindings, counted from a watch -------------------------------------------------------

const conditionTrue = (b: Binding, type: string): boolean =>
  b.status?.observedGeneration === b.metadata.generation && b.status?.conditions?.some((c) => c.type === type && c.status === 'True') === true;

/**
 * Every binding's CertificateValid and Programmed, its serial and listener port, kept from
 * one cluster-wide watch (re-listed only if the watch falls too far behind), and the moment
 * each of "all CertificateValid" and "all CertificateValid and Programmed" was first true.
 */
class BindingTracker {
  readonly valid = new Set<string>();
  readonly programmed = new Set<string>();
  readonly serial = new Map<string, string>();
  readonly port = new Map<string, number>();
  /** Why a binding is not CertificateValid (its reason), for a report that times out. */
  readonly notValidReason = new Map<string, string>();
  allValidAt: number | undefined;
  allProgrammedAt: number | undefined;
  readonly #client: KubeClient;
  readonly #path = `/apis/${types.group}/${types.version}/${types.plural}`;
  readonly #abort = new AbortController();
  #resourceVersion = '';
  #loop: Promise<void> | undefined;

  constructor(client: KubeClient) {
    this.#client = client;
  }

  async start(): Promise<void> {
    await this.#relist();
    this.#loop = this.#watch();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  #apply(b: Binding, deleted: boolean): void {
    const key = `${b.metadata.namespace}/${b.metadata.name}`;
    const valid = !deleted && conditionTrue(b, types.ConditionCertificateValid);
    const programmed = valid && conditionTrue(b, types.ConditionProgrammed);
    if (valid) this.valid.add(key);
    else this.valid.delete(key);
    if (programmed) this.programmed.add(key);
    else this.programmed.delete(key);
    if (b.status?.certificate?.serialNumber) this.serial.set(key, b.status.certificate.serialNumber);
    if (b.status?.listenerPort) this.port.set(key, b.status.listenerPort);
    const reason = b.status?.conditions?.find((c) => c.type === types.ConditionCertificateValid)?.reason;
    if (valid) this.notValidReason.delete(key);
    else this.notValidReason.set(key, reason ?? '(no status yet)');
    if (this.allValidAt === undefined && this.valid.size >= count) this.allValidAt = performance.now();
    if (this.allProgrammedAt === undefined && this.programmed.size >= count) this.allProgrammedAt = performance.now();
  }

  async #relist(): Promise<void> {
    let next: string | undefined;
    do {
      const page = await this.#client.list<Binding>(this.#path, { limit: 500, continue: next });
      for (const b of page.items) this.#apply(b, false);
      next = page.metadata.continue || undefined;
      this.#resourceVersion = page.metadata.resourceVersion ?? this.#resourceVersion;
    } while (next);
  }

  async #watch(): Promise<void> {
    while (!this.#abort.signal.aborted) {
      try {
        await this.#client.watch<Binding>(
          this.#path,
          { resourceVersion: this.#resourceVersion, allowWatchBookmarks: true },
          (event) => {
            if (event.type === 'ERROR') throw Object.assign(new Error('watch expired'), { gone: true });
            this.#resourceVersion = event.object.metadata.resourceVersion ?? this.#resourceVersion;
            if (event.type !== 'BOOKMARK') this.#apply(event.object, event.type === 'DELETED');
          },
          this.#abort.signal,
        );
      } catch (err) {
        if (this.#abort.signal.aborted) return;
        if ((err as { gone?: boolean }).gone) await this.#relist().catch(() => undefined);
        else await sleep(200);
      }
    }
  }
}

// ---- processes we start -------------------------------------------------------------------

/** The controller as the external check runs it: exactly `controller --kubeconfig F --listener-ports 10000-29999`. */
async function startExternalShapeController(cli: string, kubeConfigPath: string, nodeOptions: string[], extra: string[]): Promise<ControllerProcess> {
  return startControllerProcess({
    id: 'external-shape',
    cli,
    nodeOptions,
    args: ['--kubeconfig', kubeConfigPath, '--listener-ports', externalListenerPorts, ...extra],
    logLevel: 'info',
  });
}

/** Whether nothing listens on 0.0.0.0:8080, the controller's default health address. */
function defaultHealthPortFree(): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.once('error', () => done(false));
    server.listen(8080, '0.0.0.0', () => server.close(() => done(true)));
  });
}

/** SIGTERM, then SIGKILL if it has not exited within 15 s: a hung shutdown must not hang the bench. */
async function stopWithin(what: { stop(): Promise<unknown>; kill(): Promise<unknown> } | undefined): Promise<void> {
  if (!what) return;
  const stopped = await Promise.race([what.stop().then(() => true), sleep(15_000).then(() => false)]);
  await what.kill();
  if (!stopped) console.log('  (a process did not stop within 15 s of SIGTERM and was killed)');
}

// ---- the run ------------------------------------------------------------------------------

interface ObjectSizes {
  count: number;
  totalBytes: number;
  largest: { name: string; bytes: number } | null;
}

interface HeapFigures {
  used: number;
  total: number;
  external: number;
}

/** A replica started once every binding is in the API, from its spawn. */
interface ReplicaFigures {
  /** → its Pod reports the controller's config hash: every binding served; null when it did not in time. */
  servedS: number | null;
  /** → /readyz answers ok (a config applied, whole or not). */
  readyS: number | null;
  /** → its caches synced, and its apply's own stages, as it logged them. */
  cachesSyncedS: number | null;
  apply: { bindings: number; filesWritten: number; ms: Record<string, number> } | null;
  agentRssMb: { peak: number; end: number };
  agentHeapMb?: HeapFigures;
  dataPlaneMb: { rssPeak: number; rssEnd: number; pssEnd: number; processes: number };
  /** A request through the first and the last binding reaches the partner with each one's certificate. */
  served: boolean;
  /** Its config directory: where (tmpfs counts against the pod's memory), and the bytes its files take, each inode once. */
  configDir: { tmpfs: boolean; mb: number } | null;
  error?: string;
}

interface PlaneFigures {
  /** Controller start → every binding CertificateValid and Programmed (none: CertificateValid); null when it did not happen in time. */
  coldStartS: number | null;
  certificateValidS: number | null;
  reached: { certificateValid: number; programmed: number; of: number };
  controllerRssMb: { peak: number; afterColdStart: number; end: number };
  /** The controller's main-thread V8 heap at the end (used, reserved) and its external memory: the rest of its RSS is workers, code and the allocator. */
  controllerHeapMb?: HeapFigures;
  agentHeapMb?: HeapFigures;
  agentRssMb?: { peak: number; end: number };
  dataPlaneMb?: { rssPeak: number; rssEnd: number; pssEnd: number; processes: number };
  /** CPU seconds spent during the cold start, by process. */
  coldStartCpuS: Record<string, number>;
  /** The controller's proxy object writes during the cold start, and by when they had stopped (an upper bound: its counter then held still for a second). */
  proxyObjects: { writes: number; settledS: number | null } | null;
  largestObject: { kind: string; name: string; bytes: number } | null;
  objects: Record<string, ObjectSizes>;
  api: { requests: number; perSecond: number; top: Array<[string, number]> };
  served?: boolean;
  rotation: { seenBy: 'partner' | 'status'; count: number; p50Ms: number; p99Ms: number; maxMs: number } | null;
  /** Per change; quiet false when the controller was never quiet before or after the rotations, so other writes may be among them or some missing. */
  writesPerChange: { bindingsChanged: number; writes: number; byResourceVerb: Record<string, number>; quiet: boolean } | null;
  replica?: ReplicaFigures;
  error?: string;
}

const mb = (n: number): number => Math.round(n);
const seconds = (ms: number): number => Math.round(ms / 10) / 100;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Runs `work` over `items` with `limit` in flight, failing once the deadline passes. */
async function inParallel<T>(items: readonly T[], limit: number, deadline: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        if (performance.now() > deadline) throw new Error(`the deadline passed during setup, after ${next} of ${items.length}`);
        await work(items[next++]!);
      }
    }),
  );
}

/** Every object of the kinds the controller writes in `namespace`, sized as the API serves it (JSON). */
async function objectSizes(client: KubeClient, namespace: string): Promise<Record<string, ObjectSizes>> {
  const sizes: Record<string, ObjectSizes> = {};
  for (const [kind, api] of proxyKinds) {
    const size: ObjectSizes = { count: 0, totalBytes: 0, largest: null };
    let next: string | undefined;
    do {
      // A page of 500 binding Secrets is 3.7 MB: on an apiserver still busy with the
      // cold start's writes one may time out, and is asked again.
      const list = (): Promise<{ items: Array<{ metadata: { name: string } }>; metadata: { continue?: string } }> =>
        client.list<{ metadata: { name: string } }>(`${api}/namespaces/${namespace}/${kind}`, { limit: 500, continue: next });
      const page = await list()
        .catch(() => sleep(2_000).then(list))
        .catch(() => sleep(5_000).then(list));
      for (const item of page.items) {
        const bytes = Buffer.byteLength(JSON.stringify(item));
        size.count++;
        size.totalBytes += bytes;
        if (bytes > (size.largest?.bytes ?? -1)) size.largest = { name: item.metadata.name, bytes };
      }
      next = page.metadata.continue || undefined;
    } while (next);
    sizes[kind] = size;
  }
  return sizes;
}

/** A process's log lines at warn and above, and the data plane's alerts and errors, counted by message: what went wrong, if anything. */
function troubles(logs: string[]): Array<[string, number]> {
  const counted = new Map<string, number>();
  for (const line of logs) {
    const parsed = safeJson(line) as { level?: string; msg?: string; err?: { message?: string } } | undefined;
    // Besides our own warnings, what HAProxy ([ALERT]) or nginx ([emerg], [alert], [crit], [error]) says is wrong; not their notices.
    if (parsed === undefined ? !/\[(ALERT|emerg|alert|crit|error)\]/.test(line) : !['warn', 'error', 'fatal'].includes(parsed.level ?? '')) continue;
    const what = parsed ? `${parsed.msg ?? ''} ${parsed.err?.message ?? ''}`.trim().slice(0, 400) : line.slice(0, 400);
    counted.set(what, (counted.get(what) ?? 0) + 1);
  }
  return [...counted].sort((a, b) => b[1] - a[1]).slice(0, 5);
}

async function runPlane(plane: Plane, set: BulkPfxSet, cli: string, nodeOptions: string[]): Promise<PlaneFigures> {
  const deadline = performance.now() + timeoutS * 1000;
  const remainingMs = (): number => Math.max(0, deadline - performance.now());
  const figures: PlaneFigures = {
    coldStartS: null,
    certificateValidS: null,
    reached: { certificateValid: 0, programmed: 0, of: count },
    controllerRssMb: { peak: 0, afterColdStart: 0, end: 0 },
    coldStartCpuS: {},
    proxyObjects: null,
    largestObject: null,
    objects: {},
    api: { requests: 0, perSecond: 0, top: [] },
    rotation: null,
    writesPerChange: null,
  };
  const log = (line: string): void => console.log(`[${plane}] ${line}`);
  let cluster: ControlPlane | undefined;
  let controller: ControllerProcess | undefined;
  let agent: AgentProcess | undefined;
  let partner: MtlsPartner | undefined;
  let tracker: BindingTracker | undefined;
  let memory: ReturnType<typeof sampleMemory> | undefined;
  try {
    cluster = await startControlPlane();
    const kube = new TestKube(cluster.kubeconfig);
    const admin = createAdminHttp(cluster.apiServerUrl, cluster.pki);
    await kube.namespace(proxyNamespace, { exact: true });
    const namespaces = Array.from({ length: namespaceCount }, (_, k) => namespaceName(k));
    for (const ns of namespaces) await kube.namespace(ns, { exact: true });

    // The partner trusts the bulk CA's clients and shows a server certificate from a CA of its own.
    const serverPki = new PartnerPki('Scale Bench Server CA');
    if (plane !== 'none') {
      const server = serverPki.issueServer({ cn: 'localhost', dnsNames: ['localhost'] });
      partner = await startMtlsPartner({ cert: server.certPem, key: server.keyPem, clientCA: set.issuer.caCertPem, record: false });
      for (const ns of namespaces) await kube.putSecret(ns, 'partner-ca', { 'ca.crt': serverPki.ca.certPem });
    }
    let t = performance.now();
    const secretIndexes = Array.from({ length: secretCount }, (_, j) => j);
    await inParallel(secretIndexes, concurrency, deadline, (j) =>
      kube.client.create(`/api/v1/namespaces/${namespaceName(j % namespaceCount)}/secrets`, {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: `pfx-${j}` },
        type: 'Opaque',
        data: { [types.defaultPfxKey]: set.identities[j]!.pfx.toString('base64'), [types.defaultPasswordKey]: Buffer.from(password).toString('base64') },
      }),
    );
    const secretsS = (performance.now() - t) / 1000;
    t = performance.now();
    const indexes = Array.from({ length: count }, (_, i) => i);
    await inParallel(indexes, concurrency, deadline, (i) => {
      const secret = { name: `pfx-${secretOf(i)}` };
      // No agent in the external shape, so nothing connects: documentation addresses
      // (TEST-NET-2) that need no DNS and that the destination policy allows.
      const destination =
        plane === 'none'
          ? { host: `198.51.100.${1 + (i % 254)}`, serverName: `partner-${i % 254}.example` }
          : { host: 'localhost', port: partner!.port, serverCA: { secretRef: { name: 'partner-ca' } } };
      return kube.createBinding(namespaceName(i % namespaceCount), `b-${i}`, { ...destination, certificate: { secretRef: secret, passwordSecretRef: secret } });
    });
    log(
      `setup: ${secretCount} PFX Secrets in ${secretsS.toFixed(1)} s, ${count} bindings in ${((performance.now() - t) / 1000).toFixed(1)} s (${concurrency} in flight), ${namespaceCount} namespaces`,
    );

    let configDir: string | undefined;
    if (plane !== 'none') {
      // No kubelet: the proxy Pod the agent reports on is created and marked Ready by hand.
      await createAgentPod(kube.client, proxyNamespace, proxyPod);
      await kube.client.mergePatch(`/api/v1/namespaces/${proxyNamespace}/pods/${proxyPod}`, {
        metadata: { labels: { 'app.kubernetes.io/name': 'mtls-egress-proxy' } },
      });
      await kube.client.mergePatch(`/api/v1/namespaces/${proxyNamespace}/pods/${proxyPod}/status`, {
        status: { conditions: [{ type: 'Ready', status: 'True' }] },
      });
      configDir = temporaryDirectory('scale-proxy');
    }

    tracker = new BindingTracker(kube.client);
    await tracker.start();
    const requestsBefore = await apiRequests(admin);
    const controlPlanePids = processes()
      .filter((p) => p.cmdline.includes(cluster!.stateDir))
      .map((p) => ({ name: /kube-apiserver/.test(p.cmdline) ? 'apiserver' : 'etcd', pid: p.pid }));
    const cpuBefore = new Map(controlPlanePids.map(({ pid }) => [pid, cpuSeconds(pid)]));

    const started = performance.now();
    if (plane === 'none') {
      const extra = (await defaultHealthPortFree()) ? [] : ['--health-addr', '127.0.0.1:0'];
      if (extra.length) log('port 8080 is taken here: the controller gets --health-addr 127.0.0.1:0 besides the external shape');
      controller = await startExternalShapeController(cli, cluster.kubeConfigPath, nodeOptions, extra);
    } else {
      if (!replicaOnly)
        agent = await startAgent({
          kubeConfigPath: cluster.kubeConfigPath,
          namespace: proxyNamespace,
          podName: proxyPod,
          configDir: configDir!,
          nginxPrefix: configDir!,
          args: ['--data-plane', plane],
          nodeOptions: proxyNodeOptions,
        });
      controller = await startController({
        kubeConfigPath: cluster.kubeConfigPath,
        namespaces,
        id: 'scale',
        cli,
        nodeOptions,
        args: [
          '--namespace',
          proxyNamespace,
          '--data-plane',
          plane,
          '--proxy-listen-address',
          '127.0.0.1',
          '--proxy-status-port',
          String(await freePort()),
          // Below the ephemeral ports: HAProxy binds every port of the range.
          '--listener-ports',
          `10000-${10000 + count + 99}`,
          '--proxy-access-log',
          'off',
          '--proxy-error-log',
          'error.log',
        ],
      });
    }
    const controllerPid = controller.child.pid!;
    memory = sampleMemory({ controller: () => controllerPid, agent: () => agent });
    let exited = false;
    void controller.exited.then(() => (exited = true));

    const done = (): boolean => (plane === 'none' || replicaOnly ? tracker!.allValidAt !== undefined : tracker!.allProgrammedAt !== undefined);
    await pollUntil(
      () => {
        if (exited) throw new StopPolling(`the controller exited during the cold start`);
        return done() ? true : undefined;
      },
      { what: 'every binding CertificateValid' + (plane === 'none' ? '' : ' and Programmed'), timeoutMs: Math.round(remainingMs()), intervalMs: 50 },
    ).catch((err: unknown) => {
      figures.error = `${(err as Error).message}: ${tracker!.valid.size} of ${count} CertificateValid, ${tracker!.programmed.size} Programmed after ${seconds(performance.now() - started)} s`;
    });
    const coldEnd = performance.now();
    figures.reached = { certificateValid: tracker.valid.size, programmed: tracker.programmed.size, of: count };
    if (tracker.allValidAt !== undefined) figures.certificateValidS = seconds(tracker.allValidAt - started);
    const finished = plane === 'none' ? tracker.allValidAt : tracker.allProgrammedAt;
    if (finished !== undefined) figures.coldStartS = seconds(finished - started);
    memory.sample();
    figures.controllerRssMb.afterColdStart = mb(memory.figures.controller.last);

    const coldStartS = (coldEnd - started) / 1000;
    const requests = difference(await apiRequests(admin), requestsBefore);
    figures.api = {
      requests: total(requests),
      perSecond: Math.round(total(requests) / coldStartS),
      top: [...requests].sort((a, b) => b[1] - a[1]).slice(0, 8),
    };
    figures.coldStartCpuS = { controller: Math.round(cpuSeconds(controllerPid) * 10) / 10 };
    for (const { name, pid } of controlPlanePids) figures.coldStartCpuS[name] = Math.round((cpuSeconds(pid) - cpuBefore.get(pid)!) * 10) / 10;
    if (agent) {
      figures.coldStartCpuS.agent = Math.round(cpuSeconds(agent.pid) * 10) / 10;
      figures.coldStartCpuS.dataPlane = Math.round(dataPlanePids(agent).reduce((sum, pid) => sum + cpuSeconds(pid), 0) * 10) / 10;
    }

    // The objects are sized once the controller has stopped writing them.
    // At 10,000 bindings these writes may go on for minutes after the statuses: as long as the deadline allows.
    const settled = await settledWrites(controller, remainingMs, remainingMs()).catch(() => undefined);
    if (settled) figures.proxyObjects = { writes: total(settled.writes), settledS: settled.quiet ? seconds(settled.lastChangeAt - started) : null };
    // A failed listing (an apiserver still busy with 20,000 writes) is said, and the run goes on.
    figures.objects = await objectSizes(kube.client, proxyNamespace).catch((err: unknown) => {
      log(`could not size the objects in ${proxyNamespace}: ${(err as Error).message}`);
      return {};
    });
    for (const [kind, size] of Object.entries(figures.objects)) {
      if (size.largest && size.largest.bytes > (figures.largestObject?.bytes ?? -1)) figures.largestObject = { kind, ...size.largest };
    }

    if (figures.error === undefined) {
      const firstIdentity = set.identities[secretOf(0)]!;
      if (agent) figures.served = await servesItsCertificate(tracker, 0, firstIdentity.serial);
      if (rotations > 0 && (agent || plane === 'none')) await rotate(plane, { kube, set, tracker, controller, figures, remainingMs });
    }
    if (figures.error === undefined && plane !== 'none' && replica) {
      if (agent) {
        // The first agent goes (its server holds the listener ports), as a replica's pod
        // would on another node; what it held is measured before.
        memory.stop();
        figures.agentHeapMb = await heapOf(agent.healthPort);
        figures.dataPlaneMb = dataPlaneMemory(memory, agent);
        await stopWithin(agent);
      } else {
        await pollUntil(
          async () =>
            parseManifest(await kube.client.get(`/api/v1/namespaces/${proxyNamespace}/configmaps/${proxyConfigMapName}`))?.bindings === count
              ? true
              : undefined,
          { what: `the index to count ${count} bindings`, timeoutMs: Math.round(remainingMs()), intervalMs: 500 },
        );
      }
      figures.replica = await newReplica(plane, { kube, tracker, kubeConfigPath: cluster.kubeConfigPath, remainingMs });
    }
  } catch (err) {
    figures.error ??= (err as Error).message;
  } finally {
    memory?.stop();
    figures.controllerHeapMb = await heapOf(controller?.healthPort);
    figures.agentHeapMb ??= await heapOf(agent?.healthPort);
    if (memory) {
      figures.controllerRssMb.peak = mb(memory.figures.controller.peak);
      figures.controllerRssMb.end = mb(memory.figures.controller.last);
      if (agent) {
        figures.agentRssMb = { peak: mb(memory.figures.agent.peak), end: mb(memory.figures.agent.last) };
        figures.dataPlaneMb ??= dataPlaneMemory(memory, agent);
      }
    }
    // What went wrong, said even when every wait was met: a write the API refused and
    // retried (a ConfigMap over its limit, say) shows here and nowhere else.
    for (const [what, n] of troubles(controller?.logs ?? [])) log(`controller logged ${n}× ${what}`);
    for (const [what, n] of troubles(agent?.logs ?? [])) log(`agent logged ${n}× ${what}`);
    if (logDir) {
      mkdirSync(logDir, { recursive: true });
      if (controller) writeFileSync(join(logDir, `${plane}-controller.log`), `${controller.logs.join('\n')}\n`);
      if (agent) writeFileSync(join(logDir, `${plane}-agent.log`), `${agent.logs.join('\n')}\n`);
    }
    if (figures.error !== undefined) {
      const reasons = new Map<string, number>();
      for (const reason of tracker?.notValidReason.values() ?? []) reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
      if (reasons.size) log(`not CertificateValid, by reason: ${[...reasons].map(([r, n]) => `${r} ${n}`).join(', ')}`);
    }
    await tracker?.stop();
    await stopWithin(agent);
    await stopWithin(controller);
    await partner?.close();
    await cluster?.stop();
  }
  return figures;
}

/** One request through the binding's listener: the partner must see exactly its certificate. */
async function servesItsCertificate(tracker: BindingTracker, i: number, serial: string | undefined): Promise<boolean> {
  const port = tracker.port.get(bindingKey(i));
  const response = port === undefined ? undefined : await callProxy(port).catch(() => undefined);
  return response?.status === 200 && (JSON.parse(response.body) as PartnerSeen).serialNumber === serial;
}

const shm = '/dev/shm/';

/**
 * deploy/ gives the proxy's config a memory-backed volume (tmpfs), whose fsyncs cost
 * nothing and whose pages count against the pod's memory: a replica's is one too, where
 * the machine has /dev/shm.
 */
function memoryBackedDirectory(label: string): string {
  if (!existsSync(shm)) return temporaryDirectory(label);
  const dir = mkdtempSync(join(shm, `mtls-egress-${label}-`));
  removeDirectoryOnExit(dir);
  return dir;
}

/** The bytes a directory's files take (allocated blocks), each inode once: generations share files by hard link. */
function diskUsage(dir: string): number {
  const seen = new Set<number>();
  let bytes = 0;
  const walk = (path: string): void => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const child = join(path, entry.name);
      if (entry.isDirectory()) walk(child);
      else if (entry.isFile()) {
        const stat = statSync(child);
        if (seen.has(stat.ino)) continue;
        seen.add(stat.ino);
        bytes += stat.blocks * 512;
      }
    }
  };
  walk(dir);
  return bytes;
}

/** A pino line's `time` (ISO, as src/log.ts writes it) as this process's performance.now(). */
function loggedAt(line: Record<string, unknown> | undefined): number | undefined {
  const time = typeof line?.time === 'string' ? Date.parse(line.time) : NaN;
  return Number.isNaN(time) ? undefined : time - performance.timeOrigin;
}

/**
 * A new agent on a fresh config directory, against every binding and proxy object already
 * in the API: from its spawn until its Pod reports the hash of the index the controller
 * wrote (read again on every poll, so a late controller write is waited for too), its
 * RSS and its server's every 100 ms.
 */
async function newReplica(
  plane: Plane,
  ctx: { kube: TestKube; tracker: BindingTracker; kubeConfigPath: string; remainingMs: () => number },
): Promise<ReplicaFigures> {
  const { kube, tracker, remainingMs } = ctx;
  await createAgentPod(kube.client, proxyNamespace, replicaPod);
  const configDir = memoryBackedDirectory('scale-replica');
  const figures: ReplicaFigures = {
    servedS: null,
    readyS: null,
    cachesSyncedS: null,
    apply: null,
    agentRssMb: { peak: 0, end: 0 },
    dataPlaneMb: { rssPeak: 0, rssEnd: 0, pssEnd: 0, processes: 0 },
    served: false,
    configDir: null,
  };
  const indexHash = async (): Promise<string | undefined> =>
    (await kube.client.get<{ metadata: { annotations?: Record<string, string> } }>(`/api/v1/namespaces/${proxyNamespace}/configmaps/${proxyConfigMapName}`))
      .metadata.annotations?.[annotationContentHash];
  let replicaAgent: AgentProcess | undefined;
  const memory = sampleMemory({ controller: () => undefined, agent: () => replicaAgent }, 100);
  const started = performance.now();
  try {
    replicaAgent = await startAgent({
      // As the image runs it: Node's type stripping of src/ alone holds about 28 MB.
      cli,
      kubeConfigPath: ctx.kubeConfigPath,
      namespace: proxyNamespace,
      podName: replicaPod,
      configDir,
      nginxPrefix: configDir,
      args: ['--data-plane', plane],
      nodeOptions: proxyNodeOptions,
    });
    const agent = replicaAgent;
    await pollUntil(
      async () => {
        if (figures.readyS === null && (await httpGet(agent.healthPort, '/readyz').catch(() => undefined))?.status === 200) {
          figures.readyS = seconds(performance.now() - started);
        }
        const [hash, reported] = await Promise.all([indexHash(), podAnnotations(kube.client, proxyNamespace, replicaPod)]);
        return hash !== undefined && reported[annotationAppliedHash] === hash ? true : undefined;
      },
      { what: `the new replica to serve every binding`, timeoutMs: Math.round(Math.min(remainingMs(), 300_000)), intervalMs: 100 },
    );
    figures.servedS = seconds(performance.now() - started);
    figures.readyS ??= figures.servedS;
    const synced = loggedAt(agent.logged('caches synced')[0]);
    if (synced !== undefined) figures.cachesSyncedS = seconds(synced - started);
    const applied = agent.logged('config applied').at(-1) as { bindings?: number; filesWritten?: number; ms?: Record<string, number> } | undefined;
    if (applied) figures.apply = { bindings: applied.bindings ?? 0, filesWritten: applied.filesWritten ?? 0, ms: applied.ms ?? {} };
    const last = count - 1;
    figures.served =
      (await servesItsCertificate(tracker, 0, tracker.serial.get(bindingKey(0)))) &&
      (await servesItsCertificate(tracker, last, tracker.serial.get(bindingKey(last))));
  } catch (err) {
    figures.error = (err as Error).message;
  } finally {
    memory.stop();
    figures.agentHeapMb = await heapOf(replicaAgent?.healthPort);
    figures.agentRssMb = { peak: mb(memory.figures.agent.peak), end: mb(memory.figures.agent.last) };
    figures.dataPlaneMb = dataPlaneMemory(memory, replicaAgent);
    figures.configDir = { tmpfs: configDir.startsWith(shm), mb: Math.round(diskUsage(configDir) / 1024 / 102.4) / 10 };
    await stopWithin(replicaAgent);
  }
  return figures;
}

/**
 * BENCH_ROTATIONS times: binding 0's PFX Secret gets a new certificate; timed until the
 * partner sees it (the external shape: until the binding's status shows it). The next
 * starts once status has caught up. Then the proxy object writes the changes cost.
 */
async function rotate(
  plane: Plane,
  ctx: { kube: TestKube; set: BulkPfxSet; tracker: BindingTracker; controller: ControllerProcess; figures: PlaneFigures; remainingMs: () => number },
): Promise<void> {
  const { kube, set, tracker, controller, figures, remainingMs } = ctx;
  const key = bindingKey(0);
  const secret = secretOf(0);
  const path = `/api/v1/namespaces/${namespaceName(secret % namespaceCount)}/secrets/pfx-${secret}`;
  const port = tracker.port.get(key);
  if (plane !== 'none' && port === undefined) throw new Error(`${key} has no listener port in its status`);
  const before = await settledWrites(controller, remainingMs);
  const latencies: number[] = [];
  const rotationLog: string[] = [];
  // One rotation may take a minute at most (the goal is a second): one that hangs ends the
  // rotations with that said, rather than the whole deadline spent on it.
  const limitMs = (): number => Math.round(Math.min(remainingMs(), 60_000));
  try {
    for (let r = 0; r < rotations; r++) {
      const next = set.issuer.issue(`${set.identities[secret]!.cn}.r${r}`, password);
      const started = performance.now();
      await kube.client.mergePatch(path, { data: { [types.defaultPfxKey]: next.pfx.toString('base64') } });
      await pollUntil(
        async () => {
          if (plane === 'none') return tracker.serial.get(key) === next.serial ? true : undefined;
          const response = await callProxy(port!).catch(() => undefined);
          return response?.status === 200 && (JSON.parse(response.body) as PartnerSeen).serialNumber === next.serial ? true : undefined;
        },
        { what: `rotation ${r + 1}: ${plane === 'none' ? 'the status' : 'the partner'} to see serial ${next.serial}`, timeoutMs: limitMs(), intervalMs: 5 },
      );
      latencies.push(performance.now() - started);
      rotationLog.push(
        `rotation ${r + 1}: patched at ${new Date(performance.timeOrigin + started).toISOString()}, seen after ${Math.round(latencies.at(-1)!)} ms`,
      );
      await pollUntil(() => (tracker.serial.get(key) === next.serial && (plane === 'none' || tracker.programmed.has(key)) ? true : undefined), {
        what: `rotation ${r + 1}: ${key} Programmed with serial ${next.serial}`,
        timeoutMs: limitMs(),
        intervalMs: 5,
      });
    }
  } finally {
    if (logDir) {
      mkdirSync(logDir, { recursive: true });
      writeFileSync(join(logDir, `${plane}-rotations.log`), `${rotationLog.join('\n')}\n`);
    }
    if (latencies.length > 0) {
      figures.rotation = {
        seenBy: plane === 'none' ? 'status' : 'partner',
        count: latencies.length,
        p50Ms: Math.round(percentile(latencies, 50)),
        p99Ms: Math.round(percentile(latencies, 99)),
        maxMs: Math.round(Math.max(...latencies)),
      };
    }
  }
  // Writes may trail the status a little.
  // A rotation must rewrite at least its binding's objects: wait (a minute at most) for that first write.
  const after = await settledWrites(controller, remainingMs, 60_000, total(before.writes) + 1);
  const delta = difference(after.writes, before.writes);
  figures.writesPerChange = {
    bindingsChanged: Array.from({ length: count }, (_, i) => i).filter((i) => secretOf(i) === secret).length,
    writes: Math.round((total(delta) / rotations) * 100) / 100,
    byResourceVerb: Object.fromEntries([...delta].map(([k, v]) => [k, Math.round((v / rotations) * 100) / 100])),
    quiet: before.quiet && after.quiet,
  };
}

// ---- the report ---------------------------------------------------------------------------

function printPlane(plane: Plane, f: PlaneFigures): void {
  const n = (x: number): string => x.toLocaleString('en-US');
  const kib = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`;
  const rows: Array<[string, string, string]> = [];
  const row = (what: string, figure: string, goal = ''): number => rows.push([what, figure, goal]);
  const server = plane === 'haproxy' ? 'HAProxy' : 'nginx';
  const to = plane === 'none' ? 'CertificateValid' : 'CertificateValid and Programmed';
  row(
    'cold start → all CertificateValid',
    f.certificateValidS === null ? `not reached (${n(f.reached.certificateValid)} of ${n(count)})` : `${f.certificateValidS} s`,
  );
  if (plane !== 'none' && !replicaOnly) {
    row(
      `cold start → all ${to}`,
      f.coldStartS === null ? `not reached (${n(f.reached.programmed)} of ${n(count)})` : `${f.coldStartS} s`,
      `< ${goals.coldStartS} s`,
    );
  }
  row(
    'controller RSS: peak / after cold start / end',
    `${f.controllerRssMb.peak} / ${f.controllerRssMb.afterColdStart} / ${f.controllerRssMb.end} MB`,
    `< ${goals.controllerRssMb} MB`,
  );
  if (f.controllerHeapMb) {
    row(
      '  its main V8 heap at the end: used / reserved; external',
      `${f.controllerHeapMb.used} / ${f.controllerHeapMb.total} MB; ${f.controllerHeapMb.external} MB`,
    );
  }
  if (f.agentRssMb) row('agent RSS (src/cli.ts): peak / end', `${f.agentRssMb.peak} / ${f.agentRssMb.end} MB`);
  if (f.agentHeapMb) {
    row('  its V8 heap at the end: used / reserved; external', `${f.agentHeapMb.used} / ${f.agentHeapMb.total} MB; ${f.agentHeapMb.external} MB`);
  }
  if (f.dataPlaneMb) {
    row(
      `${server}: RSS summed over ${f.dataPlaneMb.processes} processes, peak / end`,
      `${f.dataPlaneMb.rssPeak} / ${f.dataPlaneMb.rssEnd} MB (PSS ${f.dataPlaneMb.pssEnd} MB)`,
    );
  }
  if (f.proxyObjects) {
    row(
      'proxy objects written in the cold start, all by',
      `${n(f.proxyObjects.writes)}${f.proxyObjects.settledS !== null ? `, ${f.proxyObjects.settledS} s` : ' so far: still busy at the deadline'}`,
    );
  }
  row(
    `largest object in ${proxyNamespace}`,
    f.largestObject ? `${f.largestObject.kind}/${f.largestObject.name} ${kib(f.largestObject.bytes)}` : 'none',
    `< ${kib(goals.largestObjectBytes)}`,
  );
  for (const [kind, size] of Object.entries(f.objects)) {
    row(`  ${kind}`, `${n(size.count)}, ${kib(size.totalBytes)} in all${size.largest ? `; largest ${size.largest.name} ${kib(size.largest.bytes)}` : ''}`);
  }
  row('API requests during the cold start', `${n(f.api.requests)}, ${n(f.api.perSecond)}/s`);
  for (const [what, c] of f.api.top) row(`  ${what}`, n(c));
  row(
    'CPU seconds during the cold start',
    Object.entries(f.coldStartCpuS)
      .map(([k, v]) => `${k} ${v}`)
      .join(', '),
  );
  if (f.served !== undefined) row('a request through binding 0: the partner sees its certificate', f.served ? 'yes' : 'NO');
  if (f.rotation) {
    row(
      `rotation → ${f.rotation.seenBy === 'partner' ? 'the partner sees' : 'status shows'} the new certificate (${f.rotation.count} of ${rotations})`,
      `p50 ${n(f.rotation.p50Ms)} ms, p99 ${n(f.rotation.p99Ms)} ms, max ${n(f.rotation.maxMs)} ms`,
      f.rotation.seenBy === 'partner' ? `p99 < ${goals.rotationP99Ms} ms` : '',
    );
  }
  if (f.writesPerChange) {
    const w = f.writesPerChange;
    const parts = Object.entries(w.byResourceVerb).map(([k, v]) => `${k} ${v}`);
    row(
      `proxy objects written per change (${w.bindingsChanged} binding${w.bindingsChanged === 1 ? '' : 's'} changed)`,
      w.writes === 0
        ? 'none within a minute of the last rotation'
        : `${w.writes}${parts.length ? ` (${parts.join(', ')})` : ''}${w.quiet ? '' : '; the controller was never quiet around them: not exact'}`,
      "that binding's only",
    );
  }
  if (f.replica) {
    const r = f.replica;
    row(
      `a new replica (${cli.endsWith('.js') ? 'dist/cli.js' : 'src/cli.ts'}): spawn → caches synced / ready / every binding served`,
      `${r.cachesSyncedS ?? '?'} s / ${r.readyS ?? 'not'} s / ${r.servedS === null ? 'not reached' : `${r.servedS} s`}`,
      `< ${goals.replicaServedS} s`,
    );
    if (r.apply) {
      const stages = Object.entries(r.apply.ms).map(([k, v]) => `${k} ${n(Math.round(v))}`);
      row('  its apply, as it logged it', `${n(r.apply.bindings)} bindings, ${n(r.apply.filesWritten)} files written; ms: ${stages.join(', ')}`);
    }
    row('  its RSS: peak / end', `${r.agentRssMb.peak} / ${r.agentRssMb.end} MB`, `< ${goals.replicaRssMb} MB`);
    if (r.agentHeapMb)
      row('  its V8 heap at the end: used / reserved; external', `${r.agentHeapMb.used} / ${r.agentHeapMb.total} MB; ${r.agentHeapMb.external} MB`);
    row(
      `  its ${server}: RSS summed over ${r.dataPlaneMb.processes} processes, peak / end`,
      `${r.dataPlaneMb.rssPeak} / ${r.dataPlaneMb.rssEnd} MB (PSS ${r.dataPlaneMb.pssEnd} MB)`,
    );
    if (r.configDir) row(`  its config directory (${r.configDir.tmpfs ? 'tmpfs, as deploy/ mounts it' : 'on disk'})`, `${r.configDir.mb} MB`);
    row('  a request through the first and the last binding', r.served ? 'yes' : 'NO');
    if (r.error) row('  FAILED', r.error);
  }
  const width = Math.max(...rows.map((r) => r[0].length));
  const figureWidth = Math.max(...rows.map((r) => r[1].length));
  console.log(`\n[${plane}] ${n(count)} bindings, ${n(secretCount)} PFX Secrets, ${namespaceCount} namespaces`);
  for (const [what, figure, goal] of rows) console.log(`  ${what.padEnd(width)}  ${figure.padEnd(figureWidth)}  ${goal ? `goal ${goal}` : ''}`.trimEnd());
  if (f.error) console.log(`  FAILED: ${f.error}`);
}

// The controller as the image runs it: compiled JavaScript (BENCH_CLI=src runs the sources).
const cli = process.env.BENCH_CLI === 'src' ? join(repo, 'src/cli.ts') : join(repo, 'dist/cli.js');
if (process.env.BENCH_CLI !== 'src') execFileSync(join(repo, 'node_modules/.bin/tsc'), ['-p', join(repo, 'tsconfig.build.json')], { stdio: 'inherit' });
// The data planes run the controller with deploy/'s NODE_OPTIONS and malloc settings, as
// users do; the external check runs a bare `mtls-egress controller`, so its shape gets none.
const controllerEnv = deployedEnvironment(join(repo, 'deploy/controller.yaml'));
const proxyEnv = deployedEnvironment(join(repo, 'deploy/proxy.yaml'));
const nodeOptions = (process.env.BENCH_NODE_OPTIONS ?? (planes[0] === 'none' ? '' : (controllerEnv.NODE_OPTIONS ?? ''))).split(' ').filter(Boolean);
// The agent as the proxy pod runs it.
const proxyNodeOptions = (proxyEnv.NODE_OPTIONS ?? '').split(' ').filter(Boolean);
// glibc reads them as a process starts, so the bench's own children (controller, agent,
// HAProxy) get them and the bench does not. Both containers carry the same.
const malloc = planes[0] === 'none' ? {} : { ...mallocSettings(controllerEnv), ...mallocSettings(proxyEnv) };
Object.assign(process.env, malloc);
process.env.LOG_LEVEL ??= 'info';

const generation = performance.now();
const set = cachedPfxSet({ purpose: 'bench-scale', count: secretCount, password, cnPrefix: 'scale-' });
const generationS = seconds(performance.now() - generation);
console.log(
  set.generatedMs === undefined
    ? `certificates: ${secretCount} PFX files read from ${set.directory} in ${generationS} s`
    : `certificates: ${secretCount} distinct PFX files generated in ${seconds(set.generatedMs)} s (${(set.generatedMs / secretCount).toFixed(2)} ms each), kept in ${set.directory}`,
);
// A cache that does not decode should fail here, not as 10,000 bindings that never become valid.
const sample = set.identities[0]!;
if ((await decodePfx(sample.pfx, password)).facts.serialNumber !== sample.serial)
  throw new Error(`${set.directory}: the first PFX does not decode to its serial`);
console.log(`controller: ${cli.endsWith('.js') ? 'dist/cli.js (built)' : 'src/cli.ts'}; NODE_OPTIONS: ${nodeOptions.join(' ') || '(none)'}`);
console.log(
  `malloc (deploy/'s): ${
    Object.entries(malloc)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ') || '(none)'
  }`,
);
if (!planes.includes('none')) console.log(`agent: src/cli.ts; NODE_OPTIONS (deploy/proxy.yaml's): ${proxyNodeOptions.join(' ') || '(none)'}`);

// A last resort beside every deadline: whatever hangs, the bench ends.
setTimeout(
  () => {
    console.error(`bench:scale: still running ${planes.length * timeoutS + 600} s after the start; giving up`);
    process.exit(1);
  },
  (planes.length * timeoutS + 600) * 1000,
).unref();

const results: Partial<Record<Plane, PlaneFigures>> = {};
for (const plane of planes) {
  results[plane] = await runPlane(plane, set, cli, nodeOptions);
  printPlane(plane, results[plane]);
}
console.log(
  JSON.stringify({
    bench: 'scale',
    bindings: count,
    secrets: secretCount,
    namespaces: namespaceCount,
    generation: { seconds: set.generatedMs === undefined ? 0 : seconds(set.generatedMs), cached: set.generatedMs === undefined },
    nodeOptions: nodeOptions.join(' '),
    controllerArgs: planes[0] === 'none' ? `controller --kubeconfig F --listener-ports ${externalListenerPorts}` : 'see test/bench/scale.bench.ts',
    dataPlanes: results,
  }),
);
if (Object.values(results).some((f) => f.error !== undefined || f.replica?.error !== undefined)) process.exitCode = 1;
