import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RunnerObserver } from '../runner/runner.ts';

/** The labels of every per-binding series. */
export interface BindingLabels {
  namespace: string;
  name: string;
  host: string;
}

function bindingLabelsKey(labels: BindingLabels): string {
  return JSON.stringify([labels.namespace, labels.name, labels.host]);
}

/** Every metric the controller exports, on a registry of its own (no global state in tests). */
export class ControllerMetrics {
  readonly registry = new Registry();
  readonly certificateNotAfter = new Gauge({
    name: 'mtls_egress_certificate_not_after_seconds',
    help: 'The client certificate notAfter, as Unix seconds, per binding. Alert on (this - time()) < 14*86400.',
    labelNames: ['namespace', 'name', 'host'] as const,
    registers: [this.registry],
  });
  readonly bindingReady = new Gauge({
    name: 'mtls_egress_binding_ready',
    help: '1 when the binding is Ready, else 0.',
    labelNames: ['namespace', 'name', 'host'] as const,
    registers: [this.registry],
  });
  readonly bindingReadyReason = new Gauge({
    name: 'mtls_egress_binding_ready_reason',
    help: "1 per binding, labelled with its Ready condition's reason (Ready, CertificateExpiringSoon, PasswordIncorrect, ...). Bindings by reason: count by (reason) (this).",
    labelNames: ['namespace', 'name', 'host', 'reason'] as const,
    registers: [this.registry],
  });
  /** The reason each binding's series carries now, so a new reason replaces it instead of adding a second series. */
  readonly #readyReasons = new Map<string, string>();
  readonly reconcileTotal = new Counter({
    name: 'mtls_egress_reconcile_total',
    help: 'Reconciles by controller and result (success, requeue, error).',
    labelNames: ['controller', 'result'] as const,
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: 'mtls_egress_reconcile_errors_total',
    help: 'Reconciles that failed and were retried with backoff.',
    labelNames: ['controller'] as const,
    registers: [this.registry],
  });
  readonly reconcileDuration = new Histogram({
    name: 'mtls_egress_reconcile_duration_seconds',
    help: 'Time to reconcile one key.',
    labelNames: ['controller'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly isLeader = new Gauge({
    name: 'mtls_egress_leader',
    help: '1 while this replica holds the leader Lease.',
    registers: [this.registry],
  });
  readonly proxyObjectWrites = new Counter({
    name: 'mtls_egress_proxy_object_writes_total',
    help: 'Writes of the objects the proxy consumes, by resource and verb (create, replace, delete). The controller writes only what changed.',
    labelNames: ['resource', 'verb'] as const,
    registers: [this.registry],
  });
  readonly watchErrors = watchErrorsCounter(this.registry);
  readonly statusWrites = new Counter({
    name: 'mtls_egress_status_writes_total',
    help: 'Binding status writes, by result (success, error). They share --status-qps with Events, ahead of them.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly statusWritesWaiting = new Gauge({
    name: 'mtls_egress_status_writes_waiting',
    help: 'Binding status writes computed and waiting for their turn under --status-qps.',
    registers: [this.registry],
  });
  readonly statusWritesCoalesced = new Counter({
    name: 'mtls_egress_status_writes_coalesced_total',
    help: 'Status changes that replaced a write still waiting for the same binding: writes saved.',
    registers: [this.registry],
  });
  readonly eventWrites = new Counter({
    name: 'mtls_egress_event_writes_total',
    help: 'Events, by result: success, error, or dropped because the backlog was full.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly eventsWaiting = new Gauge({
    name: 'mtls_egress_events_waiting',
    help: 'Events recorded and not yet written: they take --status-qps tokens only when no status write waits.',
    registers: [this.registry],
  });
  readonly secretReads = new Counter({
    name: 'mtls_egress_secret_reads_total',
    help: 'GETs of one referenced Secret (the watch sees metadata only), by result: found, not_found, error.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** Reconcile counts and durations of one controller's runner. */
  runnerObserver(controller: string): RunnerObserver {
    return {
      started: () => {
        const stopTimer = this.reconcileDuration.startTimer({ controller });
        return (result) => {
          stopTimer();
          this.reconcileTotal.inc({ controller, result });
          if (result === 'error') this.reconcileErrors.inc({ controller });
        };
      },
    };
  }

  /** Sets the binding's one reason series; a binding with no Ready condition yet has none. */
  setReadyReason(labels: BindingLabels, reason: string | undefined): void {
    const key = bindingLabelsKey(labels);
    const previous = this.#readyReasons.get(key);
    if (previous === reason) return;
    if (previous !== undefined) this.bindingReadyReason.remove({ ...labels, reason: previous });
    if (reason === undefined) {
      this.#readyReasons.delete(key);
      return;
    }
    this.bindingReadyReason.set({ ...labels, reason }, 1);
    this.#readyReasons.set(key, reason);
  }

  forgetBinding(labels: BindingLabels): void {
    this.certificateNotAfter.remove(labels);
    this.bindingReady.remove(labels);
    this.setReadyReason(labels, undefined);
  }
}

/** Shared by the controller and the agent: an informer's failed list or watch calls. */
export function watchErrorsCounter(registry: Registry): Counter<'resource'> {
  return new Counter({
    name: 'mtls_egress_watch_errors_total',
    help: 'Failed list or watch calls, retried with backoff.',
    labelNames: ['resource'] as const,
    registers: [registry],
  });
}
