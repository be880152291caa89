import { isIP } from 'node:net';
import type { SecretLike } from '../api/meta.ts';
import type { Outcome, Problem } from '../api/v1alpha1/reasons.ts';
import { bindingKey, type ClientCertificateBinding, type ClientCertificateBindingStatus } from '../api/v1alpha1/types.ts';
import type { InformerHandlers } from '../k8s/informer.ts';
import { CaSubjects, resolveCertificateInput } from '../model/certificate-input.ts';
import type { DestinationPolicy } from '../model/destinations.ts';
import type { IdentityOutcome } from '../model/egress-routes.ts';
import { parsePortCount, type PortOutcome, type PortRange, type PortRelease } from '../model/listener-ports.ts';
import { annotationMaxListenerPorts, consentCheck, type NamespaceMeta } from '../model/namespace-consent.ts';
import { readableSecretNames, SecretIndex } from '../model/secret-refs.ts';
import { systemClock, type Clock, type Timer } from '../runner/clock.ts';
import { PortAllocations } from '../translate/port-allocations.ts';
import type { IdentityLookup, PortEligibility, SecretLookup } from '../translate/translate.ts';
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
  /** Whether a referenced Secret exists, without a request; absent offline, where every binding may take a port. */
  exists?(namespace: string, name: string): boolean;
  /** Absent offline, where the set does not change. */
  onChange?(handler: (secretKey: string) => void): void;
  /** When this version of a Secret was seen and read, wall-clock ms (the rotation stamps); absent offline. */
  stageTimes?(namespace: string, name: string, resourceVersion: string): { seenAt: number; readAt: number } | undefined;
}

/** The cluster's Namespaces, labels and annotations: consent to allowedNamespaces, and each namespace's share of ports. */
export interface NamespaceSource {
  /** Every Namespace; undefined while they cannot be read (not listed yet, or RBAC forbids it). */
  list(): readonly NamespaceMeta[] | undefined;
  get(name: string): NamespaceMeta | undefined;
  onChange(handler: (now: NamespaceMeta | undefined, before: NamespaceMeta | undefined) => void): void;
}

/** How listener ports are shared out between namespaces. */
export interface PortPolicy {
  /** How long a freed port is kept from other namespaces (--port-quarantine). */
  quarantineMs: number;
  /** How many ports a namespace may hold unless its Namespace says otherwise (--namespace-port-share); default no limit. */
  share?: number;
  /** The proxy's own ports: never a binding's, whatever its status says. */
  reserved?: ReadonlySet<number>;
  /** How long a binding whose certificate Secret is missing keeps the port it holds (--broken-port-grace); 0: for ever. */
  brokenGraceMs?: number;
  /** The releases in force changed: the caller keeps them across restarts. */
  onReleased?: (releases: readonly PortRelease[]) => void;
}

export interface BindingInputsOptions {
  bindings: BindingSource;
  secrets: SecretSource;
  listenerPorts: PortRange;
  portPolicy?: PortPolicy;
  /** Present in the cluster; absent offline, where no namespace has a share and consent is not judged. */
  namespaces?: NamespaceSource;
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
  /** The host's addresses, each checked against the destination policy: what the proxy connects to. Undefined without a verdict. */
  hostAddresses(host: string): readonly string[] | undefined;
  /** The binding's host was never answered, and its patience ran out: there is no verdict on it yet. */
  hostUnanswered: boolean;
  /** What the destination policy cannot refuse (the pod range unknown); none without a data plane. */
  destinationPolicyGap: Problem | undefined;
  /** Whether the namespaces spec.allowedNamespaces selects consent; undefined without it, or offline. */
  consent: Outcome | undefined;
  /**
   * The certificate Secret version the identity was decoded from, and when it was seen,
   * read and decoded: what the proxy-config controller stamps on the binding object. Only
   * when `identity` is that version's own verdict (not what the caller keeps meanwhile)
   * and the cache timed it.
   */
  source?: { source: string; seen: number; read: number; decoded: number };
}

/** Ready: translate now, and look again after requeueAfterMs if set. Pending: nothing to translate yet; a wake, or requeueAfterMs, brings the key back. */
export type Gathered = { ready: true; inputs: GatheredInputs; requeueAfterMs: number | undefined } | { ready: false; requeueAfterMs: number | undefined };

const noProblems: ReadonlyMap<string, Problem> = new Map();
const noAddresses: ReadonlyMap<string, readonly string[]> = new Map();

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
 *   - every host a binding names is looked up again when its answer runs out (the
 *     record's TTL within bounds; hostRelookMs for a host that does not resolve), once
 *     per host whatever the number of bindings on it, and its bindings are woken only when
 *     the answer changed: a name that moves, or turns to a refused address, reaches the
 *     proxy as checked addresses (or the binding's removal) within one TTL;
 *   - a host no binding names any more is forgotten by the resolver.
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
  /** Bindings by the host they name (IP hosts aside), each host with its one re-look timer. */
  readonly #hostWatch = new Map<string, { keys: Set<string>; timer: Timer | undefined }>();
  readonly #watchedHost = new Map<string, string>();
  /** Since when each binding's certificate Secret has been missing, as this process saw it. */
  readonly #missingSince = new Map<string, number>();

  constructor(options: BindingInputsOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.identities = new IdentityCache(options.decode, { clock: this.#clock });
    const policy = options.portPolicy;
    const secrets = options.secrets;
    this.#ports = new PortAllocations({
      bindings: () => options.bindings.list(),
      listenerPorts: options.listenerPorts,
      // What the status controller wrote holds the port even before the cache shows it;
      // what the cache's status says is only reported, and checked (see allocateListenerPorts).
      previousStatus: (b) => this.#written?.(b),
      onMoved: (keys) => keys.forEach((key) => this.#wake(key)),
      now: () => this.#clock.now(),
      ...(policy ? { quarantineMs: policy.quarantineMs } : {}),
      ...(policy?.reserved ? { reserved: policy.reserved } : {}),
      ...(policy?.onReleased ? { onReleased: policy.onReleased } : {}),
      ...(policy?.share !== undefined || options.namespaces ? { shareOf: (ns: string) => this.#shareOf(ns) } : {}),
      // A binding whose certificate Secret does not exist gets no port until it does (a
      // thousand bindings naming a missing Secret hold nothing), and one that held a port
      // gives it up once the Secret has been missing past the grace.
      ...(secrets.exists ? { eligibility: (b: ClientCertificateBinding) => this.#eligibility(b) } : {}),
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
        this.#missingSince.delete(bindingKey(b));
        this.#ports.deleted(b);
        this.#watchHost(bindingKey(b), undefined);
      },
    });
    options.secrets.onChange?.((secretKey) => {
      const keys = this.#index.bindingsFor(secretKey);
      // A Secret that now exists may let a waiting binding take a port; one that holds a port keeps it.
      if (keys.some((key) => this.#ports.peek(key)?.ok !== true)) this.#ports.changed();
      for (const key of keys) this.#wake(key);
    });
    options.namespaces?.onChange((now, before) => {
      if (now?.annotations[annotationMaxListenerPorts] !== before?.annotations[annotationMaxListenerPorts]) {
        // A new share: the namespace's bindings waiting for a port look again.
        this.#ports.changed();
        const name = now?.name ?? before?.name;
        for (const b of options.bindings.list()) {
          if (b.metadata.namespace === name && this.#ports.peek(bindingKey(b))?.ok !== true) this.#wake(bindingKey(b));
        }
      }
      // Consent is read per binding: a namespace's labels can move any allowedNamespaces verdict.
      if (!sameLabels(now?.labels, before?.labels)) {
        for (const b of options.bindings.list()) if (b.spec.allowedNamespaces) this.#wake(bindingKey(b));
      }
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

  /**
   * A leadership term starts with the releases kept in the cluster: the last term's record
   * of who holds what is dropped (another replica may have led since), so status is read
   * again, checked.
   */
  startTerm(releases: readonly PortRelease[]): void {
    this.#ports.reset(releases);
  }

  /** The releases in force. */
  get portReleases(): readonly PortRelease[] {
    return this.#ports.releases;
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
    let source: GatheredInputs['source'];
    if (input.ok) {
      // A hostile file may take the sandbox's whole time limit, and a worker waiting on it
      // would hold up every other binding: the decode wakes this key instead.
      const outcome = this.identities.want(input, () => this.#wake(key));
      identity = outcome !== undefined && !isTransientOutcome(outcome) ? outcome : (options.meanwhile ?? outcome);
      if (identity === undefined) return { ready: false, requeueAfterMs: undefined };
      if (isTransientOutcome(outcome)) requeueAfterMs = this.identities.retryTransientMs;
      if (identity === outcome) source = this.#source(binding, found, this.identities.decodedAt(input));
    }
    let hostProblems = noProblems;
    let hostAddresses = noAddresses;
    let hostUnanswered = false;
    let destinationPolicyGap: Problem | undefined;
    const hosts = this.#o.hosts;
    if (hosts) {
      // A resolver that drops queries would hold a waiting worker for its timeout, and
      // every binding queued behind it: the answer wakes this key instead.
      const host = binding.spec.host;
      const policy = hosts.destinations();
      destinationPolicyGap = policy.gap;
      const answer = hosts.resolver.problemsNow([host], policy, () => this.#wake(key));
      if (answer.unansweredForMs !== undefined) {
        if (answer.unansweredForMs < inputPolicy.hostPatienceMs) return { ready: false, requeueAfterMs: inputPolicy.hostPatienceMs - answer.unansweredForMs };
        hostUnanswered = true;
      }
      hostProblems = answer.problems;
      hostAddresses = answer.addresses;
      this.#watchHost(key, isIP(host) ? undefined : host);
    }
    const graceLeftMs = this.#graceLeftMs(binding);
    if (graceLeftMs !== undefined) requeueAfterMs = earliestOf(requeueAfterMs, graceLeftMs + 1);
    const ports = this.#ports.get();
    // A port waiting out another namespace's quarantine: time alone frees it.
    const retryAtMs = ports.get(key)?.retryAtMs;
    if (retryAtMs !== undefined) requeueAfterMs = earliestOf(requeueAfterMs, Math.max(0, retryAtMs - this.#clock.now()) + 1);
    return {
      ready: true,
      requeueAfterMs,
      inputs: {
        secrets: (_namespace, name) => found.get(name),
        identities: () => identity,
        identity,
        ports,
        hostProblem: (h) => hostProblems.get(h),
        hostAddresses: (h) => hostAddresses.get(h),
        hostUnanswered,
        destinationPolicyGap,
        consent: this.#consent(binding),
        ...(source ? { source } : {}),
      },
    };
  }

  /** The certificate Secret's version and its stage times, when the cache timed that version. */
  #source(binding: ClientCertificateBinding, found: ReadonlyMap<string, SecretLike>, decoded: number | undefined): GatheredInputs['source'] {
    const name = binding.spec.certificate?.secretRef?.name ?? binding.spec.certificate?.tlsSecretRef?.name;
    const secret = name === undefined ? undefined : found.get(name);
    const { uid, resourceVersion } = secret?.metadata ?? {};
    if (decoded === undefined || uid === undefined || resourceVersion === undefined || name === undefined) return undefined;
    const times = this.#o.secrets.stageTimes?.(binding.metadata.namespace, name, resourceVersion);
    // A decode may have settled before this version's read was timed (the same bytes under an
    // earlier version are another cache entry, so only clock steps do this): such a stamp is dropped.
    if (!times || decoded < times.readAt) return undefined;
    return { source: `${uid}@${resourceVersion}`, seen: times.seenAt, read: times.readAt, decoded };
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
      hostAddresses: () => undefined,
      hostUnanswered: false,
      destinationPolicyGap: undefined,
      consent: this.#consent(binding),
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

  /** Whether the binding may take a port, keep only its own, or hold none (its certificate Secret missing past the grace). */
  #eligibility(b: ClientCertificateBinding): PortEligibility {
    const exists = this.#o.secrets.exists?.bind(this.#o.secrets);
    const key = bindingKey(b);
    if (!exists || certificateSecretExists(b, exists)) {
      this.#missingSince.delete(key);
      return 'any';
    }
    const now = this.#clock.now();
    let since = this.#missingSince.get(key);
    if (since === undefined) this.#missingSince.set(key, (since = now));
    const grace = this.#o.portPolicy?.brokenGraceMs ?? 0;
    return grace > 0 && now - since >= grace ? 'none' : 'keep';
  }

  /**
   * For a binding that holds a port while its certificate Secret is missing: how long until
   * the grace runs out (time alone changes its port then). Past it, the allocation is
   * made again so the port goes.
   */
  #graceLeftMs(binding: ClientCertificateBinding): number | undefined {
    const grace = this.#o.portPolicy?.brokenGraceMs ?? 0;
    if (grace <= 0 || this.#ports.peek(bindingKey(binding))?.ok !== true) return undefined;
    const eligibility = this.#eligibility(binding);
    if (eligibility === 'any') return undefined;
    if (eligibility === 'none') {
      this.#ports.changed();
      return undefined;
    }
    return Math.max(0, (this.#missingSince.get(bindingKey(binding)) ?? this.#clock.now()) + grace - this.#clock.now());
  }

  #consent(binding: ClientCertificateBinding): Outcome | undefined {
    const namespaces = this.#o.namespaces;
    if (!namespaces) return undefined;
    return consentCheck(binding.metadata.namespace, binding.spec.allowedNamespaces, namespaces.list());
  }

  /** A namespace's share: its own annotation (set by the platform), else the flag's. */
  #shareOf(namespace: string): number {
    const own = parsePortCount(this.#o.namespaces?.get(namespace)?.annotations[annotationMaxListenerPorts]);
    return own ?? this.#o.portPolicy?.share ?? Number.POSITIVE_INFINITY;
  }

  #wake(key: string): void {
    for (const wake of this.#readers) wake(key);
  }

  /** Puts the binding among those woken when `host` answers otherwise (undefined: none). */
  #watchHost(key: string, host: string | undefined): void {
    const before = this.#watchedHost.get(key);
    if (before === host) return;
    if (before !== undefined) {
      const watch = this.#hostWatch.get(before);
      watch?.keys.delete(key);
      if (watch?.keys.size === 0) {
        watch.timer?.cancel();
        this.#hostWatch.delete(before);
        this.#o.hosts?.resolver.forget(before);
      }
      this.#watchedHost.delete(key);
    }
    const hosts = this.#o.hosts;
    if (host === undefined || !hosts) return;
    this.#watchedHost.set(key, host);
    let watch = this.#hostWatch.get(host);
    if (!watch) {
      const created = { keys: new Set<string>(), timer: undefined as Timer | undefined };
      // Armed for when the answer runs out; re-armed once the new answer is in, so a
      // lookup that takes a while is never asked again while it runs.
      const look = (): void => {
        created.timer = this.#clock.setTimer(() => {
          if (this.#hostWatch.get(host) !== created) return;
          hosts.resolver.problemsNow([host], hosts.destinations(), () => {
            for (const k of created.keys) this.#wake(k);
          });
          void hosts.resolver.settled(host).then(() => {
            if (this.#hostWatch.get(host) === created) look();
          });
        }, hosts.resolver.refreshInMs(host));
      };
      look();
      this.#hostWatch.set(host, (watch = created));
    }
    watch.keys.add(key);
  }
}

/** Whether the Secret holding the binding's certificate (PFX or TLS pair) exists; a spec naming none is judged elsewhere. */
function certificateSecretExists(b: ClientCertificateBinding, exists: (namespace: string, name: string) => boolean): boolean {
  const name = b.spec.certificate?.secretRef?.name ?? b.spec.certificate?.tlsSecretRef?.name;
  return name === undefined || exists(b.metadata.namespace, name);
}

function sameLabels(a: Readonly<Record<string, string>> | undefined, b: Readonly<Record<string, string>> | undefined): boolean {
  const ka = Object.keys(a ?? {});
  return ka.length === Object.keys(b ?? {}).length && ka.every((k) => a?.[k] === b?.[k]);
}

function earliestOf(a: number | undefined, b: number): number {
  return a === undefined ? b : Math.min(a, b);
}
