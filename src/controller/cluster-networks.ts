import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { KubeObject } from '../api/meta.ts';
import { KubeApiError, type KubeClient } from '../k8s/client.ts';
import { Informer } from '../k8s/informer.ts';
import { parseCidr, type Cidr } from '../model/destinations.ts';

interface NodeLike extends KubeObject {
  spec?: { podCIDR?: string; podCIDRs?: string[] };
  status?: { addresses?: Array<{ type?: string; address?: string }> };
}

interface ServiceCidrLike extends KubeObject {
  spec?: { cidrs?: string[] };
}

/**
 * The cluster's pod and Service ranges and its nodes' addresses, as the API shows them:
 * every Node's spec.podCIDRs (set where the cluster allocates pod ranges per node) and
 * status.addresses (every one that is an IP: InternalIP, ExternalIP, ...), and every
 * ServiceCIDR (networking.k8s.io/v1, Kubernetes 1.33+). Both are watched, so a new node
 * or Service range is refused as soon as it exists. Where the API does not tell (a CNI
 * with its own IPAM, an older cluster, RBAC that forbids the read), the controller says
 * so and refuses what --cluster-cidrs names (see podRangeKnown).
 */
export class ClusterNetworks {
  readonly #nodes: Informer<NodeLike>;
  readonly #serviceCidrs: Informer<ServiceCidrLike>;
  readonly #log: Logger;
  readonly #handlers: Array<() => void> = [];
  readonly #unavailable = new Set<string>();
  readonly #settle = new Map<string, () => void>();

  constructor(client: KubeClient, logger: Logger) {
    this.#log = logger.child({ component: 'cluster-networks' });
    const changed = (): void => {
      for (const handler of this.#handlers) handler();
    };
    this.#nodes = new Informer<NodeLike>({
      client,
      logger,
      paths: ['/api/v1/nodes'],
      transform: (n) => ({
        metadata: { name: n.metadata.name, resourceVersion: n.metadata.resourceVersion },
        spec: { podCIDRs: n.spec?.podCIDRs ?? (n.spec?.podCIDR ? [n.spec.podCIDR] : []) },
        // The addresses alone (no hostnames, no conditions): a node's heartbeat changes nothing here.
        status: { addresses: (n.status?.addresses ?? []).filter((a) => isIP(a.address ?? '') !== 0).map((a) => ({ address: a.address })) },
      }),
      onError: (err) => this.#giveUpOnRefusal('nodes', this.#nodes, err),
    });
    this.#serviceCidrs = new Informer<ServiceCidrLike>({
      client,
      logger,
      paths: ['/apis/networking.k8s.io/v1/servicecidrs'],
      transform: (s) => ({ metadata: { name: s.metadata.name, resourceVersion: s.metadata.resourceVersion }, spec: { cidrs: s.spec?.cidrs ?? [] } }),
      onError: (err) => this.#giveUpOnRefusal('servicecidrs', this.#serviceCidrs, err),
    });
    for (const informer of [this.#nodes, this.#serviceCidrs]) informer.addHandlers({ onAdd: changed, onUpdate: changed, onDelete: changed });
  }

  onChange(handler: () => void): void {
    this.#handlers.push(handler);
  }

  /** Resolves once both lists are read, or known unreadable. */
  async start(): Promise<void> {
    await Promise.all([this.#startOrGiveUp('nodes', this.#nodes), this.#startOrGiveUp('servicecidrs', this.#serviceCidrs)]);
  }

  async stop(): Promise<void> {
    await Promise.all([this.#nodes.stop(), this.#serviceCidrs.stop()]);
  }

  /** Every node's IP addresses, each as a /32 or /128, sorted. */
  nodeAddresses(): Cidr[] {
    const texts = new Set<string>();
    for (const node of this.#nodes.list()) for (const { address } of node.status?.addresses ?? []) if (address) texts.add(address);
    return [...texts].sort().flatMap((text) => parseCidr(text) ?? []);
  }

  /** Whether the API shows a pod range: some node has podCIDRs, and the nodes could be read. */
  podRangeKnown(): boolean {
    return this.#nodes.list().some((node) => (node.spec?.podCIDRs ?? []).length > 0);
  }

  cidrs(): Cidr[] {
    const texts = new Set<string>();
    for (const node of this.#nodes.list()) for (const cidr of node.spec?.podCIDRs ?? []) texts.add(cidr);
    for (const range of this.#serviceCidrs.list()) for (const cidr of range.spec?.cidrs ?? []) texts.add(cidr);
    return [...texts].sort().flatMap((text) => parseCidr(text) ?? []);
  }

  /** Resolves when the informer has its first list, or when the read is refused for good. */
  #startOrGiveUp(resource: string, informer: Informer<KubeObject>): Promise<void> {
    return new Promise((resolve) => {
      this.#settle.set(resource, resolve);
      void informer.start().then(() => resolve());
    });
  }

  /** A 403 or 404 will not change by retrying: stop asking, and say once what to do instead. */
  #giveUpOnRefusal(resource: string, informer: Informer<KubeObject>, err: unknown): void {
    if (!(err instanceof KubeApiError) || (err.status !== 403 && err.status !== 404) || this.#unavailable.has(resource)) return;
    this.#unavailable.add(resource);
    void informer.stop();
    this.#settle.get(resource)?.();
    this.#log.warn(
      { resource, status: err.status },
      `cannot read ${resource} (${err.status === 403 ? 'forbidden' : 'not served'}); ` +
        (resource === 'nodes'
          ? "the nodes' own addresses are not refused, and the pod range only where --cluster-cidrs names it; give the controller list and watch on nodes"
          : "the cluster's ranges it would show are not refused unless --cluster-cidrs names them"),
    );
  }
}
