import type { Logger } from 'pino';
import {
  annotationApplyError,
  annotationAppliedHash,
  annotationBinding,
  annotationBundles,
  annotationContentHash,
  annotationFingerprint,
  annotationListenerPort,
  componentConfig,
  componentCredentials,
  componentNetworkPolicy,
  managedSelector,
} from '../api/labels.ts';
import type { KubeObject } from '../api/meta.ts';
import { group, plural, version, type ClientCertificateBinding } from '../api/v1alpha1/types.ts';
import type { ControllerConfig } from '../config.ts';
import { errorSummary } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { EventRecorder } from '../k8s/events.ts';
import { Informer } from '../k8s/informer.ts';
import { SecretCache } from '../k8s/secret-cache.ts';
import { ControllerMetrics } from '../metrics/metrics.ts';
import { DestinationPolicy } from '../model/destinations.ts';
import { aborted, sleep } from '../runner/backoff.ts';
import { systemClock, type Clock } from '../runner/clock.ts';
import { TokenBucket } from '../runner/token-bucket.ts';
import { bindingsToRecheck, ServedCertificateHistory, type ProxyReplica } from '../status/programmed.ts';
import { BindingInputs } from '../inputs/binding-inputs.ts';
import { dnsResolve, HostResolver } from '../inputs/host-resolution.ts';
import type { IdentityDecoder } from '../inputs/identity-cache.ts';
import { decodeCertificateInput } from '../inputs/identity-decoder.ts';
import { BindingController } from './binding-controller.ts';
import { ClusterNetworks } from './cluster-networks.ts';
import { LeaderElector } from './leader-election.ts';
import { ProxyConfigController } from './proxy-config-controller.ts';
import { ClusterNamespaces } from './cluster-namespaces.ts';
import { componentPortReleases, PortReleaseStore, releasesOfVanished } from './port-releases.ts';
import { OwnedObjects } from '../k8s/owned-objects.ts';
import type { ProxyRenderer } from '../dataplane/driver.ts';
import { dataPlanes } from '../dataplane/registry.ts';

export interface ManagerDependencies {
  client: KubeClient;
  logger: Logger;
  /** Time as the controllers see it; tests move it by hand. */
  clock?: Clock;
  decode?: IdentityDecoder;
  hosts?: HostResolver;
}

interface PodLike extends KubeObject {
  status?: { conditions?: Array<{ type: string; status: string }> };
}

/**
 * Everything `mtls-egress controller` runs, wired once, in controller-runtime's manager
 * shape: the caches (bindings, the Secrets they reference, the proxy pods), the two
 * controllers on their runners, and leader election, which starts and stops the writers.
 * Built in-process by tests with an injected clock; run by the command with the system's.
 */
export class ControllerManager {
  readonly metrics = new ControllerMetrics();
  readonly bindingStatus: BindingController;
  readonly proxyConfig: ProxyConfigController | undefined;
  /** What both controllers translate from: Secrets, decoded certificates, hosts' answers, listener ports. */
  readonly inputs: BindingInputs;
  readonly #config: ControllerConfig;
  readonly #deps: ManagerDependencies;
  readonly #bindings: Informer<ClientCertificateBinding>;
  readonly #secrets: SecretCache;
  readonly #proxyPods: Informer<PodLike> | undefined;
  /** The proxy objects the proxy-config controller writes, metadata only: how it learns that someone else changed one. */
  readonly #owned: Informer<KubeObject>[] = [];
  readonly #networks: ClusterNetworks | undefined;
  /** Where the proxy may connect, as it stands: rebuilt when the cluster's networks change. */
  readonly #destinations: () => DestinationPolicy;
  readonly #namespaces: ClusterNamespaces;
  /**
   * Where the port releases are kept across restarts; absent with --data-plane none, where
   * no proxy listens on the ports (and the controller may write no ConfigMap): the
   * quarantine is then kept in memory only.
   */
  readonly #releasesWatch: Informer<KubeObject> | undefined;
  readonly #releases: PortReleaseStore | undefined;
  /** The bindings' NetworkPolicies, metadata only: each names the port its binding held. */
  #bindingPolicies: Informer<KubeObject> | undefined;
  #synced = false;

  constructor(config: ControllerConfig, deps: ManagerDependencies) {
    this.#config = config;
    this.#deps = deps;
    const { client, logger } = deps;
    const clock = deps.clock ?? systemClock;
    const metrics = this.metrics;
    const collections = (resource: (ns?: string) => string): string[] =>
      config.namespaces.length === 0 ? [resource()] : config.namespaces.map((ns) => resource(ns));

    this.#bindings = new Informer<ClientCertificateBinding>({
      client,
      logger,
      paths: collections((ns) => (ns ? `/apis/${group}/${version}/namespaces/${ns}/${plural}` : `/apis/${group}/${version}/${plural}`)),
      onError: () => metrics.watchErrors.inc({ resource: plural }),
    });
    // Metadata of every Secret, data of the referenced ones only.
    this.#secrets = new SecretCache({
      client,
      logger,
      paths: collections((ns) => (ns ? `/api/v1/namespaces/${ns}/secrets` : '/api/v1/secrets')),
      isReferenced: (key) => this.inputs.isReferenced(key),
      onWatchError: () => metrics.watchErrors.inc({ resource: 'secrets' }),
      onRead: (result) => metrics.secretReads.inc({ result }),
    });
    const endpointFor = (port: number): string => `http://${config.proxyService}.${config.namespace}.svc:${port}`;

    // One budget for status writes, Events and proxy objects, status first: a cold start of
    // 10,000 bindings writes at --status-qps rather than as fast as the API server answers,
    // and each binding's status does not wait behind another's Secret and NetworkPolicy.
    // The one exception goes before status: the new object of a binding the proxy already
    // serves (a rotation), which the proxy waits on.
    // Real time, not `clock`: it paces I/O, whatever time the controllers are shown.
    const writeLimiter = new TokenBucket({ qps: config.statusQps, burst: config.statusBurst });
    const withDataPlane = config.dataPlane !== 'none';
    const history = new ServedCertificateHistory();
    // Where the proxy may connect: refused ranges (fixed, and the cluster's own, read from
    // the API unless --cluster-cidrs names them) less what a platform team opened.
    // The nodes' own addresses are read whatever --cluster-cidrs says.
    this.#networks = withDataPlane ? new ClusterNetworks(client, logger) : undefined;
    const networks = this.#networks;
    const buildPolicy = (): DestinationPolicy =>
      new DestinationPolicy({
        clusterCidrs: config.clusterCidrs === 'auto' ? (networks?.cidrs() ?? []) : config.clusterCidrs,
        nodeAddresses: networks?.nodeAddresses() ?? [],
        allowed: config.allowedDestinations,
        podRangeKnown: config.clusterCidrs !== 'auto' || (networks?.podRangeKnown() ?? false),
        ...(networks?.apiServerEndpoints() ? { apiServer: networks.apiServerEndpoints() } : {}),
      });
    let policy = buildPolicy();
    const destinations = (): DestinationPolicy => policy;
    this.#destinations = destinations;
    this.#namespaces = new ClusterNamespaces(client, logger, () => metrics.watchErrors.inc({ resource: 'namespaces' }));
    const releasesWatch = withDataPlane
      ? ownedWatch(client, logger, `/api/v1/namespaces/${config.namespace}/configmaps`, componentPortReleases, () =>
          metrics.watchErrors.inc({ resource: 'configmaps' }),
        )
      : undefined;
    this.#releasesWatch = releasesWatch;
    this.#releases =
      releasesWatch &&
      new PortReleaseStore({
        owned: new OwnedObjects<'configmaps'>({
          client,
          namespace: config.namespace,
          apiPrefixes: { configmaps: '/api/v1' },
          informers: { configmaps: releasesWatch },
          limiter: writeLimiter,
          // Someone else changed the releases: ours are written again.
          changedElsewhere: () => this.#releases?.save(this.inputs.portReleases),
        }),
        namespace: config.namespace,
        logger,
      });
    this.inputs = new BindingInputs({
      bindings: this.#bindings,
      secrets: this.#secrets,
      listenerPorts: config.listenerPorts,
      portPolicy: {
        quarantineMs: config.portQuarantineMs,
        share: config.namespacePortShare,
        brokenGraceMs: config.brokenPortGraceMs,
        // The proxy's own listener: a status naming it must never reach the renderer.
        reserved: new Set([config.proxyStatusPort]),
        onReleased: (releases) => this.#releases?.save(releases),
      },
      namespaces: this.#namespaces,
      decode: deps.decode ?? decodeCertificateInput,
      ...(withDataPlane ? { hosts: { resolver: deps.hosts ?? new HostResolver({ clock, resolve: dnsResolve(config.dnsServers) }), destinations } } : {}),
      clock,
    });
    this.#proxyPods = withDataPlane
      ? new Informer<PodLike>({
          client,
          logger,
          paths: [`/api/v1/namespaces/${config.namespace}/pods`],
          keep: (p) => Object.entries(config.proxyPodLabels).every(([k, v]) => p.metadata.labels?.[k] === v),
          transform: (p) => ({
            metadata: {
              name: p.metadata.name,
              namespace: p.metadata.namespace,
              resourceVersion: p.metadata.resourceVersion,
              labels: p.metadata.labels,
              annotations: p.metadata.annotations,
            },
            status: { conditions: p.status?.conditions },
          }),
          onError: () => metrics.watchErrors.inc({ resource: 'pods' }),
        })
      : undefined;
    const proxyPods = this.#proxyPods;
    const owned = withDataPlane
      ? Object.fromEntries(
          (
            [
              ['secrets', '/api/v1', componentCredentials],
              ['networkpolicies', '/apis/networking.k8s.io/v1', componentNetworkPolicy],
              ['configmaps', '/api/v1', componentConfig],
            ] as const
          ).map(([resource, prefix, component]) => {
            const informer = ownedWatch(client, logger, `${prefix}/namespaces/${config.namespace}/${resource}`, component, () =>
              metrics.watchErrors.inc({ resource }),
            );
            this.#owned.push(informer);
            if (resource === 'networkpolicies') this.#bindingPolicies = informer;
            return [resource, informer];
          }),
        )
      : {};

    this.bindingStatus = new BindingController({
      client,
      bindings: this.#bindings,
      inputs: this.inputs,
      recorder: new EventRecorder(client, {
        component: 'mtls-egress-controller',
        instance: config.identity,
        logger,
        limiter: writeLimiter,
        observe: { result: (result) => metrics.eventWrites.inc({ result }), waiting: (count) => metrics.eventsWaiting.set(count) },
      }),
      writeLimiter,
      metrics,
      logger,
      ...(proxyPods ? { dataPlane: { replicas: () => proxyPods.list().map(proxyReplica), served: history.served } } : {}),
      listenerPorts: config.listenerPorts,
      endpointFor,
      workers: config.workers,
      clock,
    });
    this.proxyConfig = withDataPlane
      ? new ProxyConfigController({
          client,
          bindings: this.#bindings,
          inputs: this.inputs,
          history,
          destinations,
          namespace: config.namespace,
          listenerPorts: config.listenerPorts,
          endpointFor,
          renderer: proxyRenderer(config),
          limiter: writeLimiter,
          owned,
          proxyPodLabels: config.proxyPodLabels,
          metrics,
          logger,
          clock,
        })
      : undefined;
    // A replica that applied a configuration moves the Programmed of the bindings it changed;
    // a replica that comes, goes, or turns ready can move any binding's.
    const everyBinding = (): void => this.bindingStatus.enqueueAll();
    proxyPods?.addHandlers({
      onAdd: everyBinding,
      onUpdate: (pod, old) => {
        const keys = bindingsToRecheck(proxyReplica(old), proxyReplica(pod), history.served);
        if (keys === 'all') everyBinding();
        else for (const key of keys) this.bindingStatus.enqueue(key);
      },
      onDelete: everyBinding,
    });
    // A new pod or Service range can refuse any binding's destination.
    networks?.onChange(() => {
      const next = buildPolicy();
      const same =
        next.denied.length === policy.denied.length &&
        next.denied.every((d, i) => d.cidr.text === policy.denied[i]?.cidr.text) &&
        JSON.stringify(next.apiServer) === JSON.stringify(policy.apiServer) &&
        next.networkPolicyDenied.length === policy.networkPolicyDenied.length;
      if (same && next.gap?.reason === policy.gap?.reason) return;
      if (next.gap === undefined && policy.gap !== undefined) logger.info("the cluster's pod range is known now: pod addresses are refused as destinations");
      policy = next;
      this.bindingStatus.enqueueAll();
      this.proxyConfig?.wake();
    });
  }

  /** Ports named by the bindings' NetworkPolicies whose binding no longer exists. */
  #vanishedPorts(): Array<{ key: string; port: number }> {
    const vanished: Array<{ key: string; port: number }> = [];
    for (const np of this.#bindingPolicies?.list() ?? []) {
      const annotations = (np.metadata as { annotations?: Record<string, string> }).annotations ?? {};
      const key = annotations[annotationBinding];
      const port = Number(annotations[annotationListenerPort]);
      if (key !== undefined && Number.isInteger(port) && !this.#bindings.get(key)) vanished.push({ key, port });
    }
    return vanished;
  }

  /** The caches have synced: what /readyz reports. */
  get synced(): boolean {
    return this.#synced;
  }

  /**
   * Starts the caches, then leads (or campaigns to) until `signal` aborts; stops
   * everything before it resolves.
   */
  async run(signal: AbortSignal): Promise<void> {
    const { logger, client } = this.#deps;
    const config = this.#config;
    try {
      // Bindings first: the Secret cache keeps only what the binding index references.
      await Promise.race([this.#bindings.start(), aborted(signal)]);
      await Promise.race([
        Promise.all([
          this.#secrets.start(),
          this.#proxyPods?.start(),
          this.#networks?.start(),
          this.#releasesWatch?.start(),
          // A controller that may not list Namespaces still runs (consent is then Unknown and
          // the NetworkPolicy fails closed): their list is waited for a moment, not forever.
          Promise.race([this.#namespaces.start().catch(() => undefined), sleep(namespacesPatienceMs, signal).catch(() => undefined)]),
          Promise.all(this.#owned.map((i) => i.start())).then(() => this.proxyConfig?.loadHistory()),
        ]),
        aborted(signal),
      ]);
      this.#synced = !signal.aborted;
      if (this.#synced) logger.info({ bindings: this.#bindings.size, secrets: this.#secrets.size }, 'caches synced');
      // Said once, at start, and on every binding's status (DestinationPolicyComplete) until it is known.
      const gap = this.#networks && this.#destinations().gap;
      if (this.#synced && gap) logger.warn({ reason: gap.reason }, gap.message);

      const lead = (leading: AbortSignal): void => {
        this.metrics.isLeader.set(1);
        leading.addEventListener('abort', () => this.metrics.isLeader.set(0), { once: true });
        // The quarantine first: no port is handed out before the releases the last term kept are known.
        void (this.#releases?.load(leading) ?? Promise.resolve([])).then((kept) => {
          if (leading.aborted) return;
          // Bindings deleted while no controller led left their NetworkPolicy behind: their
          // ports are released now, as if the deletion had just been seen.
          const releases = releasesOfVanished(kept, this.#vanishedPorts(), (this.#deps.clock ?? systemClock).now(), config.portQuarantineMs);
          if (releases.length > kept.length) this.#releases?.save(releases);
          this.inputs.startTerm(releases);
          if (releases.length > 0) logger.info({ releases: releases.length }, 'port releases loaded');
          this.bindingStatus.run(leading).catch((err: unknown) => logger.error({ err: errorSummary(err) }, 'binding-status controller stopped'));
          this.proxyConfig?.run(leading).catch((err: unknown) => logger.error({ err: errorSummary(err) }, 'proxy-config controller stopped'));
        });
      };
      if (signal.aborted) return;
      if (!config.leaderElect) {
        lead(signal);
        await aborted(signal);
        return;
      }
      const elector = new LeaderElector({
        client,
        namespace: config.namespace,
        name: config.leaseName,
        identity: config.identity,
        leaseDurationMs: config.leaseDurationMs,
        renewDeadlineMs: config.renewDeadlineMs,
        retryPeriodMs: config.retryPeriodMs,
        logger,
      });
      // A lost lease (an apiserver outage longer than the renew deadline, say) stops every
      // write at once and rejoins the election, with the caches kept warm; the process
      // itself keeps running, so it converges without a pod restart.
      while (!signal.aborted) {
        const outcome = await elector.run(signal, lead);
        if (outcome === 'lost') logger.warn('lost leadership; campaigning again');
      }
    } finally {
      this.bindingStatus.shutDown();
      this.proxyConfig?.shutDown();
      await Promise.all([
        this.#bindings.stop(),
        this.#secrets.stop(),
        this.#proxyPods?.stop(),
        this.#networks?.stop(),
        this.#namespaces.stop(),
        this.#releasesWatch?.stop(),
        ...this.#owned.map((i) => i.stop()),
      ]);
      this.inputs.close();
    }
  }
}

/** How long the first list of Namespaces is waited for before the controllers start without it. */
const namespacesPatienceMs = 10_000;

function proxyReplica(pod: PodLike): ProxyReplica {
  return {
    name: pod.metadata.name,
    ready: pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    appliedHash: pod.metadata.annotations?.[annotationAppliedHash] || undefined,
    applyError: pod.metadata.annotations?.[annotationApplyError] || undefined,
  };
}

/** A watch of the objects of one component we own, in one collection. */
function ownedWatch(client: KubeClient, logger: Logger, path: string, component: string, onError: () => void): Informer<KubeObject> {
  return new Informer<KubeObject>({
    client,
    logger,
    paths: [path],
    query: { labelSelector: managedSelector(component) },
    // Metadata only (PartialObjectMetadata): the API server never sends the binding
    // objects' key material to this watch, and under churn neither side serializes or
    // parses 7 KiB of base64 for every write the controller made itself.
    metadataOnly: true,
    // Name, version and our own annotations: what exists and what it holds, never key material.
    transform: (o) => ({
      metadata: {
        name: o.metadata.name,
        namespace: o.metadata.namespace,
        resourceVersion: o.metadata.resourceVersion,
        annotations: ownAnnotations((o.metadata as { annotations?: Record<string, string> }).annotations),
      },
    }),
    onError,
  });
}

/** Our annotations on an owned object, and only those. */
function ownAnnotations(annotations: Record<string, string> | undefined): Record<string, string> {
  const own: Record<string, string> = {};
  for (const key of [annotationBinding, annotationBundles, annotationContentHash, annotationFingerprint, annotationListenerPort]) {
    const value = annotations?.[key];
    if (value !== undefined) own[key] = value;
  }
  return own;
}

/** The data plane's renderer with the proxy's options from the flags. */
function proxyRenderer(config: ControllerConfig): ProxyRenderer {
  if (config.dataPlane === 'none') throw new Error('proxyRenderer: --data-plane none renders nothing');
  return dataPlanes[config.dataPlane].renderer({
    listenAddress: config.proxyListenAddress,
    listenerPorts: config.listenerPorts,
    statusPort: config.proxyStatusPort,
    accessLog: config.proxyAccessLog,
    errorLog: config.proxyErrorLog,
  });
}
