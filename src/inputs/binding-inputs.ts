import type { SecretLike } from '../api/meta.ts';
import type { Problem } from '../api/v1alpha1/reasons.ts';
import { bindingKey, type ClientCertificateBinding, type ClientCertificateBindingStatus } from '../api/v1alpha1/types.ts';
import type { InformerHandlers } from '../k8s/informer.ts';
import { CaSubjects, resolveCertificateInput } from '../model/certificate-input.ts';
import type { DestinationPolicy } from '../model/destinations.ts';
import type { IdentityOutcome } from '../model/egress-routes.ts';
import type { PortOutcome, PortRange } from '../model/listener-ports.ts';
import { readableSecretNames, SecretIndex } from '../model/secret-refs.ts';
import { systemClock, type Clock, type Timer } from '../runner/clock.ts';
import { PortAllocations } from '../translate/port-allocations.ts';
import type { IdentityLookup, SecretLookup } from '../translate/translate.ts';
import type { HostResolver } from './host-resolution.ts';
import { IdentityCache, isTransientOutcome, type IdentityDecoder } from './identity-cache.ts';
import { inputPolicy } from './input-policy.ts';

/** The bindings inputs are gathered for: the bindings informer, or a manifest set. */
export interface BindingSource {
  list(): readonly ClientCertificateBinding[];
  /** Absent offline, where the set does not change. */
  addHandlers?(handlers: InformerHandlers<ClientCertificateBinding>): void;
}

/** The Secrets the bindings read: the Secret cache, or a manifest set's Secrets. */
export interface SecretSource {
  getAll(namespace: string, names: Iterable<string>): Promise<Map<string, SecretLike>>;
  /** Absent offline, where the set does not change. */
  onChange?(handler: (secretKey: string) => void): void;
}

export interface BindingInputsOptions {
  bindings: BindingSource;
  secrets: SecretSource;
  listenerPorts: PortRange;
  decode: IdentityDecoder;
  /** Present when a data plane serves the bindings: their hosts are resolved, and judged by where they lead. */
  hosts?: { resolver: HostResolver; destinations: () => DestinationPolicy };
  clock?: Clock;
}

/** What one binding's translation takes, gathered: every argument of translateBinding but the binding and the caller's options. */
export interface GatheredInputs {
  secrets: SecretLookup;
  /** The certificate's decoded identity: its verdict, or while it has none, what the caller keeps meanwhile. */
  identities: IdentityLookup;
  /** That identity; undefined when the certificate input does not resolve (a Secret or key is missing). */
  identity: IdentityOutcome | undefined;
  /** Listener ports over every binding. */
  ports: ReadonlyMap<string, PortOutcome>;
  /** Why the proxy may not be given this host (it does not resolve, or leads somewhere refused); none without a data plane. */
  hostProblem(host: string): Problem | undefined;
  /** The binding's host was never answered, and its patience ran out: there is no verdict on it yet. */
  hostUnanswered: boolean;
}

/** Ready: translate now, and look again after requeueAfterMs if set. Pending: nothing to translate yet; a wake, or requeueAfterMs, brings the key back. */
export type Gathered = { ready: true; inputs: GatheredInputs; requeueAfterMs: number | undefined } | { ready: false; requeueAfterMs: number | undefined };

const noProblems: ReadonlyMap<string, Problem> = new Map();

/**
 * Everything a binding's translation needs, gathered in one place with one policy for
 * waiting and retrying (Envoy Gateway's provider): its Secrets, its decoded certificate,
 * its host's answer, and the listener ports over every binding. Owned by the manager and
 * read by both controllers; `render` and `validate` gather through one too, with the
 * decode awaited. It keeps the Secret index (filled from the bindings' own events, so the
 * Secret cache's filter and both controllers read one index) and the one port allocation.
 *
 * Its policy (the numbers are in input-policy.ts):
 *   - a decode is never waited on: a binding whose certificate is still decoding is
 *     pending, and the decode wakes it; a decode the sandbox's clock stopped is a verdict
 *     for now, tried again after decodeRetryTransientMs;
 *   - a never-answered host is waited on for hostPatienceMs, then the binding goes on
 *     without that host's verdict (status goes out; the proxy does not serve it); the
 *     answer wakes it whenever it comes. An answered host is judged by its last answer
 *     while it is looked up again;
 *   - a host with a problem is looked up again every hostRelookMs, once per host whatever
 *     the number of bindings on it, and its bindings are woken only when the answer changed.
 *
 * A wake goes to every reader (`onChange`): a Secret, a decode, a host's answer or a moved
 * port changes the binding for both controllers.
 */
export class BindingInputs {
  readonly identities: IdentityCache;
  /** CA subjects parsed before: every translation reads every binding's CA bundle again. */
  readonly caSubjects = new CaSubjects();
  readonly #o: BindingInputsOptions;
  readonly #clock: Clock;
  readonly #index = new SecretIndex();
  readonly #ports: PortAllocations;
  readonly #readers: Array<(key: string) => void> = [];
  #written: ((b: ClientCertificateBinding) => ClientCertificateBindingStatus | undefined) | undefined;
  /** Bindings whose host has a problem, by host, each host with its one re-look timer. */
  readonly #hostWatch = new Map<string, { keys: Set<string>; timer: Timer | undefined }>();
  readonly #watchedHost = new Map<string, string>();

  constructor(options: BindingInputsOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.identities = new IdentityCache(options.decode, { clock: this.#clock });
    this.#ports = new PortAllocations({
      bindings: () => options.bindings.list(),
      listenerPorts: options.listenerPorts,
      // What the status controller wrote holds the port even before the cache shows it.
      previousStatus: (b) => this.#written?.(b) ?? b.status,
      onMoved: (keys) => keys.forEach((key) => this.#wake(key)),
    });
    options.bindings.addHandlers?.({
      onAdd: (b) => {
        this.#index.set(bindingKey(b), b.metadata.namespace, b.spec);
        this.#ports.added();
      },
      onUpdate: (b, old) => {
        this.#index.set(bindingKey(b), b.metadata.namespace, b.spec);
        this.#ports.updated(b, old);
        if (b.metadata.deletionTimestamp) this.#watchHost(bindingKey(b), undefined);
      },
      onDelete: (b) => {
        this.#index.delete(bindingKey(b));
        this.#ports.deleted();
        this.#watchHost(bindingKey(b), undefined);
      },
    });
    options.secrets.onChange?.((secretKey) => {
      for (const key of this.#index.bindingsFor(secretKey)) this.#wake(key);
    });
  }

  /** Calls `wake` with a binding's key whenever its inputs changed without the binding changing. */
  onChange(wake: (key: string) => void): void {
    this.#readers.push(wake);
  }

  /** Status written but not yet seen in the cache, which holds its port all the same: the status controller's. */
  useWrittenStatus(written: (b: ClientCertificateBinding) => ClientCertificateBindingStatus | undefined): void {
    this.#written = written;
  }

  /** Whether some binding reads this Secret ("namespace/name"): the Secret cache keeps the data of these alone. */
  isReferenced(secretKey: string): boolean {
    return this.#index.isReferenced(secretKey);
  }

  /**
   * One binding's inputs, never waiting on a decode or on DNS. `meanwhile`: the identity
   * the caller uses while the certificate has no verdict (still decoding, or stopped by
   * the sandbox's clock); without it, such a binding is pending until the decode wakes it.
   */
  async gather(binding: ClientCertificateBinding, options: { meanwhile?: IdentityOutcome } = {}): Promise<Gathered> {
    const key = bindingKey(binding);
    const found = await this.#secretsOf(binding);
    const input = resolveCertificateInput(binding.spec, (name) => found.get(name));
    let identity: IdentityOutcome | undefined;
    let requeueAfterMs: number | undefined;
    if (input.ok) {
      // A hostile file may take the sandbox's whole time limit, and a worker waiting on it
      // would hold up every other binding: the decode wakes this key instead.
      const outcome = this.identities.want(input, () => this.#wake(key));
      identity = outcome !== undefined && !isTransientOutcome(outcome) ? outcome : (options.meanwhile ?? outcome);
      if (identity === undefined) return { ready: false, requeueAfterMs: undefined };
      if (isTransientOutcome(outcome)) requeueAfterMs = this.identities.retryTransientMs;
    }
    let hostProblems = noProblems;
    let hostUnanswered = false;
    const hosts = this.#o.hosts;
    if (hosts) {
      // A resolver that drops queries would hold a waiting worker for its timeout, and
      // every binding queued behind it: the answer wakes this key instead.
      const host = binding.spec.host;
      const answer = hosts.resolver.problemsNow([host], hosts.destinations(), () => this.#wake(key));
      if (answer.unansweredForMs !== undefined) {
        if (answer.unansweredForMs < inputPolicy.hostPatienceMs) return { ready: false, requeueAfterMs: inputPolicy.hostPatienceMs - answer.unansweredForMs };
        hostUnanswered = true;
      }
      hostProblems = answer.problems;
      this.#watchHost(key, hostProblems.has(host) ? host : undefined);
    }
    return {
      ready: true,
      requeueAfterMs,
      inputs: {
        secrets: (_namespace, name) => found.get(name),
        identities: () => identity,
        identity,
        ports: this.#ports.get(),
        hostProblem: (h) => hostProblems.get(h),
        hostUnanswered,
      },
    };
  }

  /**
   * One binding's inputs with its decode awaited, for the offline commands: a manifest set
   * has no later event to wake a binding, and no DNS to ask.
   */
  async gatherSettled(binding: ClientCertificateBinding): Promise<GatheredInputs> {
    const found = await this.#secretsOf(binding);
    const input = resolveCertificateInput(binding.spec, (name) => found.get(name));
    const identity = input.ok ? await this.identities.decode(input) : undefined;
    return {
      secrets: (_namespace, name) => found.get(name),
      identities: () => identity,
      identity,
      ports: this.#ports.get(),
      hostProblem: () => undefined,
      hostUnanswered: false,
    };
  }

  close(): void {
    for (const watch of this.#hostWatch.values()) watch.timer?.cancel();
    this.#hostWatch.clear();
    this.#watchedHost.clear();
    this.identities.close();
  }

  #secretsOf(binding: ClientCertificateBinding): Promise<Map<string, SecretLike>> {
    return this.#o.secrets.getAll(binding.metadata.namespace, readableSecretNames(binding.spec));
  }

  #wake(key: string): void {
    for (const wake of this.#readers) wake(key);
  }

  /** Puts the binding among those waiting on `host` to answer otherwise (undefined: on none). */
  #watchHost(key: string, host: string | undefined): void {
    const before = this.#watchedHost.get(key);
    if (before === host) return;
    if (before !== undefined) {
      const watch = this.#hostWatch.get(before);
      watch?.keys.delete(key);
      if (watch?.keys.size === 0) {
        watch.timer?.cancel();
        this.#hostWatch.delete(before);
      }
      this.#watchedHost.delete(key);
    }
    const hosts = this.#o.hosts;
    if (host === undefined || !hosts) return;
    this.#watchedHost.set(key, host);
    let watch = this.#hostWatch.get(host);
    if (!watch) {
      const created = { keys: new Set<string>(), timer: undefined as Timer | undefined };
      const look = (): void => {
        created.timer = this.#clock.setTimer(() => {
          if (this.#hostWatch.get(host) !== created) return;
          hosts.resolver.problemsNow([host], hosts.destinations(), () => {
            for (const k of created.keys) this.#wake(k);
          });
          look();
        }, hosts.resolver.retryAfterMs);
      };
      look();
      this.#hostWatch.set(host, (watch = created));
    }
    watch.keys.add(key);
  }
}
