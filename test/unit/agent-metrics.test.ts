import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AgentMetrics } from '../../src/proxy/agent-metrics.ts';

const series = async (metrics: AgentMetrics): Promise<string | undefined> =>
  (await metrics.registry.metrics()).split('\n').find((line) => line.startsWith('mtls_egress_agent_haproxy_dropped_logs '));

test('HAProxy’s dropped log lines are read at scrape time; a failed read keeps the last value and fails no scrape', async () => {
  const metrics = new AgentMetrics();
  const answers: Array<() => Promise<number | undefined>> = [
    async () => 17,
    async () => Promise.reject(new Error('HAProxy restarting')),
    async () => undefined,
    async () => 3,
  ];
  metrics.haproxyDroppedLogsSource = () => answers.shift()!();
  assert.equal(await series(metrics), 'mtls_egress_agent_haproxy_dropped_logs 17');
  assert.equal(await series(metrics), 'mtls_egress_agent_haproxy_dropped_logs 17');
  assert.equal(await series(metrics), 'mtls_egress_agent_haproxy_dropped_logs 17');
  assert.equal(await series(metrics), 'mtls_egress_agent_haproxy_dropped_logs 3');
});
