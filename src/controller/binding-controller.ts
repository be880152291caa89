import type { Logger } from 'pino';
import { splitKey } from '../api/meta.ts';
import * as reasons from '../api/v1alpha1/reasons.ts';
import { bindingKey, group, plural, version, type ClientCertificateBinding, type ClientCertificateBindingStatus } from '../api/v1alpha1/types.ts';
import { isNotFound, type KubeClient } from '../k8s/client.ts';
import type { EventRecorder } from '../k8s/events.ts';
import type { Informer } from '../k8s/informer.ts';
import type { ControllerMetrics } from '../metrics/metrics.ts';
import type { PortRange } from '../model/listener-ports.ts';
import { errorSummary, isTransient } from '../errors.ts';
import { backoffDelay } from '../runner/backoff.ts';
import { systemClock, type Clock } from '../runner/clock.ts';
import { defaultBackoff } from '../runner/queue.ts';
import { earliest, Runner, type ReconcileResult } from '../runner/runner.ts';
import type { TokenBucket } from '../runner/token-bucket.ts';
import { statusEqual, statusTransitionEvents } from '../status/evaluate.ts';
import { programmedCheck, type ProxyReplica, type ServedCertificates } from '../status/programmed.ts';
import { translateBinding, type DataPlaneView } from '../translate/translate.ts';
import type { BindingInputs } from '../inputs/binding-inputs.ts';
import { StatusWriter, type StatusToWrite } from './status-writer.ts';

/** The data plane as the status controller sees it: present unless --data-plane none. */
export interface DataPlaneStatus {
  replicas: () => readonly ProxyReplica[];
  served: ServedCertificates;
}

export interface BindingControllerOptions {
  client: KubeClient;
  bindings: Informer<ClientCertificateBinding>;
  /** Secrets, decoded certificates, hosts' answers and listener ports, gathered with the proxy-config controller's. */
  inputs: BindingInputs;
  recorder: EventRecorder;
  metrics: ControllerMetrics;
  logger: Logger;
  /** Present when a data plane reports back: Ready then also requires Programmed. */
  dataPlane?: DataPlaneStatus;
  listenerPorts: PortRange;
  endpointFor: (port: number) => string;
  workers?: number;
  /** Paces status writes (and, at lower priority, the recorder's Events). */
  writeLimiter: TokenBucket;
  clock?: Clock;
}

const controllerName = 'binding-status';

/**
 * How long a status that says only "the proxy is about to serve this" waits for the one
 * that says it does. A rotation or a new binding is served within a few hundred
 * milliseconds (bench:churn's p99), so it costs one status write and at most one Event
 * instead of two of each, and no Warning for a step nobody could act on. A proxy that
 * does not answer within the hold gets its ProgrammingPending written, late by this much.
 */
export const programmingSettleMs = 1000;

const readyReason = (status: ClientCertificateBindingStatus): string | undefined => status.conditions?.find((c) => c.type === 'Ready')?.reason;

/** Ready reasons a freed port (a deletion anywhere) may settle. */
const waitingForPort = new Set<string | undefined>([
  reasons.ListenerPortConflict,
  reasons.ListenerPortsExhausted,
  reasons.ListenerPortQuarantined,
  reasons.NamespacePortQuotaExceeded,
]);

/**
 * Reconciles one binding at a time into its status: takes the binding's inputs from the
 * manager's BindingInputs (its Secrets, its decoded certificate, its host's answer, the
 * listener ports) and its verdicts from the one translation, writes status only when it
 * changed, sends one Event per transition, and looks again when time alone will change
 * the verdict.
 */
export class BindingController {
  readonly #o: BindingControllerOptions;
  readonly #runner: Runner;
  readonly #clock: Clock;
  /**
   * Status we wrote, or handed to the writer, that the cache may not show yet: compared
   * against, so a quick second reconcile neither rewrites nor re-announces.
   */
  readonly #written = new Map<string, { generation: number | undefined; status: ClientCertificateBindingStatus }>();
  readonly #writer: StatusWriter;
  /** Consecutive failed status writes per binding: the backoff before it is reconciled again. */
  readonly #writeFailures = new Map<string, number>();
  /** Bindings whose last verdict was waiting for a port (a conflict, none free, a quarantine, the namespace's share): a deletion wakes these, not all 10,000. */
  readonly #waitingForPort = new Set<string>();
  readonly #metricLabels = new Map<string, { namespace: string; name: string; host: string }>();

  constructor(options: BindingControllerOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#runner = new Runner({
      name: controllerName,
      reconcile: (key, signal) => this.reconcile(key, signal),
      logger: options.logger,
      workers: options.workers ?? 1,
      clock: this.#clock,
      observer: options.metrics.runnerObserver(controllerName),
    });
    this.#writer = new StatusWriter({
      write: (binding, status) => this.#writeStatus(binding, status),
      limiter: options.writeLimiter,
      maxInFlight: options.workers ?? 1,
      clock: this.#clock,
      transitions: statusTransitionEvents,
      holdMs: (write) => (readyReason(write.status) === reasons.ProgrammingPending ? programmingSettleMs : 0),
      written: (key, write) => this.#statusWritten(key, write),
      failed: (key, write, err) => this.#statusFailed(key, write, err),
      observe: {
        waiting: (count) => {
          options.metrics.statusWritesWaiting.set(count);
          if (count === 0) options.writeLimiter.resume();
        },
        coalesced: () => options.metrics.statusWritesCoalesced.inc(),
      },
    });
    // Status first: while status writes wait, even for a free connection rather than a
    // token, the API server's time goes to them, not to Events or proxy objects.
    options.writeLimiter.holdLowWhile(() => this.#writer.due > 0);
    // What we wrote holds the port even before the cache shows it.
    options.inputs.useWrittenStatus((b) => this.#written.get(bindingKey(b))?.status);
    this.#wire();
  }

  /** Reconciles finished so far: a positive signal for tests that something was looked at again. */
  get reconciled(): number {
    return this.#runner.reconciled;
  }

  #wire(): void {
    const { bindings, inputs } = this.#o;
    const runner = this.#runner;
    bindings.addHandlers({
      onAdd: (b) => runner.add(bindingKey(b)),
      onUpdate: (b, old) => {
        const key = bindingKey(b);
        if (b.metadata.generation !== old.metadata.generation) return runner.add(key);
        if (statusEqual(b.status, old.status ?? {})) return;
        // Our own write, come back: it changes nothing we read, and the cache holds it now,
        // so we need not (10,000 statuses would be held twice). Someone else's is put right.
        if (this.#isOwnWrite(b)) this.#written.delete(key);
        else runner.add(key);
      },
      onDelete: (b) => {
        const key = bindingKey(b);
        this.#written.delete(key);
        this.#writer.forget(key);
        this.#writeFailures.delete(key);
        runner.add(key);
        // A freed port may settle a conflict elsewhere.
        this.#waitingForPort.delete(key);
        for (const other of this.#waitingForPort) runner.add(other);
      },
    });
    // A Secret, a decode, a host's answer or a moved port: the binding's inputs changed.
    inputs.onChange((key) => runner.add(key));
  }

  /**
   * Runs the workers for one leadership term: until `signal` aborts (the lease is lost or
   * the process stops). Keys that arrive meanwhile wait for the next term, which starts
   * from the caches rather than from what this term wrote.
   */
  async run(signal: AbortSignal): Promise<void> {
    this.#written.clear();
    this.enqueueAll();
    // What this term computed and did not send is not for the next term, which starts from the caches.
    const dropWaiting = (): void => this.#writer.clear();
    signal.addEventListener('abort', dropWaiting, { once: true });
    try {
      await this.#runner.run(signal);
    } finally {
      signal.removeEventListener('abort', dropWaiting);
      dropWaiting();
    }
  }

  shutDown(): void {
    this.#runner.shutDown();
  }

  /** Every binding, again: for changes that can move any binding's verdict (a proxy replica turned ready). */
  enqueueAll(): void {
    for (const b of this.#o.bindings.list()) this.#runner.add(bindingKey(b));
  }

  /** One binding, again ("namespace/name"). */
  enqueue(key: string): void {
    this.#runner.add(key);
  }

  /** Reconciles one key; says when to look again if time alone will change the verdict. */
  async reconcile(key: string, signal?: AbortSignal): Promise<ReconcileResult> {
    const binding = this.#o.bindings.get(key);
    if (!binding || binding.metadata.deletionTimestamp) {
      const labels = this.#metricLabels.get(key);
      if (labels) this.#o.metrics.forgetBinding(labels);
      this.#metricLabels.delete(key);
      this.#waitingForPort.delete(key);
      return {};
    }
    const { namespace } = splitKey(key);
    // Never waits on a decode or on DNS (see BindingInputs): a certificate still decoding
    // writes no status yet, and a host never answered gets a moment for the usual quick
    // answer before status goes out without it, so a refused host does not first announce Pending.
    const gathered = await this.#o.inputs.gather(binding);
    if (!gathered.ready) return { requeueAfterMs: gathered.requeueAfterMs };
    const { inputs } = gathered;
    const dataPlane = this.#o.dataPlane;

    const now = new Date(this.#clock.now());
    const previous = this.#previous(binding);
    const view: DataPlaneView | undefined = dataPlane && {
      hostProblem: inputs.hostProblem,
      ...(inputs.destinationPolicyGap ? { destinationPolicyGap: inputs.destinationPolicyGap } : {}),
      programmed: (k, fingerprint) => programmedCheck(k, fingerprint, dataPlane.replicas(), dataPlane.served),
    };
    const { status: evaluation, checks } = translateBinding(binding, inputs.secrets, inputs.identities, inputs.ports, {
      now,
      listenerPorts: this.#o.listenerPorts,
      endpointFor: this.#o.endpointFor,
      caSubjects: this.#o.inputs.caSubjects,
      previousStatus: () => previous,
      consent: () => inputs.consent,
      ...(view ? { dataPlane: view } : {}),
    });

    if (!statusEqual(previous, evaluation.status)) {
      // A replica that lost the lease must not write, even mid-reconcile.
      if (signal?.aborted) return {};
      // Written off the reconcile's path, paced by --status-qps; the Events go once it is written.
      this.#written.set(key, { generation: binding.metadata.generation, status: evaluation.status });
      this.#writer.enqueue(key, { binding, status: evaluation.status, since: previous, events: evaluation.events, now });
    }
    if (waitingForPort.has(readyReason(evaluation.status))) this.#waitingForPort.add(key);
    else this.#waitingForPort.delete(key);
    this.#observe(binding, namespace, evaluation.status, checks.certificate.ok ? checks.certificate.identity.facts.notAfter : undefined);
    // Time alone changes the verdict (a certificate crosses a threshold), and so may a retry
    // of a decode the sandbox's clock stopped; a host's new answer wakes the key itself.
    return { requeueAfterMs: earliest(evaluation.requeueAfterMs, gathered.requeueAfterMs) };
  }

  /** The binding as the cache shows it carries the status we last wrote for its generation: our own write, come back. */
  #isOwnWrite(b: ClientCertificateBinding): boolean {
    const written = this.#written.get(bindingKey(b));
    return written !== undefined && written.generation === b.metadata.generation && statusEqual(b.status, written.status);
  }

  #statusWritten(key: string, write: StatusToWrite): void {
    this.#o.metrics.statusWrites.inc({ result: 'success' });
    this.#writeFailures.delete(key);
    for (const event of write.events) {
      // Queued too: an Event is a second API write per transition, and status goes first.
      this.#o.recorder.record(write.binding, event, write.now);
      this.#runner.logger.info({ binding: key, reason: event.reason, type: event.type }, event.message);
    }
  }

  #statusFailed(key: string, write: StatusToWrite, err: unknown): void {
    this.#o.metrics.statusWrites.inc({ result: 'error' });
    // The cache's status stands again, unless a newer status is already on its way.
    if (this.#written.get(key)?.status === write.status) this.#written.delete(key);
    if (isNotFound(err)) return;
    if (isTransient(err)) {
      const failures = this.#writeFailures.get(key) ?? 0;
      this.#writeFailures.set(key, failures + 1);
      const retryInMs = backoffDelay(failures, defaultBackoff);
      this.#runner.addAfter(key, retryInMs);
      this.#runner.logger.info({ binding: key, err: errorSummary(err), retryInMs }, 'status write failed; retrying');
    } else {
      this.#runner.logger.error({ binding: key, err: errorSummary(err) }, 'status write failed; not retrying until the binding changes');
    }
  }

  /** The status last written for this generation, else what the cache shows. */
  #previous(binding: ClientCertificateBinding): ClientCertificateBindingStatus | undefined {
    const written = this.#written.get(bindingKey(binding));
    return written && written.generation === binding.metadata.generation ? written.status : binding.status;
  }

  async #writeStatus(binding: ClientCertificateBinding, status: ClientCertificateBindingStatus): Promise<void> {
    const { namespace, name } = binding.metadata;
    // JSON merge patch: absent fields must be sent as null to be removed.
    const body = { status: { certificate: null, listenerPort: null, endpoint: null, ...status } };
    await this.#o.client.mergePatch(`/apis/${group}/${version}/namespaces/${namespace}/${plural}/${name}/status`, body, { discardResponse: true });
  }

  #observe(binding: ClientCertificateBinding, namespace: string, status: ClientCertificateBindingStatus, notAfter: Date | undefined): void {
    const labels = { namespace, name: binding.metadata.name, host: binding.spec.host };
    const previous = this.#metricLabels.get(bindingKey(binding));
    if (previous && previous.host !== labels.host) this.#o.metrics.forgetBinding(previous);
    this.#metricLabels.set(bindingKey(binding), labels);
    const readyCondition = status.conditions?.find((c) => c.type === 'Ready');
    this.#o.metrics.bindingReady.set(labels, readyCondition?.status === 'True' ? 1 : 0);
    this.#o.metrics.setReadyReason(labels, readyCondition?.reason);
    if (notAfter) this.#o.metrics.certificateNotAfter.set(labels, Math.floor(notAfter.getTime() / 1000));
    else this.#o.metrics.certificateNotAfter.remove(labels);
  }
}
