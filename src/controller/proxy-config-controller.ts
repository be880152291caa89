import type { Logger } from 'pino';
import { bindingKey, type ClientCertificateBinding } from '../api/v1alpha1/types.ts';
import { errorSummary, isTransient } from '../errors.ts';
import { isNotFound, type KubeClient, type KubeObject } from '../k8s/client.ts';
import type { Informer } from '../k8s/informer.ts';
import type { ControllerMetrics } from '../metrics/metrics.ts';
import type { SecretLike } from '../model/certificate-input.ts';
import { buildEgressRoutes, resolveBindings, type SecretsByNamespace } from '../model/egress-routes.ts';
import type { PortRange } from '../model/listener-ports.ts';
import { networkPolicies } from '../model/network-policies.ts';
import {
  annotationContentHash,
  componentConfig,
  credentialsSelector,
  labelComponent,
  labelManagedBy,
  managedByValue,
  parseManifest,
  proxyConfigMapName,
  proxyObjects,
} from '../proxy/proxy-objects.ts';
import { renderNginx, type NginxRenderOptions } from '../render/nginx.ts';
import type { Problem } from '../status/evaluate.ts';
import type { ServedCertificateHistory } from '../status/programmed.ts';
import { HostResolver } from './host-resolution.ts';
import type { IdentityCache } from './identity-cache.ts';
import { WorkQueue } from './queue.ts';

export interface ProxyConfigControllerOptions {
  client: KubeClient;
  bindings: Informer<ClientCertificateBinding>;
  secrets: Informer<SecretLike>;
  identities: IdentityCache;
  history: ServedCertificateHistory;
  /** The proxy's namespace: the ConfigMap, credential Secrets and NetworkPolicies live here. */
  namespace: string;
  listenerPorts: PortRange;
  render: NginxRenderOptions;
  proxyPodLabels: Record<string, string>;
  metrics: ControllerMetrics;
  logger: Logger;
  now?: () => Date;
  /** Batches a burst of changes (a cold start, a mass rotation) into one render. */
  coalesceMs?: number;
  hosts?: HostResolver;
  /** Called with the bindings whose proxy-side problem appeared, changed or cleared. */
  onProblemsChanged?: (keys: string[]) => void;
}

const key = 'proxy-config';
const controllerName = 'proxy-config';
const policyComponent = 'proxy-network-policy';
const policySelector = `${labelManagedBy}=${managedByValue},${labelComponent}=${policyComponent}`;
const configSelector = `${labelManagedBy}=${managedByValue},${labelComponent}=${componentConfig}`;

interface Desired extends KubeObject {
  metadata: KubeObject['metadata'] & { annotations?: Record<string, string> };
}

/**
 * Aggregates every binding into the one proxy configuration (Envoy Gateway's translator
 * stages, ingress-nginx's "compare before reload"): resolve and decode (cached), build
 * routes and render (pure), hash, and write only the objects whose content hash changed.
 * One key, so bursts coalesce into one render; leader only, like every writer.
 */
export class ProxyConfigController {
  readonly #o: ProxyConfigControllerOptions;
  readonly #log: Logger;
  readonly #queue = new WorkQueue({ baseMs: 200, maxMs: 30_000 });
  readonly #hosts: HostResolver;
  #problems = new Map<string, Problem>();

  constructor(options: ProxyConfigControllerOptions) {
    this.#o = options;
    this.#log = options.logger.child({ controller: controllerName });
    this.#hosts = options.hosts ?? new HostResolver();
    const wake = (): void => this.#queue.addAfter(key, options.coalesceMs ?? 100);
    options.bindings.addHandlers({ onAdd: wake, onUpdate: wake, onDelete: wake });
    options.secrets.addHandlers({ onAdd: wake, onUpdate: wake, onDelete: wake });
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

  async run(signal: AbortSignal): Promise<void> {
    this.#queue.add(key);
    for (let k = await this.#queue.get(signal); k !== undefined; k = await this.#queue.get(signal)) {
      const stopTimer = this.#o.metrics.reconcileDuration.startTimer({ controller: controllerName });
      try {
        await this.reconcile(signal);
        this.#queue.forget(k);
        this.#o.metrics.reconcileTotal.inc({ controller: controllerName, result: 'success' });
      } catch (err) {
        const delay = this.#queue.addRateLimited(k);
        this.#o.metrics.reconcileTotal.inc({ controller: controllerName, result: 'error' });
        this.#o.metrics.reconcileErrors.inc({ controller: controllerName });
        this.#log[isTransient(err) ? 'info' : 'error']({ err: errorSummary(err), retryInMs: delay }, 'proxy config reconcile failed; retrying');
      } finally {
        stopTimer();
        this.#queue.done(k);
      }
    }
  }

  async reconcile(signal?: AbortSignal): Promise<{ hash: string; written: number }> {
    const { namespace } = this.#o;
    const bindings = this.#o.bindings.list().filter((b) => !b.metadata.deletionTimestamp);
    const secretsByNamespace = new Map<string, Map<string, SecretLike>>();
    for (const s of this.#o.secrets.list()) {
      const ns = s.metadata.namespace ?? '';
      let m = secretsByNamespace.get(ns);
      if (!m) secretsByNamespace.set(ns, (m = new Map()));
      m.set(s.metadata.name, s);
    }
    const resolved = await resolveBindings(bindings, secretsByNamespace as SecretsByNamespace, this.#o.identities.decode);
    const built = buildEgressRoutes(resolved, { now: (this.#o.now ?? (() => new Date()))(), listenerPorts: this.#o.listenerPorts });
    const { routes, unresolvable } = await this.#hosts.partition(built.routes);
    this.#setProblems(unresolvable);
    const rendered = renderNginx(routes, this.#o.render);
    const objects = proxyObjects(rendered, routes, namespace);
    const allowed = new Map(bindings.map((b) => [bindingKey(b), b.spec.allowedNamespaces]));
    const policies = networkPolicies(routes, (k) => allowed.get(k), namespace, this.#o.proxyPodLabels, {
      [labelManagedBy]: managedByValue,
      [labelComponent]: policyComponent,
    });
    // Recorded before writing: an agent may apply it before our write call returns.
    this.#o.history.record(rendered.hash, objects.manifest.bindings);
    if (signal?.aborted) return { hash: rendered.hash, written: 0 };

    // Credentials first and the ConfigMap after: a manifest never names a Secret that
    // does not exist yet. Deletions last, once no manifest names them.
    const credentials = await this.#collection('/api/v1', 'secrets', credentialsSelector, objects.secrets);
    const policyObjects = await this.#collection('/apis/networking.k8s.io/v1', 'networkpolicies', policySelector, policies);
    const configMaps = await this.#collection('/api/v1', 'configmaps', configSelector, [objects.configMap]);
    let written = (await credentials.apply()) + (await policyObjects.apply()) + (await configMaps.apply());
    written += (await credentials.prune()) + (await policyObjects.prune());
    if (written > 0) {
      this.#log.info({ hash: rendered.hash.slice(0, 16), routes: routes.length, leftOut: built.leftOut.length + unresolvable.size, written }, 'proxy configuration written');
    }
    return { hash: rendered.hash, written };
  }

  /**
   * One kind of labelled object, listed once per reconcile: apply() creates what is
   * missing and replaces what differs (by content-hash annotation); prune() deletes
   * labelled objects no longer desired. The caller orders the two across kinds.
   */
  async #collection(apiPrefix: string, resource: string, labelSelector: string, desired: readonly Desired[]): Promise<{ apply(): Promise<number>; prune(): Promise<number> }> {
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
          if (current) await client.replace(`${path}/${d.metadata.name}`, { ...d, metadata: { ...d.metadata, resourceVersion: current.metadata.resourceVersion } });
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

  /** Why the proxy leaves a binding out when nothing in its own status explains it (an unresolvable host). */
  problemFor(key: string): Problem | undefined {
    return this.#problems.get(key);
  }

  #setProblems(next: Map<string, Problem>): void {
    const changed = [...new Set([...this.#problems.keys(), ...next.keys()])].filter((k) => this.#problems.get(k)?.message !== next.get(k)?.message);
    this.#problems = next;
    if (changed.length > 0) this.#o.onProblemsChanged?.(changed);
  }

  #configMapPath(): string {
    return `/api/v1/namespaces/${this.#o.namespace}/configmaps/${proxyConfigMapName}`;
  }
}

