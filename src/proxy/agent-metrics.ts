import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { watchErrorsCounter } from '../metrics/metrics.ts';

/** Every metric the proxy agent exports, on a registry of its own. */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly applies = new Counter({
    name: 'mtls_egress_agent_applies_total',
    help: 'Config applies by result: applied, rejected (nginx -t or the manifest refused it; waits for new input), failed (retried with backoff).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly applyDuration = new Histogram({
    name: 'mtls_egress_agent_apply_duration_seconds',
    help: 'From the start of an apply to the confirmed reload: write, nginx -t, swap, reload.',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly lastApplied = new Gauge({
    name: 'mtls_egress_agent_last_applied_timestamp_seconds',
    help: 'When nginx last took a new config, as Unix seconds.',
    registers: [this.registry],
  });
  readonly nginxExits = new Counter({
    name: 'mtls_egress_agent_nginx_unexpected_exits_total',
    help: 'Times the nginx the agent manages exited on its own (it is restarted with backoff).',
    registers: [this.registry],
  });
  readonly watchErrors = watchErrorsCounter(this.registry);

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
