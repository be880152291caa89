import type { Logger } from 'pino';
import { annotationBinding, annotationContentHash, annotationFingerprint, componentNetworkPolicy, managedLabels } from '../api/labels.ts';
import type { KubeObject } from '../api/meta.ts';
import { bindingKey, type ClientCertificateBinding } from '../api/v1alpha1/types.ts';
import type { KubeClient } from '../k8s/client.ts';
import type { Informer } from '../k8s/informer.ts';
import { OwnedObjects, type OwnedObject } from '../k8s/owned-objects.ts';
import type { ControllerMetrics } from '../metrics/metrics.ts';
import type { DestinationPolicy } from '../model/destinations.ts';
import type { IdentityOutcome } from '../model/egress-routes.ts';
import type { PortRange } from '../model/listener-ports.ts';
import { networkPolicies, networkPolicyName, proxyEgressPolicy } from '../model/network-policies.ts';
import {
  bindingObject,
  bundleNamesOf,
  bundleObjects,
  configDigest,
  isBundleObjectName,
  credentialSecretName,
  parseManifest,
  proxyConfigMapName,
  sharedConfigMap,
  BundleObjectMemo,
  CompressedFiles,
  sharedHash,
} from '../contract/proxy-objects.ts';
import type { ProxyRenderer } from '../dataplane/driver.ts';
import { systemClock, type Clock } from '../runner/clock.ts';
import { earliest, Runner, type ReconcileResult } from '../runner/runner.ts';
import type { TokenBucket } from '../runner/token-bucket.ts';
import type { ServedCertificateHistory } from '../status/programmed.ts';
import { translateBinding } from '../translate/translate.ts';
import type { BindingInputs } from '../inputs/binding-inputs.ts';
import { isTransientOutcome } from '../inputs/identity-cache.ts';
import { BundleReferences } from './bundle-references.ts';
import { stampAnnotations } from '../contract/rotation-stamps.ts';

export interface ProxyConfigControllerOptions {
  client: KubeClient;
  bindings: Informer<ClientCertificateBinding>;
  /** Secrets, decoded certificates, hosts' answers and listener ports, gathered with the status controller's. */
  inputs: BindingInputs;
  history: ServedCertificateHistory;
  /** Where the proxy may connect: checked per binding, and rendered as the proxy pods' egress NetworkPolicy. */
  destinations: () => DestinationPolicy;
  /** The proxy's namespace: the ConfigMap, binding objects and NetworkPolicies live here. */
  namespace: string;
  listenerPorts: PortRange;
  endpointFor: (port: number) => string;
  renderer: ProxyRenderer;
  /** Paces every write; proxy objects take their turn after status writes ('low'), but a served binding's new object goes first ('urgent'). */
  limiter?: TokenBucket;
  proxyPodLabels: Record<string, string>;
  metrics: ControllerMetrics;
  logger: Logger;
  clock?: Clock;
  /** Batches a burst of changes into one write of the index. */
  coalesceMs?: number;
  /**
   * Concurrent binding reconciles (default 16). Most of a reconcile's time is a write
   * waiting its turn: a new binding's objects and the index wait behind status writes, and
   * under churn there nearly always is one. With 4 workers, an add, a removal and the index
   * held all of them, and a rotation waited for a worker (bench:churn: decoded → object
   * sent p50 185 ms, p99 1,654 ms; with 16, 2 ms and 99 ms). The write budget, not the
   * worker count, bounds what reaches the API server.
   */
  workers?: number;
  /**
   * Watches of the objects it writes (secrets, networkpolicies, configmaps), metadata and
   * our annotations only: what exists is read from them, never listed with key material,
   * and a change it did not make is corrected at once.
   */
  owned: Partial<Record<OwnedResource, Informer<KubeObject>>>;
}

type OwnedResource = 'secrets' | 'networkpolicies' | 'configmaps';

const indexKey = '@index';
const controllerName = 'proxy-config';
const apiPrefixes: Record<OwnedResource, string> = { secrets: '/api/v1', networkpolicies: '/apis/networking.k8s.io/v1', configmaps: '/api/v1' };

/** What the controller wrote for a served binding: the index is computed from these. */
interface Entry {
  contentHash: string;
  fingerprintSha256: string;
}

/**
 * Turns each binding into its own proxy objects (a Secret with everything the binding
 * adds to the proxy, and the NetworkPolicy that opens its port), and keeps one small
 * index over them. Envoy Gateway's translator stages per binding: the inputs, gathered
 * once for both controllers (BindingInputs), translate and render this binding (pure),
 * hash, and write only when the hash changed (OwnedObjects). A change to one binding
 * costs that binding's objects and the index, whatever the number of bindings; a cold
 * start writes each object once. Leader only, like every writer.
 */
export class ProxyConfigController {
  readonly #o: ProxyConfigControllerOptions;
  readonly #runner: Runner;
  readonly #clock: Clock;
  /** The identity each binding was last served with: what it keeps while a new one decodes. */
  readonly #served = new Map<string, IdentityOutcome>();
  /** Served bindings, as written. */
  readonly #entries = new Map<string, Entry>();
  /** The shared files' gzip, by digest: they change only with the flags, the index with every binding. */
  readonly #compressed = new CompressedFiles();
  readonly #bundleObjects = new BundleObjectMemo();
  /** The proxy objects, written when their content changed; an edit that is not ours wakes the key that owns the object. */
  readonly #owned: OwnedObjects<OwnedResource>;
  /** Which binding objects reference which bundle objects: a bundle goes once none does. */
  readonly #bundles = new BundleReferences();
  /** Bundle objects being removed: a binding that references one again waits, then writes it anew. */
  readonly #bundleRemovals = new Map<string, Promise<void>>();
  /** Bundle objects being written, so the bindings that share one write it once. */
  readonly #bundleWrites = new Map<string, Promise<boolean>>();

  constructor(options: ProxyConfigControllerOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#runner = new Runner({
      name: controllerName,
      reconcile: (key, signal) => (key === indexKey ? this.#reconcileIndex(signal) : this.#reconcileBinding(key, signal)),
      logger: options.logger,
      workers: options.workers ?? 16,
      backoff: { baseMs: 200, maxMs: 30_000 },
      clock: this.#clock,
      observer: options.metrics.runnerObserver(controllerName),
    });
    options.bindings.addHandlers({
      onAdd: (b) => this.#runner.add(bindingKey(b)),
      onUpdate: (b, old) => {
        if (b.metadata.generation !== old.metadata.generation || b.metadata.deletionTimestamp !== old.metadata.deletionTimestamp)
          this.#runner.add(bindingKey(b));
      },
      onDelete: (b) => this.#runner.add(bindingKey(b)),
    });
    // A Secret, a decode, a host's answer or a moved port: the binding's inputs changed.
    options.inputs.onChange((key) => this.#runner.add(key));
    this.#owned = new OwnedObjects({
      client: options.client,
      namespace: options.namespace,
      apiPrefixes,
      informers: options.owned,
      ...(options.limiter ? { limiter: options.limiter } : {}),
      wrote: (resource, verb) => options.metrics.proxyObjectWrites.inc({ resource, verb }),
      // Someone else's edit or deletion: the owner writes it again (or removes it).
      changedElsewhere: (resource, o) => {
        for (const key of this.#ownersOf(resource, o)) this.#runner.add(key);
      },
    });
  }

  /** The key whose reconcile writes this object. */
  #ownerOf(resource: OwnedResource, o: OwnedObject): string {
    const binding = o.metadata.annotations?.[annotationBinding];
    return resource === 'configmaps' || binding === undefined ? indexKey : binding;
  }

  /** The keys to wake for an object: a bundle's are the bindings that reference it (they write it), or the index (which removes it). */
  #ownersOf(resource: OwnedResource, o: OwnedObject): string[] {
    if (resource === 'secrets' && isBundleObjectName(o.metadata.name)) {
      const users = [...this.#bundles.users(o.metadata.name)];
      return users.length > 0 ? users : [indexKey];
    }
    return [this.#ownerOf(resource, o)];
  }

  /** Something every binding depends on changed (where the proxy may connect): look at all of them. */
  wake(): void {
    for (const b of this.#o.bindings.list()) this.#runner.add(bindingKey(b));
    this.#wakeIndex();
  }

  /**
   * The index waits for a burst to end. Each write of it records every binding's
   * fingerprint for Programmed, so at ten thousand bindings a cold start's writes are
   * spread further apart (25 ms, plus 1 ms per 50 bindings): the index only says when a
   * replica holds everything; the agent serves a binding's object as soon as it arrives.
   */
  #wakeIndex(): void {
    this.#runner.addAfter(indexKey, this.#o.coalesceMs ?? 25 + Math.floor(this.#entries.size / 50));
  }

  /** Reconciles finished so far. */
  get reconciled(): number {
    return this.#runner.reconciled;
  }

  /**
   * Learns the configuration already in the cluster, so replicas serving it count as
   * programmed after a restart: the index's hash, recomputed from the binding objects'
   * annotations (never their data), with their fingerprints. Call once the owned watches
   * have synced.
   */
  async loadHistory(): Promise<void> {
    const configMap = await this.#owned.read<KubeObject & { binaryData?: Record<string, string> }>('configmaps', proxyConfigMapName);
    if (!configMap) return;
    const manifest = parseManifest(configMap);
    if (!manifest || manifest.dataPlane !== this.#o.renderer.dataPlane || !Array.isArray(manifest.files)) return;
    const entries = new Map<string, Entry>();
    for (const o of this.#owned.list('secrets')) {
      const a = o.metadata.annotations ?? {};
      const key = a[annotationBinding];
      const hash = a[annotationContentHash];
      if (key && hash && credentialSecretName(key) === o.metadata.name)
        entries.set(key, { contentHash: hash, fingerprintSha256: a[annotationFingerprint] ?? '' });
    }
    const digest = configDigest(
      manifest.dataPlane,
      sharedHash(manifest.files),
      [...entries].map(([k, e]) => [k, e.contentHash] as const),
    );
    if (digest === manifest.hash) this.#o.history.record(digest, fingerprints(entries));
  }

  /** Runs for one leadership term. */
  async run(signal: AbortSignal): Promise<void> {
    // What exists, from the owned watches: a term starts from the cluster, not from what the last term wrote.
    this.#owned.seed();
    this.#entries.clear();
    // The bundles the binding objects in the cluster reference, from their annotations:
    // none is removed before every binding has had its say.
    this.#bundles.clear();
    for (const o of this.#owned.list('secrets')) {
      const key = o.metadata.annotations?.[annotationBinding];
      if (key !== undefined && credentialSecretName(key) === o.metadata.name) this.#bundles.settle(key, bundleNamesOf(o));
    }
    this.wake();
    // Objects whose binding is gone (deleted while no controller led) are removed by that key's reconcile.
    const present = new Set(this.#o.bindings.list().map(bindingKey));
    for (const resource of ['secrets', 'networkpolicies'] as const) {
      for (const o of this.#owned.list(resource)) {
        const owner = this.#ownerOf(resource, o);
        if (!present.has(owner)) this.#runner.add(owner);
      }
    }
    await this.#runner.run(signal);
  }

  shutDown(): void {
    this.#runner.shutDown();
  }

  /** One binding: its route, rendered into its own objects, written when they changed. */
  async #reconcileBinding(key: string, signal?: AbortSignal): Promise<ReconcileResult> {
    const binding = this.#o.bindings.get(key);
    if (!binding || binding.metadata.deletionTimestamp) {
      this.#served.delete(key);
      return this.#unserve(key, signal);
    }
    // No reconcile waits on a decode: a binding whose new certificate is still decoding
    // keeps the one it was served with, a new one waits out of the config, and the decode
    // wakes this key (see BindingInputs).
    const gathered = await this.#o.inputs.gather(binding, { meanwhile: this.#served.get(key) });
    if (!gathered.ready) return { requeueAfterMs: gathered.requeueAfterMs };
    const { inputs } = gathered;
    // Nothing served yet to keep, and no verdict on the file: what exists stays as it is
    // (after a restart, the objects the last term wrote) until the decode says otherwise.
    if (isTransientOutcome(inputs.identity)) return { requeueAfterMs: gathered.requeueAfterMs };
    // A host never answered is not served yet: the destination policy must see where it
    // leads. What exists stays as it is, and the answer wakes this key.
    if (inputs.hostUnanswered) return {};
    const translated = translateBinding(binding, inputs.secrets, inputs.identities, inputs.ports, {
      now: new Date(this.#clock.now()),
      listenerPorts: this.#o.listenerPorts,
      endpointFor: this.#o.endpointFor,
      caSubjects: this.#o.inputs.caSubjects,
      dataPlane: { hostProblem: inputs.hostProblem, hostAddresses: inputs.hostAddresses },
    });
    // Time alone changes what is served (a certificate expires); a host's new answer wakes the key itself.
    const requeueAfterMs = earliest(translated.status.requeueAfterMs, gathered.requeueAfterMs);
    const route = translated.route;
    if (!route || !translated.checks.certificate.ok) {
      const result = await this.#unserve(key, signal);
      return { ...result, requeueAfterMs };
    }
    this.#served.set(key, translated.checks.certificate);
    const part = this.#o.renderer.binding(route);
    const object = bindingObject(part, this.#o.namespace);
    const bundles = bundleObjects(part, this.#o.namespace, this.#bundleObjects);
    const bundleNames = bundles.map((b) => b.metadata.name);
    const [policy] = networkPolicies(
      [route],
      () => binding.spec.allowedNamespaces,
      this.#o.namespace,
      this.#o.proxyPodLabels,
      managedLabels(componentNetworkPolicy),
    );
    if (signal?.aborted) return {};
    const contentHash = object.metadata.annotations[annotationContentHash]!;
    const entry = { contentHash, fingerprintSha256: route.clientCertificate.fingerprintSha256 };
    // Bundles first: the agent reads them through the same watch as the binding object, so
    // it sees a bundle before any reference to it.
    this.#bundles.use(key, bundleNames);
    const written: boolean[] = [];
    for (const bundle of bundles) written.push(await this.#putBundle(bundle));
    // Stamped with the Secret version it was rendered from and when each stage saw it; the
    // send time is taken once the write has its turn in the budget.
    const source = inputs.source;
    const stamp =
      source &&
      ((): Record<string, string> =>
        stampAnnotations({ source: source.source, times: { seen: source.seen, read: source.read, decoded: source.decoded, written: Date.now() } }));
    // A binding the proxy serves already waits on this write to serve its new certificate
    // (a rotation): it goes before status writes in the budget. A new binding's objects
    // keep their place after status, so a cold start still writes status first.
    const priority = this.#entries.has(key) ? 'urgent' : 'low';
    written.push(
      await this.#owned.put('secrets', object, { ...(stamp ? { atSend: stamp } : {}), priority }),
      await this.#owned.put('networkpolicies', policy!),
    );
    // Bundles this binding no longer references go after the object that stopped referencing them.
    const released = this.#bundles.settle(key, bundleNames);
    const before = this.#entries.get(key);
    this.#entries.set(key, entry);
    if (before?.contentHash !== contentHash || released.length > 0) this.#wakeIndex();
    const count = written.filter(Boolean).length;
    if (count > 0) this.#runner.logger.debug({ binding: key, written: count }, 'binding proxy objects written');
    return { requeueAfterMs };
  }

  /**
   * A bundle object, written anew if a removal of it is under way (the removal finishes
   * first). Bindings that share a bundle reconcile side by side: one writes it, and the
   * others wait for that write rather than race it to a conflict and a backoff.
   */
  async #putBundle(bundle: OwnedObject): Promise<boolean> {
    const name = bundle.metadata.name;
    // Checked again after every wait, and set with no wait in between: two reconciles must
    // not both find the way clear.
    let busy: Promise<unknown> | undefined;
    while ((busy = this.#bundleRemovals.get(name) ?? this.#bundleWrites.get(name))) await busy.catch(() => undefined);
    const write = this.#owned.put('secrets', bundle).finally(() => {
      if (this.#bundleWrites.get(name) === write) this.#bundleWrites.delete(name);
    });
    this.#bundleWrites.set(name, write);
    return write;
  }

  /**
   * Bundle objects no binding object references, removed after the objects that stopped
   * referencing them were written (the index's reconcile runs after the bindings'): the
   * agent sees the reference go before the bundle. Owned objects the last term wrote are
   * among them, once every binding was looked at.
   */
  async #removeUnreferencedBundles(): Promise<number> {
    let removed = 0;
    for (const name of this.#owned.known('secrets')) {
      if (!isBundleObjectName(name) || this.#bundles.isReferenced(name) || this.#bundleRemovals.has(name)) continue;
      const removal = this.#owned.remove('secrets', name).finally(() => this.#bundleRemovals.delete(name));
      this.#bundleRemovals.set(
        name,
        removal.catch(() => undefined),
      );
      await removal;
      removed++;
    }
    return removed;
  }

  /** A binding the proxy does not serve (any more): its objects go, and the index without it. */
  async #unserve(key: string, signal?: AbortSignal): Promise<ReconcileResult> {
    if (signal?.aborted) return {};
    const had = this.#entries.delete(key);
    // Out of the index first: the agent's digest then no longer counts it.
    if (had) this.#wakeIndex();
    await this.#owned.remove('secrets', credentialSecretName(key));
    await this.#owned.remove('networkpolicies', networkPolicyName(key));
    // Its bundles go with the index's next reconcile, after the object that referenced them.
    if (this.#bundles.settle(key, []).length > 0) this.#wakeIndex();
    return {};
  }

  /** The shared ConfigMap with the index, and the proxy pods' egress policy. */
  async #reconcileIndex(signal?: AbortSignal): Promise<ReconcileResult> {
    const { namespace, renderer } = this.#o;
    const hashes = new Map([...this.#entries].map(([k, e]) => [k, e.contentHash]));
    const { configMap, manifest } = sharedConfigMap(renderer.dataPlane, renderer.shared(), hashes, namespace, this.#compressed);
    // Recorded before writing: an agent may apply it before our write call returns.
    this.#o.history.record(manifest.hash, fingerprints(this.#entries));
    if (signal?.aborted) return {};
    const policy = proxyEgressPolicy(this.#o.destinations(), namespace, this.#o.proxyPodLabels, managedLabels(componentNetworkPolicy));
    const written = [await this.#owned.put('networkpolicies', policy), await this.#owned.put('configmaps', configMap)].filter(Boolean).length;
    if (written > 0) this.#runner.logger.info({ hash: manifest.hash.slice(0, 16), bindings: manifest.bindings }, 'proxy index written');
    const removed = await this.#removeUnreferencedBundles();
    if (removed > 0) this.#runner.logger.info({ removed }, 'bundle objects no binding references removed');
    return {};
  }
}

/** Every served binding's entry, shared with the history rather than copied: at ten thousand, one object per binding per index write adds up. */
function fingerprints(entries: ReadonlyMap<string, Entry>): Record<string, { fingerprintSha256: string }> {
  const result: Record<string, { fingerprintSha256: string }> = {};
  for (const [key, entry] of entries) result[key] = entry;
  return result;
}
