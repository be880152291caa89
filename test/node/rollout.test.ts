import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { useNodeCluster } from '../harness/use-node-cluster.ts';
import { InClusterStory, systemNamespace } from '../support/in-cluster-story.ts';
import { failuresBetween, proxyPods, RolloutLoad, setUpRolloutStage, waitForAnswers, waitSettled } from '../support/rollout-load.ts';

// A rollout of the proxy Deployment under load, on the real node: the kubelet stops each old
// pod (SIGTERM: the agent fails /readyz, keeps serving for its drain delay, then HAProxy
// stops accepting and tells each keep-alive connection "Connection: close"), the endpoints
// and CoreDNS drop it, and a new pod becomes Ready only once it serves the binding. The
// application's client re-resolves the headless Service for each new connection and
// retries nothing. Every request must be answered. `npm run bench:rollout` measures this
// and the other ways a replica goes away (deleted, evicted, SIGKILLed).

const cluster = await useNodeCluster();
const story = new InClusterStory(cluster);
const replicas = 3;
let namespace: string;
let endpoint: string;

before(async () => {
  await story.uninstall();
  ({ namespace, endpoint } = await setUpRolloutStage(story, { replicas }));
});

after(() => story.uninstall());

describe('on a real node: the proxy Deployment rolled under keep-alive load', () => {
  test('kubectl rollout restart of 3 proxy replicas: every pod replaced, not one request failed', async () => {
    const load = new RolloutLoad(cluster, namespace, 'app', endpoint, { clients: 8, pauseMs: 20 });
    try {
      const before = await waitForAnswers(load, await load.snapshot('start'), 200);
      const old = new Set((await proxyPods(story.workloads)).map((p) => p.name));
      await story.workloads.kubectlOk(['rollout', 'restart', '--namespace', systemNamespace, 'deployment/mtls-egress-proxy']);
      await story.workloads.kubectlOk(['rollout', 'status', '--namespace', systemNamespace, 'deployment/mtls-egress-proxy', '--timeout=300s']);
      // Every old pod gone (its drain over), and the new ones still answering.
      const pods = await waitSettled(story.workloads, replicas);
      assert.ok(
        pods.every((p) => !old.has(p.name)),
        'every pod was replaced',
      );
      const settled = await waitForAnswers(load, await load.snapshot('settled'), 200);
      const final = await load.stop();
      const during = failuresBetween(before, settled);
      assert.deepEqual({ failed: final.failed, errors: final.errors }, { failed: 0, errors: {} }, 'no request failed, start to end');
      assert.ok(during.ok > 0);
      // The old replicas asked their clients to move on, rather than closing under them.
      assert.ok(final.closedByProxy >= 1, `responses with Connection: close: ${final.closedByProxy}`);
      // The new replicas took the load.
      const newIps = new Set(pods.map((p) => p.ip));
      assert.ok(
        Object.keys(final.okByAddress).some((ip) => newIps.has(ip)),
        `answered by ${Object.keys(final.okByAddress).join(', ')}`,
      );
    } finally {
      await load.stop().catch(() => undefined);
    }
  });
});
