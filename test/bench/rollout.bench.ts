// npm run bench:rollout — what a proxy replica going away costs, on the test node, under
// keep-alive load from an application Pod (test/support/rollout-load.ts: re-resolves the
// headless Service for each new connection, one address at random, no retries) on one
// binding to a partner Pod that demands the client certificate:
//   1. `kubectl rollout restart` of the proxy Deployment (a helm upgrade that changes the pods);
//   2. a proxy pod deleted, as `kubectl delete pod` or a drain without the eviction API does;
//   3. a proxy pod evicted (policy/v1 Eviction, what `kubectl drain` sends), and a second
//      eviction at once, which the PodDisruptionBudget must refuse until the first pod's
//      replacement is Ready;
//   4. a proxy pod's container SIGKILLed through containerd: no drain; only the requests
//      in flight on it may fail: the failures on its address are printed beside the
//      connections the clients held to it.
// BENCH_REPLICAS (default 3), BENCH_CLIENTS (8), BENCH_PAUSE_MS (20: each client's pause
// between requests). Uses the node cluster `npm run cluster:up -- --node` runs, or starts
// one. Prints a table and one JSON line.
import { performance } from 'node:perf_hooks';
import { attachOrStartNodeCluster } from '../harness/use-node-cluster.ts';
import { pollUntil } from '../harness/poll.ts';
import { InClusterStory, systemNamespace } from '../support/in-cluster-story.ts';
import {
  evict,
  failuresBetween,
  killContainer,
  proxyPods,
  RolloutLoad,
  setUpRolloutStage,
  waitForAnswers,
  waitSettled,
  type LoadCounts,
} from '../support/rollout-load.ts';

const replicas = Number(process.env.BENCH_REPLICAS ?? 3);
const clients = Number(process.env.BENCH_CLIENTS ?? 8);
const pauseMs = Number(process.env.BENCH_PAUSE_MS ?? 20);

interface Row {
  scenario: string;
  seconds: number;
  answered: number;
  failed: number;
  errors: Record<string, number>;
  /** Responses that told the client to close its connection and move on. */
  closedByProxy: number;
  connections: number;
  note: string;
}

const { cluster, started } = await attachOrStartNodeCluster();
const rows: Row[] = [];
try {
  const story = new InClusterStory(cluster, { deleteAfterTests: false });
  const kubectl = (args: string[]): Promise<string> => story.workloads.kubectlOk(args);
  await story.uninstall();
  const { namespace, endpoint } = await setUpRolloutStage(story, { replicas });
  const load = new RolloutLoad(cluster, namespace, 'app', endpoint, { clients, pauseMs });

  const measure = async (scenario: string, act: () => Promise<string>): Promise<void> => {
    const before: LoadCounts = await waitForAnswers(load, await load.snapshot(`${scenario} warm`), 200);
    const t = performance.now();
    const note = await act();
    await waitSettled(story.workloads, replicas);
    const seconds = (performance.now() - t) / 1000;
    // Some answers from the settled replicas, so a failure that comes late is counted here.
    const after = await waitForAnswers(load, await load.snapshot(`${scenario} settled`), 200);
    const d = failuresBetween(before, after);
    rows.push({
      scenario,
      seconds: Number(seconds.toFixed(1)),
      answered: d.ok,
      failed: d.failed,
      errors: d.errors,
      closedByProxy: after.closedByProxy - before.closedByProxy,
      connections: after.connections - before.connections,
      note,
    });
    console.error(`bench:rollout: ${scenario}: ${d.failed} failed of ${d.ok + d.failed} ${JSON.stringify(d.errors)} ${note}`);
  };

  await measure('rollout restart', async () => {
    await kubectl(['rollout', 'restart', '--namespace', systemNamespace, 'deployment/mtls-egress-proxy']);
    await kubectl(['rollout', 'status', '--namespace', systemNamespace, 'deployment/mtls-egress-proxy', '--timeout=300s']);
    return `${replicas} pods replaced`;
  });

  await measure('pod deleted', async () => {
    const [pod] = await proxyPods(story.workloads);
    await kubectl(['delete', 'pod', '--namespace', systemNamespace, pod!.name, '--wait=false']);
    return `${pod!.name}`;
  });

  await measure('pod evicted', async () => {
    const [first, second] = await proxyPods(story.workloads);
    const firstStatus = await evict(story.kube, first!.name);
    if (firstStatus !== 201) throw new Error(`the first eviction got ${firstStatus}`);
    // At once, as a drain of a second node would: the budget (maxUnavailable 1) must
    // refuse it while the first pod's replacement is not Ready. The eviction itself
    // lowers the budget's disruptionsAllowed, so one try says it.
    const secondStatus = await evict(story.kube, second!.name);
    const refused = secondStatus === 429 ? 'a second eviction at once: 429, refused by the budget' : `a second eviction at once: ${secondStatus}, NOT refused`;
    return `${first!.name}; ${refused}`;
  });

  await measure('container SIGKILLed', async () => {
    const [pod] = await proxyPods(story.workloads);
    const atKill = await load.snapshot('kill');
    await killContainer(cluster, pod!.containerId);
    await pollUntil(
      async () => {
        const now = (await proxyPods(story.workloads)).find((p) => p.name === pod!.name);
        return now && now.restarts > pod!.restarts && now.ready ? true : undefined;
      },
      { what: `${pod!.name} restarted and Ready`, timeoutMs: 120_000, intervalMs: 250 },
    );
    const after = await load.snapshot('killed');
    const onIt = (after.failedByAddress[pod!.ip] ?? 0) - (atKill.failedByAddress[pod!.ip] ?? 0);
    return `${pod!.name}: ${atKill.open[pod!.ip] ?? 0} of the clients' connections on it, ${atKill.inflight[pod!.ip] ?? 0} requests in flight a moment before the kill; failures on its address ${onIt}, elsewhere ${after.failed - atKill.failed - onIt}`;
  });

  const final = await load.stop();

  const pad = (text: string, n: number): string => text.padEnd(n);
  console.log(
    `${replicas} proxy replicas (HAProxy), ${clients} keep-alive clients, ${pauseMs} ms pause; one binding; the partner a Pod checking the client certificate`,
  );
  console.log(
    `${pad('scenario', 22)}${pad('seconds', 9)}${pad('answered', 10)}${pad('failed', 24)}${pad('Connection: close', 19)}${pad('connections', 13)}note`,
  );
  for (const r of rows) {
    const errors = Object.keys(r.errors).length ? ` ${JSON.stringify(r.errors)}` : '';
    console.log(
      `${pad(r.scenario, 22)}${pad(String(r.seconds), 9)}${pad(String(r.answered), 10)}${pad(`${r.failed}${errors}`, 24)}${pad(String(r.closedByProxy), 19)}${pad(String(r.connections), 13)}${r.note}`,
    );
  }
  console.log(`whole run: ${final.ok} answered, ${final.failed} failed`);
  console.log(
    JSON.stringify({
      bench: 'rollout',
      replicas,
      clients,
      pauseMs,
      scenarios: rows,
      total: { answered: final.ok, failed: final.failed, errors: final.errors },
    }),
  );
  await story.uninstall();
  await story.workloads.kubectl(['delete', 'namespace', namespace, '--wait=false']);
} finally {
  await started?.stop();
}
