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

/** The `kubernetes` Service's Endpoints in `default`: where the API server itself listens. */
interface EndpointsLike extends KubeObject {
  subsets?: Array<{ addresses?: Array<{ ip?: string }>; ports?: Array<{ port?: number; protocol?: string }> }>;
}

/** Calico's IP pool (crd.projectcalico.org/v1): where Calico IPAM takes pod addresses from, which Node.spec.podCIDRs then does not show. */
interface IpPoolLike extends KubeObject {
  spec?: { cidr?: string };
}

/**
 * The cluster's pod and Service ranges and its nodes' addresses, as the API shows them:
 * every Node's spec.podCIDRs (set where the cluster allocates pod ranges per node) and
 * status.addresses (every one that is an IP: InternalIP, ExternalIP, ...), and every
 * ServiceCIDR (networking.k8s.io/v1, Kubernetes 1.33+), and where Calico runs, its IP
 * pools (the pod ranges Calico IPAM uses instead of podCIDRs). All are watched, so a new
 * node, pool or Service range is refused as soon as it exists. Where the API does not tell (a CNI
 * with its own IPAM, an older cluster, RBAC that forbids the read), the controller says
 * so and refuses what --cluster-cidrs names (see podRangeKnown).
 */
export class ClusterNetworks {
  readonly #nodes: Informer<NodeLike>;
  readonly #serviceCidrs: Informer<ServiceCidrLike>;
  readonly #ipPools: Informer<IpPoolLike>;
  readonly #apiServer: Informer<EndpointsLike>;
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
    this.#ipPools = new Informer<IpPoolLike>({
      client,
      logger,
      paths: ['/apis/crd.projectcalico.org/v1/ippools'],
      transform: (p) => ({ metadata: { name: p.metadata.name, resourceVersion: p.metadata.resourceVersion }, spec: { cidr: p.spec?.cidr ?? '' } }),
      // Most clusters run no Calico: its absence is no news.
      onError: (err) => this.#giveUpOnRefusal('ippools', this.#ipPools, err, { quiet: true }),
    });
    // One object, by name: the RBAC rule names it too.
    this.#apiServer = new Informer<EndpointsLike>({
      client,
      logger,
      paths: ['/api/v1/namespaces/default/endpoints'],
      query: { fieldSelector: 'metadata.name=kubernetes' },
      transform: (e) => ({
        metadata: { name: e.metadata.name, resourceVersion: e.metadata.resourceVersion },
        subsets: (e.subsets ?? []).map((s) => ({
          addresses: (s.addresses ?? []).map((a) => ({ ip: a.ip })),
          ports: (s.ports ?? []).map((p) => ({ port: p.port, protocol: p.protocol })),
        })),
      }),
      onError: (err) => this.#giveUpOnRefusal('endpoints', this.#apiServer, err),
    });
    for (const informer of [this.#nodes, this.#serviceCidrs, this.#ipPools, this.#apiServer])
      informer.addHandlers({ onAdd: changed, onUpdate: changed, onDelete: changed });
  }

  onChange(handler: () => void): void {
    this.#handlers.push(handler);
  }

  /** Resolves once every list is read, or known unreadable. */
  async start(): Promise<void> {
    await Promise.all([
      this.#startOrGiveUp('nodes', this.#nodes),
      this.#startOrGiveUp('servicecidrs', this.#serviceCidrs),
      this.#startOrGiveUp('ippools', this.#ipPools),
      this.#startOrGiveUp('endpoints', this.#apiServer),
    ]);
  }

  async stop(): Promise<void> {
    await Promise.all([this.#nodes.stop(), this.#serviceCidrs.stop(), this.#ipPools.stop(), this.#apiServer.stop()]);
  }

  /** Where the API server listens (the `kubernetes` Service's endpoints, TCP), sorted; undefined when they cannot be read or none is listed. */
  apiServerEndpoints(): Array<{ address: string; port: number }> | undefined {
    const found = new Map<string, { address: string; port: number }>();
    for (const endpoints of this.#apiServer.list()) {
      for (const subset of endpoints.subsets ?? []) {
        for (const { ip } of subset.addresses ?? []) {
          for (const { port, protocol } of subset.ports ?? []) {
            if (ip && isIP(ip) !== 0 && Number.isInteger(port) && (protocol ?? 'TCP') === 'TCP') found.set(`${ip} ${port}`, { address: ip, port: port! });
          }
        }
      }
    }
    return found.size === 0 ? undefined : [...found.values()].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port));
  }

  /** Every node's IP addresses, each as a /32 or /128, sorted. */
  nodeAddresses(): Cidr[] {
    const texts = new Set<string>();
    for (const node of this.#nodes.list()) for (const { address } of node.status?.addresses ?? []) if (address) texts.add(address);
    return [...texts].sort().flatMap((text) => parseCidr(text) ?? []);
  }

  /** Whether the API shows a pod range: some node has podCIDRs, or Calico has an IP pool. */
  podRangeKnown(): boolean {
    return (
      this.#nodes.list().some((node) => (node.spec?.podCIDRs ?? []).length > 0) ||
      this.#ipPools.list().some((pool) => parseCidr(pool.spec?.cidr ?? '') !== undefined)
    );
  }

  cidrs(): Cidr[] {
    const texts = new Set<string>();
    for (const node of this.#nodes.list()) for (const cidr of node.spec?.podCIDRs ?? []) texts.add(cidr);
    for (const range of this.#serviceCidrs.list()) for (const cidr of range.spec?.cidrs ?? []) texts.add(cidr);
    for (const pool of this.#ipPools.list()) if (pool.spec?.cidr) texts.add(pool.spec.cidr);
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
  #giveUpOnRefusal(resource: string, informer: Informer<KubeObject>, err: unknown, options: { quiet?: boolean } = {}): void {
    if (!(err instanceof KubeApiError) || (err.status !== 403 && err.status !== 404) || this.#unavailable.has(resource)) return;
    this.#unavailable.add(resource);
    void informer.stop();
    this.#settle.get(resource)?.();
    this.#log[options.quiet ? 'debug' : 'warn'](
      { resource, status: err.status },
      `cannot read ${resource} (${err.status === 403 ? 'forbidden' : 'not served'}); ` +
        (resource === 'nodes'
          ? "the nodes' own addresses are not refused, and the pod range only where --cluster-cidrs names it; give the controller list and watch on nodes"
          : resource === 'endpoints'
            ? "the API server's own address is unknown, so the proxy's egress NetworkPolicy does not except the nodes' addresses (the controller still refuses them); give the controller get, list and watch on the kubernetes Endpoints in default"
            : "the cluster's ranges it would show are not refused unless --cluster-cidrs names them"),
    );
  }
}
