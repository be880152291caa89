// The dashboard and the alerts on real metrics: the controller and the agent (running
// HAProxy, then nginx) against a real API server and a real mTLS partner, with bindings in
// five states. Their /metrics are scraped three times, a rotation apart, as monitors.yaml
// scrapes them, and loaded into `promtool test rules` as input series. promtool then
// evaluates every dashboard query and the PrometheusRule's alerts on them: each query
// parses and returns series, the key panels return exactly the bindings made here, and
// the alerts fire for the bindings they are about and for no other.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dump } from 'js-yaml';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { useControlPlane } from '../harness/use-control-plane.ts';
import { startEgressStack, type EgressStack } from '../support/egress-stack.ts';
import { hasReason } from '../support/kube.ts';
import {
  dashboardQueries,
  inputSeries,
  prometheusRuleGroups,
  readDashboard,
  ruleFile,
  runPromtool,
  type DashboardQuery,
  type Scrape,
} from '../support/monitoring.ts';

const cluster = await useControlPlane();
const day = 86_400_000;
/** Seconds between scrapes in the test's time; Grafana's $__rate_interval is four scrape intervals. */
const interval = 60;
const rateInterval = '4m';
const evalTime = `${2 * interval}s`;

async function scrape(stack: EgressStack): Promise<Scrape[]> {
  const get = async (port: number): Promise<{ text: string; at: Date }> => {
    const at = new Date();
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(res.status, 200);
    return { text: await res.text(), at };
  };
  const controller = await get(stack.controller.healthPort);
  const agent = await get(stack.agent.healthPort);
  return [
    {
      ...controller,
      target: { job: 'mtls-egress-controller-metrics', instance: '10.244.0.10:8080', namespace: stack.proxyNamespace, pod: 'mtls-egress-controller-0' },
      honorLabels: true,
    },
    {
      ...agent,
      target: { job: 'mtls-egress-system/mtls-egress-proxy', instance: '10.244.0.11:8082', namespace: stack.proxyNamespace, pod: stack.proxyPod },
      honorLabels: false,
    },
  ];
}

async function rotateHealthy(stack: EgressStack): Promise<void> {
  const next = stack.partnerPki.issueClient({ cn: 'healthy.client' });
  await stack.rotate('healthy', next);
  await stack.kube.waitForBinding(
    stack.namespace,
    'healthy',
    `Ready with serial ${next.serial}`,
    (b) => hasReason(reasons.BindingReady)(b) && b.status?.certificate?.serialNumber === next.serial,
  );
}

/** Bindings in five states, then three scrapes a rotation apart: the counters and histograms move between them. */
async function scrapeScenario(stack: EgressStack): Promise<Scrape[][]> {
  const { kube, namespace: ns, partnerPki: pki, password } = stack;
  const now = Date.now();
  await stack.putBinding('healthy', pki.issueClient({ cn: 'healthy.client' }));
  await stack.putBinding('expiring', pki.issueClient({ cn: 'expiring.client', notAfter: new Date(now + 10 * day) }));
  await stack.putBinding('expired', pki.issueClient({ cn: 'expired.client', notBefore: new Date(now - 30 * day), notAfter: new Date(now - day) }));
  await kube.putPfxSecret(ns, 'wrong-pfx', pki.issueClient({ cn: 'wrong.client' }), password, { storedPassword: 'not-the-password' });
  await kube.createBinding(ns, 'wrong-password', {
    host: 'localhost',
    certificate: { secretRef: { name: 'wrong-pfx' }, passwordSecretRef: { name: 'wrong-pfx' } },
  });
  await kube.createBinding(ns, 'no-secret', { host: 'localhost', certificate: { secretRef: { name: 'absent' } } });
  for (const [name, reason] of [
    ['healthy', reasons.BindingReady],
    ['expiring', reasons.CertificateExpiringSoon],
    ['expired', reasons.CertificateExpired],
    ['wrong-password', reasons.PasswordIncorrect],
    ['no-secret', reasons.SecretNotFound],
  ] as const) {
    await kube.waitForBinding(ns, name, reason, hasReason(reason));
  }
  const scrapes = [await scrape(stack)];
  await rotateHealthy(stack);
  scrapes.push(await scrape(stack));
  await rotateHealthy(stack);
  scrapes.push(await scrape(stack));
  return scrapes;
}

interface ExprTest {
  expr: string;
  eval_time: string;
  exp_samples: Array<{ labels: string; value: number }>;
}

/** Runs promtool test rules on the scrapes, with the PrometheusRule's groups loaded, and expects every test to pass. */
async function promtoolOnScrapes(scrapes: Scrape[][], tests: ExprTest[]): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mtls-egress-scrapes-'));
  writeFileSync(join(dir, 'rules.yaml'), ruleFile(prometheusRuleGroups()));
  writeFileSync(
    join(dir, 'scrapes.test.yaml'),
    dump(
      {
        rule_files: ['rules.yaml'],
        evaluation_interval: `${interval}s`,
        tests: [{ name: 'real scrapes', interval: `${interval}s`, input_series: inputSeries(scrapes, interval), promql_expr_test: tests }],
      },
      { lineWidth: -1 },
    ),
  );
  const r = await runPromtool(['test', 'rules', 'scrapes.test.yaml'], dir);
  assert.equal(r.code, 0, `${r.output}\n(input in ${dir})`);
}

const returnsSeries = (q: DashboardQuery): ExprTest => ({ expr: `count(${q.expr}) > bool 0`, eval_time: evalTime, exp_samples: [{ labels: '{}', value: 1 }] });
const one = (expr: string, value: number, labels = '{}'): ExprTest => ({ expr, eval_time: evalTime, exp_samples: [{ labels, value }] });
const none = (expr: string): ExprTest => ({ expr, eval_time: evalTime, exp_samples: [] });

const queries = dashboardQueries(readDashboard(), rateInterval);
function panel(title: string, refId = 'A'): DashboardQuery {
  const q = queries.find((x) => x.panel === title && x.refId === refId);
  assert.ok(q, `panel ${title} ${refId}`);
  return q;
}

for (const dataPlane of ['haproxy', 'nginx'] as const) {
  describe(`the dashboard and the alerts on scrapes of the real controller and agent (${dataPlane})`, () => {
    let stack: EgressStack;
    let scrapes: Scrape[][];

    before(async () => {
      stack = await startEgressStack({ kubeconfig: cluster.kubeconfig, kubeConfigPath: cluster.kubeConfigPath, dataPlane });
      scrapes = await scrapeScenario(stack);
    });

    after(() => stack?.stop());

    test('every dashboard query returns series', async () => {
      await promtoolOnScrapes(scrapes, queries.map(returnsSeries));
    });

    test('the histogram panels have data: every latency quantile is a number', async () => {
      const quantiles = queries.filter((q) => q.expr.startsWith('histogram_quantile('));
      assert.ok(quantiles.length >= 4);
      // NaN compares false: count(q >= 0) counts the quantiles that are numbers.
      await promtoolOnScrapes(
        scrapes,
        quantiles.map((q) => one(`count((${q.expr}) >= 0) > bool 0`, 1)),
      );
    });

    test('the panels count exactly the bindings made here', async () => {
      const daysLeft = panel('Certificates by days left').expr;
      await promtoolOnScrapes(scrapes, [
        one(panel('Bindings').expr, 5),
        one(panel('Not Ready').expr, 3),
        // Expiring within 14 days: the expiring one, and the expired one.
        one(panel('Expiring within 14 days').expr, 2),
        one(panel('Controller leader').expr, 1),
        {
          expr: panel('Bindings by reason').expr,
          eval_time: evalTime,
          exp_samples: [
            reasons.BindingReady,
            reasons.CertificateExpiringSoon,
            reasons.CertificateExpired,
            reasons.PasswordIncorrect,
            reasons.SecretNotFound,
          ].map((reason) => ({ labels: `{reason="${reason}"}`, value: 1 })),
        },
        // Certificates by days left: only the three that decoded, each in its place.
        one(`count(${daysLeft})`, 3),
        one(`count(${daysLeft} > 9.9 < 10)`, 1),
        one(`count(${daysLeft} > -1.01 < -0.99)`, 1),
        one(`count(${daysLeft} > 364)`, 1),
        // The agent applied configurations; no error of any kind.
        one(`count(${panel('Agent applies per second').expr})`, 1),
        ...['A', 'B', 'C', 'D'].map((refId) => none(`(${panel('Data-plane errors', refId).expr}) > 0`)),
      ]);
    });

    test(
      dataPlane === 'haproxy' ? 'the rotations went through HAProxy’s runtime API, with no reload' : 'the rotations reloaded nginx, with no runtime API change',
      async () => {
        const reloads = panel('Data-plane reloads and runtime changes', 'A').expr;
        const runtime = panel('Data-plane reloads and runtime changes', 'B').expr;
        await promtoolOnScrapes(
          scrapes,
          dataPlane === 'haproxy'
            ? [none(`(${reloads}) > 0`), one(`count((${runtime}) > 0) > bool 0`, 1)]
            : [one(`count((${reloads}) > 0)`, 1), none(`(${runtime}) > 0`)],
        );
      },
    );

    test('the alerts fire for their bindings and no other: expiring, expired; not-ready still pending', async () => {
      const ns = stack.namespace;
      const alert = (name: string, state: string, binding: string, severity: string) => ({
        labels: `{__name__="ALERTS", alertname="${name}", alertstate="${state}", host="localhost", name="${binding}", namespace="${ns}", severity="${severity}"}`,
        value: 1,
      });
      await promtoolOnScrapes(scrapes, [
        {
          expr: 'ALERTS{alertname="PartnerCertificateExpiresSoon"}',
          eval_time: evalTime,
          exp_samples: [alert('PartnerCertificateExpiresSoon', 'firing', 'expiring', 'warning')],
        },
        {
          expr: 'ALERTS{alertname="PartnerCertificateExpired"}',
          eval_time: evalTime,
          exp_samples: [alert('PartnerCertificateExpired', 'firing', 'expired', 'critical')],
        },
        // For 10 minutes first; the expired binding has its own alert.
        {
          expr: 'ALERTS{alertname="EgressBindingNotReady"}',
          eval_time: evalTime,
          exp_samples: [
            alert('EgressBindingNotReady', 'pending', 'no-secret', 'critical'),
            alert('EgressBindingNotReady', 'pending', 'wrong-password', 'critical'),
          ],
        },
        none('ALERTS{alertname=~"EgressProxyApplyFailing|EgressControllerNoLeader"}'),
      ]);
    });
  });
}
