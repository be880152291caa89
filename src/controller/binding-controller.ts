import type { Logger } from 'pino';
import * as reasons from '../api/v1alpha1/reasons.ts';
import {
  bindingKey,
  group,
  objectKey,
  plural,
  splitKey,
  version,
  type ClientCertificateBinding,
  type ClientCertificateBindingStatus,
} from '../api/v1alpha1/types.ts';
import { errorSummary, isTransient } from '../errors.ts';
import { isNotFound, type KubeClient } from '../k8s/client.ts';
import type { EventRecorder } from '../k8s/events.ts';
import type { Informer } from '../k8s/informer.ts';
import type { ControllerMetrics } from '../metrics/metrics.ts';
import { resolveCertificateInput, resolveServerCA, type CertificateInput, type SecretLike } from '../model/certificate-input.ts';
import { parseDuration } from '../model/duration.ts';
import { allocateListenerPorts, type PortRange } from '../model/listener-ports.ts';
import { SecretIndex } from '../model/secret-refs.ts';
import { evaluateBinding, statusEqual, type CertificateOutcome, type CheckOutcome, type PortOutcome, type Problem } from '../status/evaluate.ts';
import { programmedCheck, type ProxyReplica, type ServedCertificates } from '../status/programmed.ts';
import type { IdentityCache } from './identity-cache.ts';
import type { WorkQueue } from './queue.ts';

export interface BindingControllerOptions {
  client: KubeClient;
  bindings: Informer<ClientCertificateBinding>;
  secrets: Informer<SecretLike>;
  secretIndex: SecretIndex;
  queue: WorkQueue;
  recorder: EventRecorder;
  metrics: ControllerMetrics;
  logger: Logger;
  identities: IdentityCache;
  /** Present when a data plane reports back: Ready then also requires Programmed. */
  programmed?: { replicas: () => readonly ProxyReplica[]; served: ServedCertificates; proxyProblem: (key: string) => Problem | undefined };
  listenerPorts: PortRange;
  endpointFor: (port: number) => string;
  now?: () => Date;
}

const controllerName = 'binding-status';

/**
 * Reconciles one binding at a time into its status: reads the binding and its Secrets
 * from the caches, decodes the certificate (cached per Secret version), evaluates the
 * conditions (pure), writes status only when it changed, sends one Event per transition,
 * and requeues itself for the next expiry threshold.
 */
export class BindingController {
  readonly #o: BindingControllerOptions;
  readonly #log: Logger;
  readonly #now: () => Date;
  /** Status we wrote that the cache may not show yet: compared against, so a quick second reconcile neither rewrites nor re-announces. */
  readonly #written = new Map<string, { generation: number | undefined; status: ClientCertificateBindingStatus }>();
  readonly #metricLabels = new Map<string, { namespace: string; name: string; host: string }>();
  #ports: { version: number; result: Map<string, PortOutcome> } | undefined;
  #portsVersion = 0;

  constructor(options: BindingControllerOptions) {
    this.#o = options;
    this.#log = options.logger.child({ controller: controllerName });
    this.#now = options.now ?? (() => new Date());
    this.#wire();
  }

  #wire(): void {
    const { bindings, secrets, secretIndex, queue } = this.#o;
    bindings.addHandlers({
      onAdd: (b) => {
        secretIndex.set(bindingKey(b), b.metadata.namespace, b.spec);
        this.#portsVersion++;
        queue.add(bindingKey(b));
      },
      onUpdate: (b, old) => {
        secretIndex.set(bindingKey(b), b.metadata.namespace, b.spec);
        // Our own status write of the port we allocated changes nothing about allocation;
        // recomputing after each of a thousand cold-start writes would cost O(n² log n).
        if (portInputs(b) !== portInputs(old) && !this.#confirmsAllocation(b, old)) this.#portsVersion++;
        // Our own status writes come back as updates; they change nothing we read.
        if (b.metadata.generation !== old.metadata.generation || !statusEqual(b.status, old.status ?? {})) queue.add(bindingKey(b));
      },
      onDelete: (b) => {
        const key = bindingKey(b);
        secretIndex.delete(key);
        this.#portsVersion++;
        this.#written.delete(key);
        queue.add(key);
        // A freed port may settle a conflict elsewhere.
        for (const other of bindings.list()) {
          const reason = other.status?.conditions?.find((c) => c.type === 'Ready')?.reason;
          if (reason === reasons.ListenerPortConflict || reason === reasons.ListenerPortsExhausted) queue.add(bindingKey(other));
        }
      },
    });
    const wake = (s: SecretLike): void => {
      for (const key of secretIndex.bindingsFor(objectKey(s.metadata.namespace ?? '', s.metadata.name))) queue.add(key);
    };
    secrets.addHandlers({ onAdd: wake, onUpdate: wake, onDelete: wake });
  }

  /**
   * Runs `workers` loops for one leadership term: until `signal` aborts (the lease is
   * lost or the process stops). Keys that arrive meanwhile wait in the queue for the
   * next term, which starts from the caches rather than from what this term wrote.
   */
  async run(workers: number, signal: AbortSignal): Promise<void> {
    this.#written.clear();
    this.enqueueAll();
    await Promise.all(Array.from({ length: workers }, () => this.#worker(signal)));
  }

  async #worker(signal: AbortSignal): Promise<void> {
    const { queue, metrics } = this.#o;
    for (let key = await queue.get(signal); key !== undefined; key = await queue.get(signal)) {
      const stopTimer = metrics.reconcileDuration.startTimer({ controller: controllerName });
      try {
        if (signal.aborted) {
          queue.add(key);
          continue;
        }
        const requeueAfterMs = await this.reconcile(key, signal);
        queue.forget(key);
        if (requeueAfterMs !== undefined) queue.addAfter(key, requeueAfterMs);
        metrics.reconcileTotal.inc({ controller: controllerName, result: requeueAfterMs === undefined ? 'success' : 'requeue' });
      } catch (err) {
        const delay = queue.addRateLimited(key);
        metrics.reconcileTotal.inc({ controller: controllerName, result: 'error' });
        metrics.reconcileErrors.inc({ controller: controllerName });
        const level = isTransient(err) ? 'info' : 'error';
        this.#log[level]({ binding: key, err: errorSummary(err), retryInMs: delay }, 'reconcile failed; retrying');
      } finally {
        stopTimer();
        queue.done(key);
      }
    }
  }

  /** Reconciles one key; returns when to look again if time alone will change the verdict. */
  async reconcile(key: string, signal?: AbortSignal): Promise<number | undefined> {
    const binding = this.#o.bindings.get(key);
    if (!binding || binding.metadata.deletionTimestamp) {
      const labels = this.#metricLabels.get(key);
      if (labels) this.#o.metrics.forgetBinding(labels);
      this.#metricLabels.delete(key);
      return undefined;
    }
    const { namespace } = splitKey(key);
    const lookup = await this.#secretLookup(binding);
    const now = this.#now();
    const written = this.#written.get(key);
    const previous = written && written.generation === binding.metadata.generation ? written.status : binding.status;

    const expiryWarningMs = parseDuration(binding.spec.expiryWarning ?? '720h');
    const spec = this.#checkSpec(binding, expiryWarningMs);
    const input = resolveCertificateInput(binding.spec, lookup);
    const certificate: CertificateOutcome = input.ok ? await this.#decode(key, input) : input;
    const programmed = this.#o.programmed
      ? programmedCheck(key, certificate.ok ? certificate.facts.fingerprintSha256 : undefined, this.#o.programmed.replicas(), this.#o.programmed.served, this.#o.programmed.proxyProblem(key))
      : undefined;
    const serverCA = resolveServerCA(binding.spec, lookup);

    const evaluation = evaluateBinding({
      generation: binding.metadata.generation,
      previous,
      spec,
      certificate,
      serverCA: serverCA.ok ? { ok: true } : serverCA,
      port: this.#portFor(key),
      ...(programmed ? { programmed } : {}),
      expiryWarningMs: expiryWarningMs ?? 0,
      endpointFor: this.#o.endpointFor,
      now,
    });

    if (!statusEqual(previous, evaluation.status)) {
      // A replica that lost the lease must not write, even mid-reconcile.
      if (signal?.aborted) return undefined;
      await this.#writeStatus(binding, evaluation.status);
      this.#written.set(key, { generation: binding.metadata.generation, status: evaluation.status });
      for (const event of evaluation.events) {
        // Queued, off the reconcile's path: an Event is a second API write per
        // transition, and the status is what must not wait for it.
        this.#o.recorder.record(binding, event, now);
        this.#log.info({ binding: key, reason: event.reason, type: event.type }, event.message);
      }
    }
    this.#observe(binding, namespace, evaluation.status, certificate);
    return evaluation.requeueAfterMs;
  }

  #checkSpec(binding: ClientCertificateBinding, expiryWarningMs: number | undefined): CheckOutcome {
    if (expiryWarningMs === undefined) {
      return { ok: false, reason: reasons.InvalidSpec, message: `spec.expiryWarning "${binding.spec.expiryWarning}" is not a duration such as 720h` };
    }
    const fixed = binding.spec.listenerPort;
    const { first, last } = this.#o.listenerPorts;
    if (fixed !== undefined && (fixed < first || fixed > last)) {
      return { ok: false, reason: reasons.InvalidSpec, message: `spec.listenerPort ${fixed} is outside the proxy's listener range ${first}-${last}` };
    }
    return { ok: true };
  }

  /** The binding's Secrets from the cache; a miss (a Secret first referenced just now) is read once and seeded. */
  async #secretLookup(binding: ClientCertificateBinding): Promise<(name: string) => SecretLike | undefined> {
    const namespace = binding.metadata.namespace;
    const found = new Map<string, SecretLike | undefined>();
    const names = new Set([
      binding.spec.certificate?.secretRef?.name,
      binding.spec.certificate?.passwordSecretRef?.name,
      binding.spec.certificate?.tlsSecretRef?.name,
      binding.spec.serverCA?.secretRef?.name,
    ]);
    for (const name of names) {
      if (!name) continue;
      let secret = this.#o.secrets.get(objectKey(namespace, name));
      if (!secret) {
        try {
          secret = await this.#o.client.get<SecretLike>(`/api/v1/namespaces/${namespace}/secrets/${name}`);
          this.#o.secrets.seed(secret);
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }
      found.set(name, secret);
    }
    return (name) => found.get(name);
  }

  async #decode(key: string, input: CertificateInput): Promise<CertificateOutcome> {
    try {
      const outcome = await this.#o.identities.decode(input);
      return outcome.ok ? { ok: true, facts: outcome.identity.facts } : outcome;
    } catch (err) {
      // The decoder promises stable reasons; anything else is our bug, reported without detail that could carry key bytes.
      this.#log.error({ binding: key, err: { code: (err as { code?: string }).code } }, 'identity decoder threw');
      return { ok: false, reason: reasons.PfxMalformed, message: 'the certificate could not be decoded' };
    }
  }

  #confirmsAllocation(b: ClientCertificateBinding, old: ClientCertificateBinding): boolean {
    if (b.spec.listenerPort !== old.spec.listenerPort || b.metadata.creationTimestamp !== old.metadata.creationTimestamp) return false;
    const allocated = this.#ports?.version === this.#portsVersion ? this.#ports.result.get(bindingKey(b)) : undefined;
    return allocated?.ok === true && allocated.port === b.status?.listenerPort;
  }

  enqueue(keys: readonly string[]): void {
    for (const key of keys) this.#o.queue.add(key);
  }

  /** Every binding, again: for changes that can move any binding's verdict (a proxy replica applied a configuration). */
  enqueueAll(): void {
    for (const b of this.#o.bindings.list()) this.#o.queue.add(bindingKey(b));
  }

  #portFor(key: string): PortOutcome {
    if (this.#ports?.version !== this.#portsVersion) {
      const claimants = this.#o.bindings.list().map((b) => {
        const k = bindingKey(b);
        const held = this.#written.get(k)?.status.listenerPort ?? b.status?.listenerPort;
        return {
          key: k,
          creationTimestamp: b.metadata.creationTimestamp ?? '',
          ...(b.spec.listenerPort === undefined ? {} : { requested: b.spec.listenerPort }),
          ...(held === undefined ? {} : { held }),
        };
      });
      this.#ports = { version: this.#portsVersion, result: allocateListenerPorts(claimants, this.#o.listenerPorts) };
    }
    return this.#ports.result.get(key) ?? { ok: false, reason: reasons.ListenerPortsExhausted, message: 'no listener port allocated yet' };
  }

  async #writeStatus(binding: ClientCertificateBinding, status: ClientCertificateBindingStatus): Promise<void> {
    const { namespace, name } = binding.metadata;
    // JSON merge patch: absent fields must be sent as null to be removed.
    const body = { status: { certificate: null, listenerPort: null, endpoint: null, ...status } };
    await this.#o.client.mergePatch(`/apis/${group}/${version}/namespaces/${namespace}/${plural}/${name}/status`, body);
  }

  #observe(binding: ClientCertificateBinding, namespace: string, status: ClientCertificateBindingStatus, certificate: CertificateOutcome): void {
    const labels = { namespace, name: binding.metadata.name, host: binding.spec.host };
    const previous = this.#metricLabels.get(bindingKey(binding));
    if (previous && previous.host !== labels.host) this.#o.metrics.forgetBinding(previous);
    this.#metricLabels.set(bindingKey(binding), labels);
    const ready = status.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    this.#o.metrics.bindingReady.set(labels, ready ? 1 : 0);
    if (certificate.ok) this.#o.metrics.certificateNotAfter.set(labels, Math.floor(certificate.facts.notAfter.getTime() / 1000));
    else this.#o.metrics.certificateNotAfter.remove(labels);
  }
}

/** What port allocation reads of a binding; a change re-runs the allocation. */
function portInputs(b: ClientCertificateBinding): string {
  return `${b.spec.listenerPort ?? ''}|${b.status?.listenerPort ?? ''}|${b.metadata.creationTimestamp ?? ''}`;
}

