import type { Logger } from 'pino';
import { componentConfig, componentCredentials, componentNetworkPolicy, managedLabels, managedSelector } from '../api/labels.ts';
import type { KubeObject } from '../api/meta.ts';
import { bindingKey, type ClientCertificateBinding } from '../api/v1alpha1/types.ts';
import { isNotFound, type KubeClient } from '../k8s/client.ts';
import type { Informer } from '../k8s/informer.ts';
import type { SecretCache } from '../k8s/secret-cache.ts';
import type { ControllerMetrics } from '../metrics/metrics.ts';
import { resolveCertificateInput, type CertificateInput } from '../model/certificate-input.ts';
import type { IdentityOutcome } from '../model/egress-routes.ts';
import type { PortRange } from '../model/listener-ports.ts';
import type { DestinationPolicy } from '../model/destinations.ts';
import { networkPolicies, proxyEgressPolicy } from '../model/network-policies.ts';
import { secretReferences } from '../model/secret-refs.ts';
import { annotationContentHash, parseManifest, proxyConfigMapName, proxyObjects } from '../proxy/proxy-objects.ts';
import type { EgressRoute } from '../model/egress-routes.ts';
import type { RenderedConfig } from '../render/files.ts';
import type { HaproxyServer } from '../render/haproxy.ts';
import { systemClock, type Clock } from '../runner/clock.ts';
import { Runner, type ReconcileResult } from '../runner/runner.ts';
import type { ServedCertificateHistory } from '../status/programmed.ts';
import { translate } from '../translate/translate.ts';
import type { HostResolver } from './host-resolution.ts';
import { isTransientOutcome, type IdentityCache } from './identity-cache.ts';

export interface ProxyConfigControllerOptions {
  client: KubeClient;
  bindings: Informer<ClientCertificateBinding>;
  secrets: SecretCache;
  identities: IdentityCache;
  history: ServedCertificateHistory;
  hosts: HostResolver;
  /** Where the proxy may connect: checked per binding, and rendered as the proxy pods' egress NetworkPolicy. */
  destinations: () => DestinationPolicy;
  /** The proxy's namespace: the ConfigMap, credential Secrets and NetworkPolicies live here. */
  namespace: string;
  listenerPorts: PortRange;
  endpointFor: (port: number) => string;
  /** Routes → the data plane's files (renderNginx or renderHaproxy, with the proxy's options bound). */
  render: (routes: readonly EgressRoute[]) => RenderedConfig & { servers?: readonly HaproxyServer[]; skeletonHash?: string };
  proxyPodLabels: Record<string, string>;
  metrics: ControllerMetrics;
  logger: Logger;
  clock?: Clock;
  /** Batches a burst of changes (a cold start, a mass rotation) into one render. */
  coalesceMs?: number;
}

const key = 'proxy-config';
const controllerName = 'proxy-config';
const policySelector = managedSelector(componentNetworkPolicy);
const configSelector = managedSelector(componentConfig);

interface Desired extends KubeObject {
  metadata: KubeObject['metadata'] & { annotations?: Record<string, string> };
}

/**
 * Aggregates every binding into the one proxy configuration (Envoy Gateway's translator
 * stages, ingress-nginx's "compare before reload"): read and decode the inputs (cached),
 * translate and render (pure), hash, and write only the objects whose content hash
 * changed. One key, so bursts coalesce into one render; leader only, like every writer.
 */
export class ProxyConfigController {
  readonly #o: ProxyConfigControllerOptions;
  readonly #runner: Runner;
  readonly #clock: Clock;
  /** The identity each binding was last served with: what it keeps while a new one decodes. */
  #served = new Map<string, IdentityOutcome>();

  constructor(options: ProxyConfigControllerOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#runner = new Runner({
      name: controllerName,
      reconcile: (_key, signal) => this.reconcile(signal),
      logger: options.logger,
      backoff: { baseMs: 200, maxMs: 30_000 },
      clock: this.#clock,
      observer: options.metrics.runnerObserver(controllerName),
    });
    const wake = (): void => this.wake();
    options.bindings.addHandlers({ onAdd: wake, onUpdate: wake, onDelete: wake });
    options.secrets.onChange(wake);
  }

  /** Something the configuration depends on changed; a burst of calls renders once. */
  wake(): void {
    this.#runner.addAfter(key, this.#o.coalesceMs ?? 100);
  }

  /** Reconciles finished so far. */
  get reconciled(): number {
    return this.#runner.reconciled;
  }

  /** Learns the configuration already in the cluster, so replicas serving it count as programmed after a restart. */
  async loadHistory(): Promise<void> {
    try {
      const cm = await this.#o.client.get<{ binaryData?: Record<string, string> }>(this.#configMapPath());
      const manifest = parseManifest(cm);
      if (manifest) this.#o.history.record(manifest.hash, manifest.bindings);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** Runs for one leadership term. */
  async run(signal: AbortSignal): Promise<void> {
    this.#runner.add(key);
    await this.#runner.run(signal);
  }

  shutDown(): void {
    this.#runner.shutDown();
  }

  async reconcile(signal?: AbortSignal): Promise<ReconcileResult & { hash: string; written: number }> {
    const { namespace, secrets, identities } = this.#o;
    const bindings = this.#o.bindings.list().filter((b) => !b.metadata.deletionTimestamp);
    // Inputs first (Secrets through the cache, certificates decoded once per version, in
    // the sandbox), then the pure translation over all of them. No render waits on a
    // decode: a binding whose new certificate is still decoding keeps the one it was
    // served with, a new binding waits out of the config, and the decode wakes a render.
    const decoded = new Map<string, IdentityOutcome>();
    for (const b of bindings) {
      const found = await secrets.getAll(
        b.metadata.namespace,
        secretReferences(b.spec).map((r) => r.name),
      );
      const input = resolveCertificateInput(b.spec, (name) => found.get(name));
      const outcome = input.ok ? identities.want(input, () => this.wake()) : undefined;
      if (outcome) decoded.set(bindingKey(b), outcome);
    }
    const identityOf = (_input: CertificateInput, b: ClientCertificateBinding): IdentityOutcome | undefined => {
      const key = bindingKey(b);
      const outcome = decoded.get(key);
      return outcome && !isTransientOutcome(outcome) ? outcome : (this.#served.get(key) ?? outcome);
    };
    const destinations = this.#o.destinations();
    const hostProblems = await this.#o.hosts.problems(
      bindings.map((b) => b.spec.host),
      destinations,
    );
    const translation = translate(bindings, (ns, name) => secrets.peek(ns, name), identityOf, {
      now: new Date(this.#clock.now()),
      listenerPorts: this.#o.listenerPorts,
      endpointFor: this.#o.endpointFor,
      dataPlane: { hostProblem: (host) => hostProblems.get(host) },
    });
    const { routes } = translation;
    this.#served = new Map(translation.bindings.flatMap((t) => (t.route && t.checks.certificate.ok ? [[t.key, t.checks.certificate] as const] : [])));
    const rendered = this.#o.render(routes);
    const objects = proxyObjects(rendered, routes, namespace);
    const allowed = new Map(bindings.map((b) => [bindingKey(b), b.spec.allowedNamespaces]));
    const policyLabels = managedLabels(componentNetworkPolicy);
    const policies = [
      proxyEgressPolicy(destinations, namespace, this.#o.proxyPodLabels, policyLabels),
      ...networkPolicies(routes, (k) => allowed.get(k), namespace, this.#o.proxyPodLabels, policyLabels),
    ];
    // Time alone changes what is served (a certificate expires), and a host that did not
    // resolve may start to: look again then, without waiting for an object to change.
    const requeueAfterMs = hostProblems.size > 0 ? Math.min(translation.requeueAfterMs ?? Infinity, this.#o.hosts.retryAfterMs) : translation.requeueAfterMs;
    // Recorded before writing: an agent may apply it before our write call returns.
    this.#o.history.record(rendered.hash, objects.manifest.bindings);
    if (signal?.aborted) return { hash: rendered.hash, written: 0, requeueAfterMs };

    // Credentials first and the ConfigMap after: a manifest never names a Secret that
    // does not exist yet. Deletions last, once no manifest names them.
    const credentials = await this.#collection('/api/v1', 'secrets', managedSelector(componentCredentials), objects.secrets);
    const policyObjects = await this.#collection('/apis/networking.k8s.io/v1', 'networkpolicies', policySelector, policies);
    const configMaps = await this.#collection('/api/v1', 'configmaps', configSelector, [objects.configMap]);
    let written = (await credentials.apply()) + (await policyObjects.apply()) + (await configMaps.apply());
    written += (await credentials.prune()) + (await policyObjects.prune());
    if (written > 0) {
      this.#runner.logger.info(
        { hash: rendered.hash.slice(0, 16), routes: routes.length, leftOut: translation.leftOut.length, written },
        'proxy configuration written',
      );
    }
    return { hash: rendered.hash, written, requeueAfterMs };
  }

  /**
   * One kind of labelled object, listed once per reconcile: apply() creates what is
   * missing and replaces what differs (by content-hash annotation); prune() deletes
   * labelled objects no longer desired. The caller orders the two across kinds.
   */
  async #collection(
    apiPrefix: string,
    resource: string,
    labelSelector: string,
    desired: readonly Desired[],
  ): Promise<{ apply(): Promise<number>; prune(): Promise<number> }> {
    const path = `${apiPrefix}/namespaces/${this.#o.namespace}/${resource}`;
    const existing = (await this.#o.client.list<Desired>(path, { labelSelector })).items;
    const byName = new Map(existing.map((o) => [o.metadata.name, o]));
    const client = this.#o.client;
    const writes = this.#o.metrics.proxyObjectWrites;
    return {
      async apply() {
        let written = 0;
        for (const d of desired) {
          const current = byName.get(d.metadata.name);
          if (current && current.metadata.annotations?.[annotationContentHash] === d.metadata.annotations?.[annotationContentHash]) continue;
          if (current)
            await client.replace(`${path}/${d.metadata.name}`, { ...d, metadata: { ...d.metadata, resourceVersion: current.metadata.resourceVersion } });
          else await client.create(path, d);
          writes.inc({ resource, verb: current ? 'replace' : 'create' });
          written++;
        }
        return written;
      },
      async prune() {
        const wanted = new Set(desired.map((d) => d.metadata.name));
        let deleted = 0;
        for (const o of existing) {
          if (wanted.has(o.metadata.name)) continue;
          try {
            await client.delete(`${path}/${o.metadata.name}`);
            writes.inc({ resource, verb: 'delete' });
            deleted++;
          } catch (err) {
            if (!isNotFound(err)) throw err;
          }
        }
        return deleted;
      },
    };
  }

  #configMapPath(): string {
    return `/api/v1/namespaces/${this.#o.namespace}/configmaps/${proxyConfigMapName}`;
  }
}
