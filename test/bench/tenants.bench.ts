// npm run bench:tenants — one team's broken bindings against another team's new one, on
// the real API server with the real controller. A namespace plants BENCH_BROKEN (120)
// bindings that name a Secret that does not exist; then another namespace creates a
// binding with its Secret, BENCH_ROUNDS (5) times, and the bench reports how long each took
// to be Ready, and how many listener ports the broken namespace holds (goal: none).
//
// The listener range is BENCH_RANGE ports (default 120, as many as the broken bindings):
// before a port went only to a binding whose Secret exists, those 120 held the whole range
// and the other team's binding waited as ListenerPortsExhausted for ever.
//
//   npm run bench:tenants
//   BENCH_BROKEN=1000 BENCH_RANGE=1000 npm run bench:tenants
//
// Status only (--data-plane none): Ready is then the controller's own verdict, with no
// proxy in the loop. Prints figures, then one JSON line:
//   {"bench":"tenants","broken":N,"range":N,"brokenSettledMs":N,"readyMs":{"p50":N,"max":N},"portsHeldByBroken":N}

import { performance } from 'node:perf_hooks';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { startControlPlane } from '../harness/control-plane.ts';
import { pollUntil } from '../harness/poll.ts';
import { startController } from '../support/controller-process.ts';
import { hasReason, TestKube } from '../support/kube.ts';
import { PartnerPki } from '../support/partner-pki.ts';

const broken = Number(process.env.BENCH_BROKEN ?? 120);
const rangeSize = Number(process.env.BENCH_RANGE ?? 120);
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const password = 'tenants-bench-password';

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const cluster = await startControlPlane();
try {
  const kube = new TestKube(cluster.kubeconfig);
  const [system, hog, team] = await Promise.all([kube.namespace('tenants-sys'), kube.namespace('tenants-hog'), kube.namespace('tenants-team')]);
  const pki = new PartnerPki();
  const spec = (secret: string) => ({ host: 'localhost', certificate: { secretRef: { name: secret }, passwordSecretRef: { name: secret } } });

  const controller = await startController({
    kubeConfigPath: cluster.kubeConfigPath,
    namespaces: [system, hog, team],
    id: 'tenants',
    args: ['--listener-ports', `10000-${10000 + rangeSize - 1}`, '--log-level', 'info'],
  });
  try {
    let t = performance.now();
    const names = Array.from({ length: broken }, (_, i) => `broken-${String(i).padStart(4, '0')}`);
    for (let i = 0; i < names.length; i += 20) await Promise.all(names.slice(i, i + 20).map((name) => kube.createBinding(hog, name, spec(`missing-${name}`))));
    const settled = await pollUntil(
      async () => {
        const list = await kube.client.list<{ status?: { listenerPort?: number; conditions?: Array<{ type: string; reason: string }> } }>(
          `/apis/mtls-egress.io/v1alpha1/namespaces/${hog}/clientcertificatebindings`,
        );
        const told = list.items.filter((b) => b.status?.conditions?.some((c) => c.type === 'Ready' && c.reason === reasons.SecretNotFound));
        return told.length === broken ? list.items : undefined;
      },
      { what: `${broken} broken bindings SecretNotFound`, timeoutMs: 300_000, intervalMs: 250 },
    );
    const brokenSettledMs = Math.round(performance.now() - t);
    const portsHeldByBroken = settled.filter((b) => b.status?.listenerPort !== undefined).length;
    console.log(
      `${broken} broken bindings (Secret missing) told SecretNotFound in ${(brokenSettledMs / 1000).toFixed(1)} s; they hold ${portsHeldByBroken} ports`,
    );

    const readyMs: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const name = `new-${round}`;
      await kube.putPfxSecret(team, `${name}-pfx`, pki.issueClient({ cn: `${name}.client` }), password);
      t = performance.now();
      await kube.createBinding(team, name, spec(`${name}-pfx`));
      const b = await kube.waitForBinding(team, name, 'Ready', hasReason(reasons.BindingReady), 60_000);
      readyMs.push(Math.round(performance.now() - t));
      console.log(`another namespace's binding ${name}: Ready in ${readyMs.at(-1)} ms on port ${b.status?.listenerPort}`);
    }
    const figures = {
      bench: 'tenants',
      broken,
      range: rangeSize,
      brokenSettledMs,
      readyMs: { p50: percentile(readyMs, 50), max: Math.max(...readyMs) },
      portsHeldByBroken,
    };
    console.log(
      `with ${broken} broken bindings in one namespace, another namespace's new binding is Ready in p50 ${figures.readyMs.p50} ms, max ${figures.readyMs.max} ms (${rounds} rounds)`,
    );
    console.log(JSON.stringify(figures));
  } finally {
    await controller.kill();
  }
} finally {
  await cluster.stop();
}
