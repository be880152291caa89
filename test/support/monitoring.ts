// deploy/monitoring/ as the tests read it: the PrometheusRule's groups as a plain rule
// file, the dashboard's queries with Grafana's variables filled in, and promtool.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { dump, load } from 'js-yaml';
import { ControllerMetrics } from '../../src/metrics/metrics.ts';
import { AgentMetrics } from '../../src/proxy/agent-metrics.ts';
import { findPromtool } from '../harness/tools.ts';

const run = promisify(execFile);
const monitoringDir = join(resolve(import.meta.dirname, '../..'), 'deploy/monitoring');
export const prometheusRuleFile = join(monitoringDir, 'prometheus-rule.yaml');
export const dashboardFile = join(monitoringDir, 'grafana-dashboard.json');

export interface RuleGroup {
  name: string;
  rules: Array<{ alert?: string; record?: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }>;
}

/** spec.groups of the PrometheusRule: what the Prometheus Operator hands Prometheus as a rule file. */
export function prometheusRuleGroups(): RuleGroup[] {
  const rule = load(readFileSync(prometheusRuleFile, 'utf8')) as { apiVersion: string; kind: string; spec: { groups: RuleGroup[] } };
  if (rule.apiVersion !== 'monitoring.coreos.com/v1' || rule.kind !== 'PrometheusRule') {
    throw new Error(`${prometheusRuleFile}: expected a monitoring.coreos.com/v1 PrometheusRule`);
  }
  return rule.spec.groups;
}

/** A rule file (`groups:`) of these groups. */
export function ruleFile(groups: RuleGroup[]): string {
  return dump({ groups }, { lineWidth: -1 });
}

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid?: string };
  targets?: Array<{ expr?: string; refId?: string; datasource?: { uid?: string } }>;
  panels?: Panel[];
}

export interface Dashboard {
  uid: string;
  title: string;
  templating: { list: Array<{ name: string; type: string; query?: unknown; definition?: string }> };
  panels: Panel[];
}

export function readDashboard(): Dashboard {
  return JSON.parse(readFileSync(dashboardFile, 'utf8')) as Dashboard;
}

export interface DashboardQuery {
  panel: string;
  refId: string;
  /** As written in the dashboard, with Grafana's variables. */
  raw: string;
  /** With the variables filled in: what Prometheus is sent. */
  expr: string;
  /** A recording-rule name for it: dashboard:<panel id>:<refId>. */
  record: string;
}

/**
 * Every panel query, with Grafana's variables as Grafana fills them: $namespace with "All"
 * (its allValue, `.*`) and $__rate_interval with `rateInterval`.
 */
export function dashboardQueries(dashboard: Dashboard, rateInterval: string): DashboardQuery[] {
  const queries: DashboardQuery[] = [];
  const visit = (panels: Panel[]): void => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) {
        if (!target.expr) continue;
        const expr = target.expr.replaceAll('$__rate_interval', rateInterval).replaceAll('$namespace', '.*');
        queries.push({ panel: panel.title, refId: target.refId ?? '?', raw: target.expr, expr, record: `dashboard:panel_${panel.id}:${target.refId}` });
      }
      visit(panel.panels ?? []);
    }
  };
  visit(dashboard.panels);
  return queries;
}

/** The panels, rows' children included. */
export function dashboardPanels(dashboard: Dashboard): Panel[] {
  return dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** Every name the controller and the agent export, histograms' _bucket, _sum and _count included. */
export async function exportedMetricNames(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const registry of [new ControllerMetrics().registry, new AgentMetrics().registry]) {
    for (const metric of await registry.getMetricsAsJSON()) {
      names.add(metric.name);
      if (String(metric.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(metric.name + suffix);
    }
  }
  return names;
}

/** The product's metric names a PromQL expression reads. */
export function metricNamesIn(expr: string): string[] {
  return [...new Set(expr.match(/\bmtls_egress_[a-z_]+\b/g) ?? [])];
}

export interface PromtoolResult {
  code: number;
  output: string;
}

/** promtool, in `cwd` (rule_files in a test file are relative to it); resolves whatever the exit code. */
export async function runPromtool(args: readonly string[], cwd: string): Promise<PromtoolResult> {
  const promtool = await findPromtool();
  return run(promtool, args, { cwd, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }).then(
    (r) => ({ code: 0, output: r.stdout + r.stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? 1, output: (e.stdout ?? '') + (e.stderr ?? '') }),
  );
}

/** One scrape of a /metrics endpoint, and the target labels Prometheus would add to its series. */
export interface Scrape {
  /** Prometheus text exposition, as the endpoint served it. */
  text: string;
  /** When it was taken (wall clock). */
  at: Date;
  /** job, instance, namespace, pod: what a ServiceMonitor or PodMonitor adds. */
  target: Record<string, string>;
  /** honorLabels: the series' own labels win over the target's (monitors.yaml sets it for the controller). */
  honorLabels: boolean;
}

/** Series whose values are wall-clock times in Unix seconds. */
const timestampSeries = /^(mtls_egress_certificate_not_after_seconds|mtls_egress_agent_last_applied_timestamp_seconds|process_start_time_seconds)$/;

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  const pattern = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const [, name, raw] of text.matchAll(pattern)) labels[name!] = JSON.parse(`"${raw!}"`) as string;
  return labels;
}

function seriesSelector(name: string, labels: Record<string, string>): string {
  const parts = Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return `${name}{${parts.join(', ')}}`;
}

/**
 * Scrapes as `promtool test rules` input series: scrape k is the sample at k × interval.
 * The test's clock starts at 0, so a series holding a wall-clock time (a certificate's
 * notAfter, the last apply) is moved onto it: value − (scrape time) + k × interval keeps
 * exactly what the dashboard shows, the seconds between that time and the scrape. A
 * series missing from a scrape is `_` there, as a Prometheus scrape would leave a gap.
 */
export function inputSeries(scrapes: Scrape[][], intervalSeconds: number): Array<{ series: string; values: string }> {
  const values = new Map<string, string[]>();
  scrapes.forEach((round, k) => {
    for (const scrape of round) {
      const shift = k * intervalSeconds - Math.floor(scrape.at.getTime() / 1000);
      for (const line of scrape.text.split('\n')) {
        if (line === '' || line.startsWith('#')) continue;
        const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)$/.exec(line);
        if (!match) throw new Error(`not a sample line: ${line}`);
        const [, name, labelText, valueText] = match;
        const own = parseLabels(labelText ?? '');
        const labels = scrape.honorLabels ? { ...scrape.target, ...own } : { ...own, ...scrape.target };
        let value = Number(valueText);
        if (!Number.isFinite(value)) continue;
        if (timestampSeries.test(name!)) value += shift;
        const key = seriesSelector(name!, labels);
        const row = values.get(key) ?? Array<string>(scrapes.length).fill('_');
        row[k] = String(value);
        values.set(key, row);
      }
    }
  });
  return [...values].map(([series, row]) => ({ series, values: row.join(' ') }));
}
