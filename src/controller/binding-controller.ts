import type { Logger } from 'pino';
import { splitKey } from '../api/meta.ts';
import * as reasons from '../api/v1alpha1/reasons.ts';
import { bindingKey, group, plural, version, type ClientCertificateBinding, type ClientCertificateBindingStatus } from '../api/v1alpha1/types.ts';
import type { KubeClient } from '../k8s/client.ts';
import type { EventRecorder } from '../k8s/events.ts';
import type { Informer } from '../k8s/informer.ts';
import type { SecretCache } from '../k8s/secret-cache.ts';
import type { ControllerMetrics } from '../metrics/metrics.ts';
import { resolveCertificateInput } from '../model/certificate-input.ts';
import type { DestinationPolicy } from '../model/destinations.ts';
import type { PortOutcome, PortRange } from '../model/listener-ports.ts';
import { secretReferences, type SecretIndex } from '../model/secret-refs.ts';
import { systemClock, type Clock } from '../runner/clock.ts';
import { Runner, type ReconcileResult } from '../runner/runner.ts';
import { statusEqual } from '../status/evaluate.ts';
import { programmedCheck, type ProxyReplica, type ServedCertificates } from '../status/programmed.ts';
import { allocatePorts, translateBinding, type DataPlaneView } from '../translate/translate.ts';
import type { HostResolver } from './host-resolution.ts';
import { isTransientOutcome, type IdentityCache } from './identity-cache.ts';

/** The data plane as the status controller sees it: present unless --data-plane none. */
export interface DataPlaneStatus {
  hosts: HostResolver;
  /** Where the proxy may connect; the same policy the proxy-config controller renders. */
  destinations: () => DestinationPolicy;
  replicas: () => readonly ProxyReplica[];
  served: ServedCertificates;
}

export interface BindingControllerOptions {
  client: KubeClient;
  bindings: Informer<ClientCertificateBinding>;
  secrets: SecretCache;
  secretIndex: SecretIndex;
  recorder: EventRecorder;
  metrics: ControllerMetrics;
  logger: Logger;
  identities: IdentityCache;
  /** Present when a data plane reports back: Ready then also requires Programmed. */
  dataPlane?: DataPlaneStatus;
  listenerPorts: PortRange;
  endpointFor: (port: number) => string;
  workers?: number;
  clock?: Clock;
}

const controllerName = 'binding-status';
/** When a decode stopped by the sandbox's clock is tried again. */
const retryTransientDecodeMs = 30_000;

/**
 * Reconciles one binding at a time into its status: reads the binding and its Secrets,
 * decodes the certificate (cached per Secret version), takes the binding's verdicts from
 * the one translation, writes status only when it changed, sends one Event per
 * transition, and looks again when time alone will change the verdict.
 */
export class BindingController {
  readonly #o: BindingControllerOptions;
  readonly #runner: Runner;
  readonly #clock: Clock;
  /** Status we wrote that the cache may not show yet: compared against, so a quick second reconcile neither rewrites nor re-announces. */
  readonly #written = new Map<string, { generation: number | undefined; status: ClientCertificateBindingStatus }>();
  readonly #metricLabels = new Map<string, { namespace: string; name: string; host: string }>();
  #ports: { version: number; result: Map<string, PortOutcome> } | undefined;
  #portsVersion = 0;

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
    this.#wire();
  }

  /** Reconciles finished so far: a positive signal for tests that something was looked at again. */
  get reconciled(): number {
    return this.#runner.reconciled;
  }

  #wire(): void {
    const { bindings, secrets, secretIndex } = this.#o;
    const runner = this.#runner;
    bindings.addHandlers({
      onAdd: (b) => {
        secretIndex.set(bindingKey(b), b.metadata.namespace, b.spec);
        this.#portsVersion++;
        runner.add(bindingKey(b));
      },
      onUpdate: (b, old) => {
        secretIndex.set(bindingKey(b), b.metadata.namespace, b.spec);
        // Our own status write of the port we allocated changes nothing about allocation;
        // recomputing after each of a thousand cold-start writes would cost O(n² log n).
        if (portInputs(b) !== portInputs(old) && !this.#confirmsAllocation(b, old)) this.#portsVersion++;
        // Our own status writes come back as updates; they change nothing we read.
        if (b.metadata.generation !== old.metadata.generation || !statusEqual(b.status, old.status ?? {})) runner.add(bindingKey(b));
      },
      onDelete: (b) => {
        const key = bindingKey(b);
        secretIndex.delete(key);
        this.#portsVersion++;
        this.#written.delete(key);
        runner.add(key);
        // A freed port may settle a conflict elsewhere.
        for (const other of bindings.list()) {
          const reason = other.status?.conditions?.find((c) => c.type === 'Ready')?.reason;
          if (reason === reasons.ListenerPortConflict || reason === reasons.ListenerPortsExhausted) runner.add(bindingKey(other));
        }
      },
    });
    secrets.onChange((secretKey) => {
      for (const key of secretIndex.bindingsFor(secretKey)) runner.add(key);
    });
  }

  /**
   * Runs the workers for one leadership term: until `signal` aborts (the lease is lost or
   * the process stops). Keys that arrive meanwhile wait for the next term, which starts
   * from the caches rather than from what this term wrote.
   */
  async run(signal: AbortSignal): Promise<void> {
    this.#written.clear();
    this.enqueueAll();
    await this.#runner.run(signal);
  }

  shutDown(): void {
    this.#runner.shutDown();
  }

  /** Every binding, again: for changes that can move any binding's verdict (a proxy replica applied a configuration). */
  enqueueAll(): void {
    for (const b of this.#o.bindings.list()) this.#runner.add(bindingKey(b));
  }

  /** Reconciles one key; says when to look again if time alone will change the verdict. */
  async reconcile(key: string, signal?: AbortSignal): Promise<ReconcileResult> {
    const binding = this.#o.bindings.get(key);
    if (!binding || binding.metadata.deletionTimestamp) {
      const labels = this.#metricLabels.get(key);
      if (labels) this.#o.metrics.forgetBinding(labels);
      this.#metricLabels.delete(key);
      return {};
    }
    const { namespace } = splitKey(key);
    const secrets = await this.#o.secrets.getAll(
      namespace,
      secretReferences(binding.spec).map((r) => r.name),
    );
    const input = resolveCertificateInput(binding.spec, (name) => secrets.get(name));
    // Never wait on a decode: a hostile file may take the sandbox's whole time limit, and a
    // worker waiting on it would hold up every other binding. The decode wakes this key.
    if (input.ok && this.#o.identities.want(input, () => this.#runner.add(key)) === undefined) return {};
    const dataPlane = this.#o.dataPlane;
    const hostProblems = dataPlane ? await dataPlane.hosts.problems([binding.spec.host], dataPlane.destinations()) : new Map();

    const now = new Date(this.#clock.now());
    const previous = this.#previous(binding);
    const view: DataPlaneView | undefined = dataPlane && {
      hostProblem: (host) => hostProblems.get(host),
      programmed: (k, fingerprint) => programmedCheck(k, fingerprint, dataPlane.replicas(), dataPlane.served),
    };
    const { status: evaluation, checks } = translateBinding(binding, (_, name) => secrets.get(name), this.#o.identities.peek, this.#portAllocation(), {
      now,
      listenerPorts: this.#o.listenerPorts,
      endpointFor: this.#o.endpointFor,
      previousStatus: () => previous,
      ...(view ? { dataPlane: view } : {}),
    });

    if (!statusEqual(previous, evaluation.status)) {
      // A replica that lost the lease must not write, even mid-reconcile.
      if (signal?.aborted) return {};
      await this.#writeStatus(binding, evaluation.status);
      this.#written.set(key, { generation: binding.metadata.generation, status: evaluation.status });
      for (const event of evaluation.events) {
        // Queued, off the reconcile's path: an Event is a second API write per
        // transition, and the status is what must not wait for it.
        this.#o.recorder.record(binding, event, now);
        this.#runner.logger.info({ binding: key, reason: event.reason, type: event.type }, event.message);
      }
    }
    this.#observe(binding, namespace, evaluation.status, checks.certificate.ok ? checks.certificate.identity.facts.notAfter : undefined);
    // A host that does not resolve, or resolves somewhere refused, may change without any
    // object changing; so may a decode the sandbox's clock stopped on a busy machine.
    const retryHostMs = checks.dataPlane.ok || !dataPlane ? undefined : dataPlane.hosts.retryAfterMs;
    const retryDecodeMs = isTransientOutcome(checks.certificate.ok ? undefined : checks.certificate) ? retryTransientDecodeMs : undefined;
    return { requeueAfterMs: earliest(evaluation.requeueAfterMs, retryHostMs, retryDecodeMs) };
  }

  /** The status last written for this generation, else what the cache shows. */
  #previous(binding: ClientCertificateBinding): ClientCertificateBindingStatus | undefined {
    const written = this.#written.get(bindingKey(binding));
    return written && written.generation === binding.metadata.generation ? written.status : binding.status;
  }

  #confirmsAllocation(b: ClientCertificateBinding, old: ClientCertificateBinding): boolean {
    if (b.spec.listenerPort !== old.spec.listenerPort || b.metadata.creationTimestamp !== old.metadata.creationTimestamp) return false;
    const allocated = this.#ports?.version === this.#portsVersion ? this.#ports.result.get(bindingKey(b)) : undefined;
    return allocated?.ok === true && allocated.port === b.status?.listenerPort;
  }

  /** Ports over every binding, recomputed only when a binding's port inputs changed. */
  #portAllocation(): Map<string, PortOutcome> {
    if (this.#ports?.version !== this.#portsVersion) {
      const result = allocatePorts(this.#o.bindings.list(), {
        listenerPorts: this.#o.listenerPorts,
        // What we wrote holds the port even before the cache shows it.
        previousStatus: (b) => this.#written.get(bindingKey(b))?.status ?? b.status,
      });
      this.#ports = { version: this.#portsVersion, result };
    }
    return this.#ports.result;
  }

  async #writeStatus(binding: ClientCertificateBinding, status: ClientCertificateBindingStatus): Promise<void> {
    const { namespace, name } = binding.metadata;
    // JSON merge patch: absent fields must be sent as null to be removed.
    const body = { status: { certificate: null, listenerPort: null, endpoint: null, ...status } };
    await this.#o.client.mergePatch(`/apis/${group}/${version}/namespaces/${namespace}/${plural}/${name}/status`, body);
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

/** What port allocation reads of a binding; a change re-runs the allocation. */
function portInputs(b: ClientCertificateBinding): string {
  return `${b.spec.listenerPort ?? ''}|${b.status?.listenerPort ?? ''}|${b.metadata.creationTimestamp ?? ''}`;
}

function earliest(...delays: Array<number | undefined>): number | undefined {
  const defined = delays.filter((d): d is number => d !== undefined);
  return defined.length === 0 ? undefined : Math.min(...defined);
}
