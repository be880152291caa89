import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { watchErrorsCounter } from '../metrics/metrics.ts';

/** Every metric the proxy agent exports, on a registry of its own. */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly applies = new Counter({
    name: 'mtls_egress_agent_applies_total',
    help: 'Config applies by result: applied, rejected (nginx -t, haproxy -c or the manifest refused it; waits for new input), failed (retried with backoff).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly applyDuration = new Histogram({
    name: 'mtls_egress_agent_apply_duration_seconds',
    help: 'From the start of an apply until the data plane serves it: write, test, swap, reload or runtime changes, read back.',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly rotationStage = new Histogram({
    name: 'mtls_egress_agent_rotation_stage_seconds',
    help:
      "A rotation served, by stage: read (the controller's Secret watch saw the version → its data read), decode, write (decoded → the binding object sent, " +
      "its turn in the write budget taken), watch (sent → this agent's watch delivered it; spans two clocks), apply (delivered → the data plane serves it), total.",
    labelNames: ['stage'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly lastApplied = new Gauge({
    name: 'mtls_egress_agent_last_applied_timestamp_seconds',
    help: 'When the data plane last took a new config, as Unix seconds.',
    registers: [this.registry],
  });
  readonly dataPlaneExits = new Counter({
    name: 'mtls_egress_agent_data_plane_unexpected_exits_total',
    help: 'Times the nginx or HAProxy the agent manages exited on its own (it is restarted with backoff).',
    labelNames: ['data_plane'] as const,
    registers: [this.registry],
  });
  readonly reloads = new Counter({
    name: 'mtls_egress_agent_reloads_total',
    help: 'Reloads of the data plane. nginx reloads on every change; HAProxy only when the listener range or addresses change.',
    labelNames: ['data_plane'] as const,
    registers: [this.registry],
  });
  readonly runtimeChanges = new Counter({
    name: 'mtls_egress_agent_runtime_changes_total',
    help: 'HAProxy runtime API changes that took effect, by operation (load-cert, add-server, map-add, del-server, ...).',
    labelNames: ['op'] as const,
    registers: [this.registry],
  });
  /** Reads HAProxy's count at scrape time; set when HAProxy is the data plane. */
  haproxyDroppedLogsSource: (() => Promise<number | undefined>) | undefined;
  readonly haproxyDroppedLogs: Gauge = new Gauge({
    name: 'mtls_egress_agent_haproxy_dropped_logs',
    help: 'Access log lines HAProxy dropped because it could not write them at once (its DroppedLogs, since its current worker started). HAProxy only.',
    registers: [this.registry],
    collect: async () => {
      // A scrape never fails for it: HAProxy starting or restarting leaves the last value.
      const value = await this.haproxyDroppedLogsSource?.().catch(() => undefined);
      if (value !== undefined) this.haproxyDroppedLogs.set(value);
    },
  });
  readonly watchErrors = watchErrorsCounter(this.registry);

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
