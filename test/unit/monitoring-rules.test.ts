// deploy/monitoring/ checked with the real promtool: the PrometheusRule's groups pass
// `promtool check rules`, and its alerts behave as test/fixtures/monitoring/alerts.test.yaml
// says under `promtool test rules` (an expiring, an expired and a healthy certificate;
// bindings not Ready; proxy apply failures; no leader). Every metric the rules and the
// dashboard read is one the controller or the agent exports, and every dashboard query
// parses. test/e2e/monitoring-dashboard.test.ts runs the queries on real scrapes.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { load } from 'js-yaml';
import {
  dashboardPanels,
  dashboardQueries,
  exportedMetricNames,
  metricNamesIn,
  prometheusRuleGroups,
  readDashboard,
  ruleFile,
  runPromtool,
} from '../support/monitoring.ts';

const fixture = resolve(import.meta.dirname, '../fixtures/monitoring/alerts.test.yaml');
const groups = prometheusRuleGroups();
const alerts = groups.flatMap((g) => g.rules.flatMap((r) => (r.alert ? [r] : [])));

/** A directory with rules.yaml (the PrometheusRule's groups) and a copy of the alert tests beside it. */
function ruleDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mtls-egress-rules-'));
  writeFileSync(join(dir, 'rules.yaml'), ruleFile(groups));
  copyFileSync(fixture, join(dir, 'alerts.test.yaml'));
  return dir;
}

describe('the PrometheusRule', () => {
  test('has the expiry, expired, not-ready and proxy-apply-failure alerts', () => {
    for (const name of ['PartnerCertificateExpiresSoon', 'PartnerCertificateExpired', 'EgressBindingNotReady', 'EgressProxyApplyFailing']) {
      assert.ok(
        alerts.some((a) => a.alert === name),
        name,
      );
    }
  });

  test('promtool check rules passes on its groups', async () => {
    const r = await runPromtool(['check', 'rules', 'rules.yaml'], ruleDir());
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, new RegExp(`SUCCESS: ${alerts.length} rules found`));
  });

  test('promtool test rules: every alert fires, and stays quiet, as alerts.test.yaml says', async () => {
    const r = await runPromtool(['test', 'rules', 'alerts.test.yaml'], ruleDir());
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /SUCCESS/);
  });

  test('every alert is tested, firing at least once and quiet at least once', () => {
    const tests = (load(readFileSync(fixture, 'utf8')) as { tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts: unknown[] }> }> }).tests;
    const cases = tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const { alert } of alerts) {
      const mine = cases.filter((c) => c.alertname === alert);
      assert.ok(
        mine.some((c) => c.exp_alerts.length > 0),
        `${alert} fires in a test`,
      );
      assert.ok(
        mine.some((c) => c.exp_alerts.length === 0),
        `${alert} stays quiet in a test`,
      );
    }
  });

  test('every alert has a severity, a summary and a description', () => {
    for (const a of alerts) {
      assert.match(a.labels?.severity ?? '', /^(warning|critical)$/, a.alert);
      assert.ok(a.annotations?.summary, `${a.alert} summary`);
      assert.ok(a.annotations?.description, `${a.alert} description`);
    }
  });
});

describe('the rules and the dashboard read only metrics that exist', () => {
  test('every mtls_egress_* name in an alert or a dashboard query is exported by the controller or the agent', async () => {
    const exported = await exportedMetricNames();
    const dashboard = readDashboard();
    const exprs = [
      ...alerts.map((a) => [a.alert!, a.expr] as const),
      ...dashboardQueries(dashboard, '1m').map((q) => [`${q.panel} ${q.refId}`, q.expr] as const),
      ...dashboard.templating.list.flatMap((v) => (v.definition ? [[`variable ${v.name}`, v.definition] as const] : [])),
    ];
    for (const [where, expr] of exprs) {
      const names = metricNamesIn(expr);
      assert.ok(names.length > 0, `${where} reads a product metric`);
      for (const name of names) assert.ok(exported.has(name), `${where}: ${name} is not exported`);
    }
  });
});

describe('the Grafana dashboard', () => {
  const dashboard = readDashboard();

  test('has the panels the issue asks for', () => {
    const titles = dashboardPanels(dashboard).map((p) => p.title);
    for (const title of [
      'Certificates by days left',
      'Bindings by reason',
      'Reconciles per second',
      'Reconcile latency',
      'Agent applies per second',
      'Data-plane errors',
    ]) {
      assert.ok(titles.includes(title), title);
    }
  });

  test('unique panel ids, and every query on the chosen data source', () => {
    const panels = dashboardPanels(dashboard);
    assert.equal(new Set(panels.map((p) => p.id)).size, panels.length);
    for (const p of panels.filter((x) => x.type !== 'row')) {
      assert.equal(p.datasource?.uid, '${datasource}', p.title);
      for (const t of p.targets ?? []) assert.equal(t.datasource?.uid, '${datasource}', `${p.title} ${t.refId}`);
    }
    assert.ok(dashboard.templating.list.some((v) => v.name === 'datasource' && v.type === 'datasource'));
  });

  test('promtool check rules parses every query (as recording rules)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mtls-egress-dashboard-'));
    const queries = dashboardQueries(dashboard, '1m');
    writeFileSync(join(dir, 'dashboard.yaml'), ruleFile([{ name: 'dashboard', rules: queries.map((q) => ({ record: q.record, expr: q.expr })) }]));
    const r = await runPromtool(['check', 'rules', 'dashboard.yaml'], dir);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, new RegExp(`SUCCESS: ${queries.length} rules found`));
  });
});
