// Binding churn under load, for both data planes in one run: 64 keep-alive clients
// (GETs and POSTs with a body, no client retries) call 50 bindings for 60 s while, every
// 200 ms, a binding is added, one removed and one rotated. Real apiserver and etcd, the
// real controller and agent processes, Debian's nginx and HAProxy, a real mTLS partner;
// the same load straight to the partner with a client certificate is the baseline.
//
//   npm run bench:churn
//   BENCH_SECONDS=20 BENCH_PLANES=haproxy npm run bench:churn
//   BENCH_AGENT_ARGS='--haproxy-threads 1' …   flags for the agent
//   BENCH_PAIRS=6 …   after the run, 6 pairs of 10 s windows (BENCH_PAIR_SECONDS): the direct
//     client without churn, then the proxy under churn; the median of the pairs' ratios is
//     the throughput ratio with this shared machine's drift cancelled
//   BENCH_CONTROL_PLANE_NICE=10 …   kube-apiserver and etcd at that nice value: a cluster's
//     control plane runs on nodes of its own; here it shares the proxy's two cores. Not
//     the default, and not the figure the goals are judged by: it shows what that costs.
//
// Prints a table per data plane, then one JSON line:
//   {"bench":"churn","dataPlanes":{"haproxy":{"requests":N,"failed":N,"rotationP50Ms":N,"rotationP99Ms":N,"reqPerSec":N,
//     "rotationStages":{"<stage>":{"p50":N,"p99":N},...}},"nginx":{...}},"directReqPerSec":N,
//     "direct":{"before":{"reqPerSec":N,"benchCores":N},"after":{...}},...}
// The direct client runs before the data planes and after them; the baseline is the mean.
// The rotation split joins the bench's Secret writes with the agent's 'rotations served'
// lines by Secret resourceVersion: write → controller watch → data read → decoded →
// binding object sent → agent watch → served → a client's answer carries the new serial.

import { Agent, request } from 'node:https';
import { readdirSync } from 'node:fs';
import { availableParallelism, setPriority } from 'node:os';
import { performance } from 'node:perf_hooks';
import { createAdminHttp } from '../harness/admin-http.ts';
import { startControlPlane } from '../harness/control-plane.ts';
import { pollUntil } from '../harness/poll.ts';
import { agentMetric, startEgressStack, type EgressStack } from '../support/egress-stack.ts';
import { cpuSeconds, groupUsage, machineBusySeconds, processesOf, rssMb } from '../support/process-usage.ts';
import { hasReason, type Binding } from '../support/kube.ts';
import { apiRequests, requestsBetween } from '../support/prometheus-samples.ts';
import { startMtlsPartner, type MtlsPartner } from '../support/mtls-partner.ts';
import type { ProxyResponse } from '../support/nginx-process.ts';
import { PartnerPki, toPfx, type Issued } from '../support/partner-pki.ts';
import { steadyLoad, type LoadFailure, type SteadyLoad } from '../support/steady-load.ts';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { group, plural, version as apiVersion } from '../../src/api/v1alpha1/types.ts';

const controlPlaneBinaries = ['etcd', 'kube-apiserver'];
const seconds = Number(process.env.BENCH_SECONDS ?? 60);
const stableBindings = Number(process.env.BENCH_BINDINGS ?? 50);
const clients = Number(process.env.BENCH_CLIENTS ?? 64);
const tickMs = Number(process.env.BENCH_TICK_MS ?? 200);
/** Which changes each tick makes: both by default; `rotate` or `add-remove` to tell their costs apart. */
const churnKinds = new Set((process.env.BENCH_CHURN ?? 'rotate,add-remove').split(','));
const planes = (process.env.BENCH_PLANES ?? 'haproxy,nginx').split(',') as Array<'haproxy' | 'nginx'>;
const password = 'churn-bench-password';

interface PlaneFigures {
  requests: number;
  failed: number;
  rotationP50Ms: number;
  rotationP99Ms: number;
  reqPerSec: number;
  /** Each stage of a rotation, p50 and p99 ms (see rotationSplit below). */
  rotationStages: Record<string, { p50: number; p99: number }>;
  /** Resident memory when the churn began and when it ended (a soak's drift), MB. */
  rssMb: { agent: { start: number; end: number }; dataPlane: { start: number; end: number } };
  /** CPU seconds per second of churn (1 = one core), of each process: the bench holds the load generator and the partner. */
  cores: { bench: number; agent: number; dataPlane: number; controller: number; apiServerAndEtcd: number; machine: number };
  /** BENCH_PAIRS: the direct client and the proxy under churn in alternating windows. */
  pairs?: PairedFigures;
}

/** The processes a run's figures are read from, at one moment. */
interface Usage {
  at: number;
  agentRssMb: number;
  agentCpu: number;
  dataPlane: { rssMb: number; cpuSeconds: number; processes: number };
  controllerCpu: number;
  benchCpu: number;
  /** kube-apiserver and etcd: those binaries whose command line names the control plane's state directory. */
  controlPlaneCpu: number;
  /** Every process on the machine (/proc/stat's busy time), in seconds. */
  machineCpu: number;
}

function usage(stack: EgressStack, dataPlane: 'haproxy' | 'nginx', controlPlaneDir: string): Usage {
  // The data plane's master runs in a group of its own (its pid): the newest one the agent started.
  const master = stack.agent.logged(`${dataPlane} started`).at(-1)?.pid as number | undefined;
  const { user, system } = process.cpuUsage();
  return {
    at: performance.now(),
    agentRssMb: rssMb(stack.agent.pid),
    agentCpu: cpuSeconds(stack.agent.pid),
    dataPlane: master === undefined ? { rssMb: 0, cpuSeconds: 0, processes: 0 } : groupUsage(master),
    controllerCpu: cpuSeconds(stack.controller.child.pid!),
    benchCpu: (user + system) / 1e6,
    controlPlaneCpu: processesOf(controlPlaneBinaries, controlPlaneDir).reduce((sum, pid) => sum + cpuSeconds(pid), 0),
    machineCpu: machineBusySeconds(),
  };
}

/** A rotation the bench made: when it wrote the Secret, the version stored, and when the partner first saw the new serial. */
interface Rotation {
  port: number;
  serial: string;
  at: number;
  /** When the API server answered the write: one PUT, the clock starting as it is sent. */
  storedAt?: number;
  resourceVersion?: string;
  seenAt?: number;
  /** When the request that first got the new serial was sent. */
  sentAt?: number;
}

/**
 * The stages of each rotation, joined on the Secret version: the bench's own write time,
 * the agent's 'rotations served' lines (the controller's stamps on the binding object and
 * the agent's own times; src/contract/rotation-stamps.ts), and when a client first got an
 * answer with the new serial. One machine, one clock.
 */
function rotationSplit(made: readonly Rotation[], served: ReadonlyArray<Record<string, unknown>>): Record<string, number[]> {
  const bySource = new Map<string, { ms: Record<string, number>; seenAt: number; servedAt: number }>();
  for (const line of served) {
    for (const r of (line.rotations as Array<{ source: string; ms: Record<string, number>; seenAt: number; servedAt: number }>) ?? []) {
      bySource.set(r.source.slice(r.source.indexOf('@') + 1), r);
    }
  }
  const stages: Record<string, number[]> = {
    '(of which the PUT itself)': [],
    'secret write → controller watch': [],
    'watch → data read': [],
    'read → decoded': [],
    'decoded → object sent': [],
    'sent → agent watch': [],
    'agent watch → served': [],
    'served → partner sees it': [],
    '  (served → that request sent)': [],
    "  (that request's round trip)": [],
    total: [],
  };
  for (const r of made) {
    const report = r.resourceVersion === undefined ? undefined : bySource.get(r.resourceVersion);
    if (!report || r.seenAt === undefined) continue;
    if (r.storedAt !== undefined) stages['(of which the PUT itself)']!.push(r.storedAt - r.at);
    stages['secret write → controller watch']!.push(report.seenAt - r.at);
    stages['watch → data read']!.push(report.ms.read!);
    stages['read → decoded']!.push(report.ms.decode!);
    stages['decoded → object sent']!.push(report.ms.write!);
    stages['sent → agent watch']!.push(report.ms.watch!);
    stages['agent watch → served']!.push(report.ms.apply!);
    stages['served → partner sees it']!.push(r.seenAt - report.servedAt);
    if (r.sentAt !== undefined) {
      // Negative: a request sent while the agent still read HAProxy back already got the new certificate.
      stages['  (served → that request sent)']!.push(r.sentAt - report.servedAt);
      stages["  (that request's round trip)"]!.push(r.seenAt - r.sentAt);
    }
    stages.total!.push(r.seenAt - r.at);
  }
  return stages;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Certificates made once, before any clock runs: two per stable binding (a rotation alternates them) and a pool for added ones. */
function prepareCertificates(pki: PartnerPki): { stable: Array<[Issued, Buffer][]>; added: Array<[Issued, Buffer]> } {
  const key = pki.issueClient({ cn: 'key-donor' }).keyPem;
  const make = (cn: string): [Issued, Buffer] => {
    const issued = pki.issueClient({ cn, keyPem: key });
    return [issued, toPfx(issued, { password })];
  };
  return {
    stable: Array.from({ length: stableBindings }, (_, i) => [make(`stable-${i}.client`), make(`stable-${i}.client`)]),
    added: Array.from({ length: 10 }, (_, i) => make(`added-${i}.client`)),
  };
}

async function runPlane(
  dataPlane: 'haproxy' | 'nginx',
  cluster: Awaited<ReturnType<typeof startControlPlane>>,
  certs: ReturnType<typeof prepareCertificates>,
  pki: PartnerPki,
): Promise<PlaneFigures & { reloads: number; failures: LoadFailure[]; rotations: number; adds: number; removes: number; pairs?: PairedFigures }> {
  const stack: EgressStack = await startEgressStack({
    kubeconfig: cluster.kubeconfig,
    kubeConfigPath: cluster.kubeConfigPath,
    password,
    dataPlane,
    partnerPki: pki,
    recordPartner: false,
    // Neither data plane logs each request here: the bench process would pay for HAProxy's
    // (its stdout is the agent's, which the bench reads) and nginx's would not be comparable.
    accessLog: 'off',
    // One namespace holds every binding: its default share (a tenth of the stack's 100 ports) would stop at 10.
    controllerArgs: ['--namespace-port-share', '100%'],
    // e.g. BENCH_AGENT_ARGS='--haproxy-threads 1', to compare with the threads the agent picks.
    agentArgs: (process.env.BENCH_AGENT_ARGS ?? '').split(' ').filter(Boolean),
  });
  const { kube, namespace: ns } = stack;
  try {
    const putPfx = (name: string, pfx: Buffer): Promise<string> => kube.putSecret(ns, `${name}-pfx`, { 'keystore.p12': pfx, password });
    const createBinding = async (name: string, pfx: Buffer): Promise<void> => {
      await putPfx(name, pfx);
      await kube.createBinding(ns, name, {
        host: 'localhost',
        port: stack.partner.port,
        certificate: { secretRef: { name: `${name}-pfx` }, passwordSecretRef: { name: `${name}-pfx` } },
        serverCA: { secretRef: { name: 'partner-ca' } },
      });
    };
    const t = performance.now();
    for (let i = 0; i < stableBindings; i++) await createBinding(`stable-${i}`, certs.stable[i]![0]![1]);
    const ports: number[] = [];
    for (let i = 0; i < stableBindings; i++) {
      const b = await kube.waitForBinding(ns, `stable-${i}`, 'Ready', hasReason(reasons.BindingReady), 120_000).catch(async (err: unknown) => {
        // Why it is not Ready, so a bench that cannot start says so.
        const now = await kube.client.get<Binding>(`/apis/${group}/${apiVersion}/namespaces/${ns}/${plural}/stable-${i}`).catch(() => undefined);
        const ready = now?.status?.conditions?.find((c) => c.type === 'Ready');
        console.log(`[${dataPlane}] stable-${i} is not Ready: ${ready?.reason ?? 'no status'}: ${ready?.message ?? ''}`);
        throw err;
      });
      ports.push(b.status!.listenerPort!);
    }
    console.log(`[${dataPlane}] ${stableBindings} bindings Ready in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    const reloadsBefore = await agentMetric(stack, `mtls_egress_agent_reloads_total{data_plane="${dataPlane}"}`);
    const { cpus, cpuLimit } = stack.agent.logged('agent starting')[0] ?? {};
    console.log(`[${dataPlane}] the agent sees ${String(cpus)} CPUs (cgroup limit: ${String(cpuLimit ?? 'none')})`);

    const rotations: number[] = [];
    const made: Rotation[] = [];
    const pending = new Map<number, Rotation>();
    // A rotation is seen by the first answer with its serial to a request sent after its
    // write. Not by the port's last serial changing: an answer from the old server, to a
    // request it held while the new one came in, flips that back, and over minutes ports
    // stuck with a rotation the bench never counted as seen (and rotated no more).
    const onAnswer = (port: number, serial: string, sentAt: number, receivedAt: number): void => {
      const want = pending.get(port);
      if (want === undefined || serial !== want.serial || sentAt < want.at) return;
      rotations.push(receivedAt - want.at);
      want.seenAt = receivedAt;
      want.sentAt = sentAt;
      pending.delete(port);
    };
    const load = steadyLoad({ ports: () => ports, clients, onAnswer });
    const version = new Array<number>(stableBindings).fill(0);
    const churned: string[] = [];
    let adds = 0;
    let removes = 0;
    let rotated = 0;
    let ticks = 0;
    // Every tick: add one, remove one (the oldest added), rotate one (round robin).
    const churnTick = async (tick: number): Promise<void> => {
      const name = `added-${tick}`;
      const adding = !churnKinds.has('add-remove')
        ? Promise.resolve()
        : createBinding(name, certs.added[tick % certs.added.length]![1]).then(() => (churned.push(name), adds++));
      const removing =
        churned.length > 4 && churnKinds.has('add-remove')
          ? (async () => {
              const gone = churned.shift()!;
              await kube.deleteBinding(ns, gone);
              await kube.deleteSecret(ns, `${gone}-pfx`);
              removes++;
            })()
          : Promise.resolve();
      const i = tick % stableBindings;
      const port = ports[i]!;
      if (!pending.has(port) && churnKinds.has('rotate')) {
        version[i] = 1 - version[i]!;
        const [issued, pfx] = certs.stable[i]![version[i]!]!;
        const rotation: Rotation = { port, serial: issued.serial, at: Date.now() };
        pending.set(port, rotation);
        made.push(rotation);
        rotated++;
        // One unconditional PUT, as a tool that owns the Secret writes it: the clock starts
        // at the write, not at a read the bench would make first.
        rotation.resourceVersion = await kube.replaceSecret(ns, `stable-${i}-pfx`, { 'keystore.p12': pfx, password });
        rotation.storedAt = Date.now();
      }
      await Promise.all([adding, removing]);
    };
    // A tick that is late starts the next at once: the churn rate is a floor, not a ceiling.
    const churnFor = async (ms: number): Promise<void> => {
      const from = performance.now();
      for (let n = 0; performance.now() - from < ms; n++) {
        const due = from + n * tickMs;
        if (due > performance.now()) await new Promise((resolve) => setTimeout(resolve, due - performance.now()));
        await churnTick(ticks++);
      }
    };
    const started = performance.now();
    const requestsAtStart = load.requests;
    const admin = createAdminHttp(cluster.apiServerUrl, cluster.pki);
    const requestsAtStartOfChurn = await apiRequests(admin);
    const usageAtStart = usage(stack, dataPlane, cluster.stateDir);
    await churnFor(seconds * 1000);
    const elapsed = (performance.now() - started) / 1000;
    const requests = load.requests - requestsAtStart;
    const usageAtEnd = usage(stack, dataPlane, cluster.stateDir);
    const apiDuringChurn = requestsBetween(requestsAtStartOfChurn, await apiRequests(admin));
    const perSecond = (end: number, start: number): number => Math.round(((end - start) / ((usageAtEnd.at - usageAtStart.at) / 1000)) * 100) / 100;
    const cores = {
      bench: perSecond(usageAtEnd.benchCpu, usageAtStart.benchCpu),
      agent: perSecond(usageAtEnd.agentCpu, usageAtStart.agentCpu),
      // A data plane restarted mid-run started its CPU clock again: then this undercounts, and the exits below say so.
      dataPlane: perSecond(usageAtEnd.dataPlane.cpuSeconds, usageAtStart.dataPlane.cpuSeconds),
      controller: perSecond(usageAtEnd.controllerCpu, usageAtStart.controllerCpu),
      apiServerAndEtcd: perSecond(usageAtEnd.controlPlaneCpu, usageAtStart.controlPlaneCpu),
      machine: perSecond(usageAtEnd.machineCpu, usageAtStart.machineCpu),
    };
    const rssMb = {
      agent: { start: Math.round(usageAtStart.agentRssMb), end: Math.round(usageAtEnd.agentRssMb) },
      dataPlane: { start: Math.round(usageAtStart.dataPlane.rssMb), end: Math.round(usageAtEnd.dataPlane.rssMb) },
    };
    console.log(
      `[${dataPlane}] cores used during the churn: bench (load generator and partner) ${cores.bench}, agent ${cores.agent}, ${dataPlane} ${cores.dataPlane}, controller ${cores.controller}, kube-apiserver and etcd ${cores.apiServerAndEtcd}; the machine ${cores.machine} of ${availableParallelism()}`,
    );
    // What the API server (and etcd behind it) did for the churn: watches count when they end.
    const apiTotal = apiDuringChurn.reduce((sum, [, n]) => sum + n, 0);
    console.log(
      `[${dataPlane}] API requests during the churn: ${Math.round(apiTotal / elapsed)}/s; ` +
        apiDuringChurn
          .slice(0, 10)
          .map(([what, n]) => `${what} ${Math.round((n / elapsed) * 10) / 10}/s`)
          .join(', '),
    );
    console.log(
      `[${dataPlane}] RSS MB start → end: agent ${rssMb.agent.start} → ${rssMb.agent.end}, ${dataPlane} (${usageAtEnd.dataPlane.processes} processes) ${rssMb.dataPlane.start} → ${rssMb.dataPlane.end}`,
    );
    const { total: partnerConnections, resumed } = stack.partner.connections;
    console.log(`[${dataPlane}] the longest time no request completed: ${load.longestQuiet.ms} ms`);
    console.log(`[${dataPlane}] the partner accepted ${partnerConnections} TLS connections (${resumed} resumed) for ${load.requests} requests`);
    await pollUntil(() => (pending.size === 0 ? true : undefined), { what: 'the last rotations to be seen', timeoutMs: 30_000 }).catch(() => undefined);
    // A rotation the load never saw served (a lost one) shows here.
    console.log(`[${dataPlane}] rotations never seen at the partner: ${pending.size} of ${made.length}`);
    await load.stop();
    // The main run's rotations: the windows below make their own, not counted in its figures.
    const mainRotations = [...rotations];
    const mainMade = [...made];
    const pairs = await pairedWindows(() => steadyLoad({ ports: () => ports, clients, onAnswer }), churnFor);
    if (pairs) {
      console.log(
        `[${dataPlane}] ${pairs.ratios.length} pairs of ${pairWindowS} s windows, the direct client (no churn) then the proxy under churn: ` +
          `ratios ${pairs.ratios.map((r) => r.toFixed(2)).join(', ')}; median ${pairs.median.toFixed(2)}× (direct ${pairs.direct.join(', ')}; proxy ${pairs.proxied.join(', ')} req/s)`,
      );
    }
    const reloads = (await agentMetric(stack, `mtls_egress_agent_reloads_total{data_plane="${dataPlane}"}`)) - reloadsBefore;
    // A crash shows here: the agent restarts a data plane that exited on its own.
    const exits = await agentMetric(stack, `mtls_egress_agent_data_plane_unexpected_exits_total{data_plane="${dataPlane}"}`);
    console.log(`[${dataPlane}] ${exits} unexpected exits of the data plane`);
    // The agent's share of each change, from its own log: write the generation, test it, make the server serve it.
    const applies = stack.agent.logged('config applied').map((l) => l.ms as Record<string, number>);
    const part = (k: string): string =>
      `${Math.round(
        percentile(
          applies.map((a) => a[k]!),
          50,
        ),
      )}`;
    console.log(
      `[${dataPlane}] ${applies.length} applies, p50 ms: write ${part('write')}, test ${part('test')}, serve ${part('reload')}, total ${part('total')}`,
    );
    // HAProxy's share of serving, from its debug lines (BENCH_AGENT_ARGS='--log-level debug').
    const passes = stack.agent.logged('runtime changes applied').map((l) => l.ms as Record<string, number>);
    if (passes.length > 0) {
      const p50 = (k: string): number =>
        Math.round(
          percentile(
            passes.map((ms) => ms[k]!),
            50,
          ) * 10,
        ) / 10;
      console.log(
        `[${dataPlane}] ${passes.length} runtime passes, p50 ms: read and plan ${p50('readAndPlan')}, execute ${p50('execute')}, read back ${p50('readBack')}`,
      );
    }
    const split = rotationSplit(mainMade, stack.agent.logged('rotations served'));
    const rotationStages = Object.fromEntries(
      Object.entries(split).map(([stage, values]) => [stage, { p50: Math.round(percentile(values, 50)), p99: Math.round(percentile(values, 99)) }]),
    );
    // Each stage's percentiles are its own: the stages' p50s need not add up to the total's.
    console.log(`[${dataPlane}] rotation split, ${split.total!.length} of ${mainMade.length} rotations joined (ms):`);
    for (const [stage, { p50, p99 }] of Object.entries(rotationStages))
      console.log(`[${dataPlane}]   ${stage.padEnd(32)} p50 ${String(p50).padStart(5)}  p99 ${String(p99).padStart(5)}`);
    // What went wrong on the agent's side, counted by message: a failed request is explained
    // here (the server restarted, a change was refused, a reload timed out) or nowhere.
    const troubles = new Map<string, number>();
    for (const line of stack.agent.logs) {
      let parsed: { level?: number; msg?: string; err?: { message?: string }; reason?: string } | undefined;
      try {
        parsed = JSON.parse(line) as typeof parsed;
      } catch {
        parsed = undefined;
      }
      const what =
        parsed === undefined
          ? /ALERT|exit|signal|worker|Loading|fatal/i.test(line)
            ? line
                .replace(/ s[0-9a-f]{6,}\b/g, ' sHASH')
                .replace(/\d+/g, 'N')
                .slice(0, 160)
            : undefined
          : (parsed.level ?? 0) >= 40 || /started|stopped|reloading|exited|restart/.test(parsed.msg ?? '')
            ? `${parsed.msg} ${parsed.err?.message ?? ''} ${parsed.reason ?? ''}`.slice(0, 240)
            : undefined;
      if (what !== undefined && what.trim() !== '') troubles.set(what, (troubles.get(what) ?? 0) + 1);
    }
    for (const [what, count] of troubles) console.log(`[${dataPlane}] agent ${count}× ${what}`);
    return {
      requests,
      failed: load.failures.length,
      rotationP50Ms: Math.round(percentile(mainRotations, 50)),
      rotationP99Ms: Math.round(percentile(mainRotations, 99)),
      reqPerSec: Math.round(requests / elapsed),
      rotationStages,
      rssMb,
      cores,
      reloads,
      failures: load.failures,
      ...(pairs ? { pairs } : {}),
      rotations: rotated,
      adds,
      removes,
    };
  } finally {
    // Stopped, not killed: a profile (NODE_OPTIONS=--cpu-prof) is written on the way out.
    await stack.stop();
    await stack.agent.kill();
    await stack.controller.kill();
  }
}

/** BENCH_PAIRS windows of each kind, after the main run: the throughput ratio with the machine's drift cancelled. */
const pairCount = Number(process.env.BENCH_PAIRS ?? 0);
const pairWindowS = Number(process.env.BENCH_PAIR_SECONDS ?? 10);

interface PairedFigures {
  direct: number[];
  proxied: number[];
  ratios: number[];
  median: number;
}

/**
 * The direct client without churn and the proxy under churn, in alternating windows:
 * this machine's speed moves by half within minutes (the direct client gave 12,921 and
 * 7,584 req/s 70 s apart at the same CPU time), so each proxy window is compared with the
 * direct window just before it. The churn runs only in the proxy's windows, as in the
 * main run; each load has a second to warm up before it is counted.
 */
async function pairedWindows(startLoad: () => SteadyLoad, churnFor: (ms: number) => Promise<void>): Promise<PairedFigures | undefined> {
  if (!(pairCount > 0)) return undefined;
  const direct: number[] = [];
  const proxied: number[] = [];
  for (let k = 0; k < pairCount; k++) {
    direct.push((await directClient(pairWindowS)).reqPerSec);
    const load = startLoad();
    const churning = churnFor((pairWindowS + 1) * 1000);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const from = load.requests;
    const t = performance.now();
    await churning;
    proxied.push(Math.round((load.requests - from) / ((performance.now() - t) / 1000)));
    await load.stop();
  }
  const ratios = proxied.map((p, i) => p / direct[i]!);
  return { direct, proxied, ratios, median: percentile(ratios, 50) };
}

/** What the direct client did in its window: its rate, and the cores the bench process (client and partner) used. */
interface DirectFigures {
  reqPerSec: number;
  benchCores: number;
}

/**
 * The same clients straight to a partner, with the client certificate: what the proxies
 * are measured against. Once before the data planes and once after: a shared machine's
 * speed drifts over a run, and the mean of both is the baseline.
 */
async function directClient(windowS = Math.min(seconds, 15)): Promise<DirectFigures> {
  const pki = new PartnerPki('Direct Partner CA');
  const server = pki.issueServer({ cn: 'localhost', dnsNames: ['localhost'] });
  const client = pki.issueClient({ cn: 'direct.client' });
  const partner: MtlsPartner = await startMtlsPartner({ cert: server.certPem, key: server.keyPem, clientCA: pki.ca.certPem, record: false });
  const agent = new Agent({ keepAlive: true, maxSockets: clients, cert: client.certPem, key: client.keyPem, ca: pki.ca.certPem, servername: 'localhost' });
  const send = (port: number, r: { method: string; body?: string; headers?: Record<string, string> }): Promise<ProxyResponse> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: r.method, path: '/', headers: r.headers, agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, socket: req.socket! }));
      });
      req.on('error', reject);
      req.end(r.body);
    });
  const load = steadyLoad({ ports: () => [partner.port], clients, send });
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const from = load.requests;
  const cpuFrom = process.cpuUsage();
  const t = performance.now();
  await new Promise((resolve) => setTimeout(resolve, windowS * 1000));
  const elapsed = (performance.now() - t) / 1000;
  const cpu = process.cpuUsage(cpuFrom);
  const rate = (load.requests - from) / elapsed;
  await load.stop();
  agent.destroy();
  await partner.close();
  return { reqPerSec: Math.round(rate), benchCores: Number(((cpu.user + cpu.system) / 1e6 / elapsed).toFixed(2)) };
}

const describeDirect = (d: DirectFigures): string => `${d.reqPerSec} req/s, the bench process at ${d.benchCores} cores`;

process.env.LOG_LEVEL ??= 'info';
const cluster = await startControlPlane();
const controlPlaneNice = process.env.BENCH_CONTROL_PLANE_NICE;
if (controlPlaneNice !== undefined) {
  // Every thread: Linux keeps a nice value per thread, and a new one inherits its creator's.
  for (const pid of processesOf(controlPlaneBinaries, cluster.stateDir)) {
    for (const tid of readdirSync(`/proc/${pid}/task`)) setPriority(Number(tid), Number(controlPlaneNice));
  }
  console.log(`kube-apiserver and etcd run at nice ${controlPlaneNice} (BENCH_CONTROL_PLANE_NICE)`);
}
try {
  const pki = new PartnerPki('Churn Bench CA');
  let t = performance.now();
  const certs = prepareCertificates(pki);
  console.log(`certificates and PFX files made in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  t = performance.now();
  const directBefore = await directClient();
  console.log(`direct mTLS client, before: ${describeDirect(directBefore)} (${clients} keep-alive clients, GET and POST)`);
  const runs: Array<[string, Awaited<ReturnType<typeof runPlane>>]> = [];
  for (const plane of planes) runs.push([plane, await runPlane(plane, cluster, certs, pki)]);
  const directAfter = await directClient();
  console.log(`direct mTLS client, after: ${describeDirect(directAfter)}`);
  const directReqPerSec = Math.round((directBefore.reqPerSec + directAfter.reqPerSec) / 2);
  const directBenchCores = (directBefore.benchCores + directAfter.benchCores) / 2;
  console.log(`direct mTLS client: ${directReqPerSec} req/s, the mean of both`);
  const figures: Record<string, PlaneFigures> = {};
  for (const [plane, r] of runs) {
    figures[plane] = {
      requests: r.requests,
      failed: r.failed,
      rotationP50Ms: r.rotationP50Ms,
      rotationP99Ms: r.rotationP99Ms,
      reqPerSec: r.reqPerSec,
      rotationStages: r.rotationStages,
      rssMb: r.rssMb,
      cores: r.cores,
      ...(r.pairs ? { pairs: r.pairs } : {}),
    };
    const kinds = new Map<string, number>();
    for (const f of r.failures) kinds.set(`${f.method} ${f.what}`, (kinds.get(`${f.method} ${f.what}`) ?? 0) + 1);
    console.log(
      `[${plane}] ${seconds} s: ${r.adds} added, ${r.removes} removed, ${r.rotations} rotated; ${r.reloads} reloads\n` +
        `[${plane}] requests ${r.requests}, failed ${r.failed}${kinds.size ? ` (${[...kinds].map(([k, n]) => `${n}× ${k}`).join(', ')})` : ''}\n` +
        `[${plane}] rotation → partner sees the new serial: p50 ${r.rotationP50Ms} ms, p99 ${r.rotationP99Ms} ms\n` +
        `[${plane}] ${r.reqPerSec} req/s = ${(r.reqPerSec / directReqPerSec).toFixed(2)}× the direct client`,
    );
    // The load generator and the partner share one Node thread in the bench, so a machine
    // busy with the control plane starves them as much as the proxy: per core the bench
    // process got, against the direct client's, is the proxy's share with that counted.
    const perCore = r.reqPerSec / r.cores.bench / (directReqPerSec / directBenchCores);
    console.log(
      `[${plane}] per core of the bench process: ${Math.round(r.reqPerSec / r.cores.bench)} req/s (at ${r.cores.bench} cores) = ${perCore.toFixed(2)}× the direct client's ${Math.round(directReqPerSec / directBenchCores)} (at ${directBenchCores.toFixed(2)})`,
    );
  }
  if (figures.haproxy && figures.nginx) console.log(`HAProxy / nginx throughput: ${(figures.haproxy.reqPerSec / figures.nginx.reqPerSec).toFixed(2)}×`);
  console.log(
    JSON.stringify({
      bench: 'churn',
      dataPlanes: figures,
      directReqPerSec,
      direct: { before: directBefore, after: directAfter },
      seconds,
      clients,
      bindings: stableBindings,
    }),
  );
} finally {
  await cluster.stop();
}
