import type { Logger } from 'pino';
import { KubeApiError, isNotFound, type KubeClient } from '../k8s/client.ts';
import { CodedError, errorSummary } from '../errors.ts';
import { sleep } from '../runner/backoff.ts';

export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  logger: Logger;
  /** Monotonic clock in ms; injected so expiry is judged by elapsed time, never by the leader's wall clock. */
  monotonicNow?: () => number;
}

interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number;
}

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: LeaseSpec;
}

/**
 * The namespace that should hold the Lease does not exist. Terminal: no retry creates a
 * namespace, so the controller says once what to do and exits rather than warn forever
 * (what an out-of-cluster `--kubeconfig` run with the default namespace used to do).
 */
export class NamespaceNotFoundError extends CodedError<'ERR_NAMESPACE_NOT_FOUND'> {
  readonly namespace: string;

  constructor(namespace: string, lease: string) {
    super(
      'ERR_NAMESPACE_NOT_FOUND',
      `namespace "${namespace}" does not exist, and the controller keeps its leader Lease "${lease}" there (and the proxy's configuration). ` +
        `Create it (kubectl create namespace ${namespace}), or pass --namespace with the namespace the operator is installed in ` +
        `(default: $POD_NAMESPACE, else mtls-egress-system).`,
    );
    this.namespace = namespace;
  }
}

/** A create in a namespace that does not exist: 404 whose Status names the namespace, not the object. */
function isMissingNamespace(err: unknown, namespace: string): boolean {
  return err instanceof KubeApiError && err.status === 404 && err.details?.kind === 'namespaces' && err.details.name === namespace;
}

/**
 * Leader election on a coordination.k8s.io Lease, with client-go's rules: a lease is
 * free when its holder is empty or when we have watched it go unchanged for a whole
 * lease duration on our own monotonic clock (so clock skew between replicas cannot
 * make two leaders); the leader renews every retry period and gives up, at once, when
 * it could not renew within the renew deadline.
 */
export class LeaderElector {
  readonly #o: LeaderElectionOptions;
  readonly #now: () => number;
  #observed: { record: string; at: number } | undefined;
  #lease: Lease | undefined;
  #leading = false;

  constructor(options: LeaderElectionOptions) {
    this.#o = options;
    this.#now = options.monotonicNow ?? (() => performance.now());
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  get #path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.#o.namespace}/leases/${this.#o.name}`;
  }

  /**
   * Campaigns until elected, then renews until the lease is lost or `signal` aborts.
   * `lead` runs while leading and receives a signal that aborts the moment leadership
   * ends. Resolves with why leadership ended; rejects with NamespaceNotFoundError when
   * the Lease's namespace does not exist.
   */
  async run(signal: AbortSignal, lead: (leading: AbortSignal) => void): Promise<'stopped' | 'lost'> {
    while (!signal.aborted && !(await this.#tryAcquireOrRenew())) await sleep(this.#o.retryPeriodMs, signal);
    if (signal.aborted) return 'stopped';
    this.#leading = true;
    this.#o.logger.info({ lease: this.#o.name, identity: this.#o.identity }, 'became leader');
    const leading = new AbortController();
    lead(leading.signal);
    let lastRenew = this.#now();
    try {
      while (!signal.aborted) {
        await sleep(this.#o.retryPeriodMs, signal);
        if (signal.aborted) break;
        if (await this.#tryAcquireOrRenew()) {
          lastRenew = this.#now();
          continue;
        }
        if (this.#lostTo() || this.#now() - lastRenew > this.#o.renewDeadlineMs) {
          this.#o.logger.error({ lease: this.#o.name }, 'leader lease lost; stopping all writes');
          return 'lost';
        }
      }
      await this.#release();
      return 'stopped';
    } finally {
      this.#leading = false;
      leading.abort();
    }
  }

  /** True when someone else now holds the lease we thought we had. */
  #lostTo(): boolean {
    const holder = this.#lease?.spec.holderIdentity;
    return Boolean(holder) && holder !== this.#o.identity;
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date().toISOString().replace('Z', '000Z');
    const seconds = Math.ceil(this.#o.leaseDurationMs / 1000);
    try {
      let lease: Lease;
      try {
        lease = await this.#o.client.get<Lease>(this.#path);
      } catch (err) {
        if (!isNotFound(err)) throw err;
        this.#lease = await this.#o.client
          .create<Lease>(`/apis/coordination.k8s.io/v1/namespaces/${this.#o.namespace}/leases`, {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name: this.#o.name, namespace: this.#o.namespace },
            spec: { holderIdentity: this.#o.identity, leaseDurationSeconds: seconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
          })
          .catch((createErr: unknown) => {
            throw isMissingNamespace(createErr, this.#o.namespace) ? new NamespaceNotFoundError(this.#o.namespace, this.#o.name) : createErr;
          });
        return true;
      }
      this.#lease = lease;
      const record = JSON.stringify(lease.spec);
      if (this.#observed?.record !== record) this.#observed = { record, at: this.#now() };
      const holder = lease.spec.holderIdentity;
      const ours = holder === this.#o.identity;
      const durationMs = (lease.spec.leaseDurationSeconds ?? seconds) * 1000;
      if (holder && !ours && this.#now() - this.#observed.at < durationMs) return false;

      const spec: LeaseSpec = {
        holderIdentity: this.#o.identity,
        leaseDurationSeconds: seconds,
        acquireTime: ours ? (lease.spec.acquireTime ?? now) : now,
        renewTime: now,
        leaseTransitions: (lease.spec.leaseTransitions ?? 0) + (ours ? 0 : 1),
      };
      // PUT with the resourceVersion we read: of two candidates, exactly one wins the 409 race.
      this.#lease = await this.#o.client.replace<Lease>(this.#path, { ...lease, spec });
      this.#observed = { record: JSON.stringify(this.#lease.spec), at: this.#now() };
      return true;
    } catch (err) {
      if (err instanceof NamespaceNotFoundError) throw err;
      if (!(err instanceof KubeApiError && err.status === 409)) {
        this.#o.logger.warn({ err: errorSummary(err), lease: this.#o.name }, 'lease acquire/renew failed');
      }
      return false;
    }
  }

  /** Hands the lease back on a clean shutdown, so the next replica takes over at once instead of after a lease duration. */
  async #release(): Promise<void> {
    if (!this.#lease || this.#lostTo()) return;
    try {
      await this.#o.client.replace(this.#path, {
        ...this.#lease,
        spec: { ...this.#lease.spec, holderIdentity: null, leaseDurationSeconds: 1, renewTime: new Date().toISOString().replace('Z', '000Z') },
      });
      this.#o.logger.info({ lease: this.#o.name }, 'released leader lease');
    } catch (err) {
      this.#o.logger.warn({ err: errorSummary(err) }, 'could not release leader lease');
    }
  }
}
