import { bindingKey, type ClientCertificateBinding, type ClientCertificateBindingStatus } from '../api/v1alpha1/types.ts';
import { grantedPorts, releasedPorts, type PortOutcome, type PortRange, type PortRelease } from '../model/listener-ports.ts';
import { allocatePorts, type PortEligibility } from './translate.ts';

export interface PortAllocationsOptions {
  bindings: () => readonly ClientCertificateBinding[];
  listenerPorts: PortRange;
  /** Ports inside no range that status may name all the same: the proxy's own listeners. */
  reserved?: ReadonlySet<number>;
  /** The status this controller wrote and the cache may not show yet: it holds the port, as the controller's own word. */
  previousStatus?: (b: ClientCertificateBinding) => ClientCertificateBindingStatus | undefined;
  /** Bindings whose outcome a recompute changed, other than the one that caused it. */
  onMoved?: (keys: string[]) => void;
  /** How long a freed port is kept from other namespaces (--port-quarantine); 0: not at all. */
  quarantineMs?: number;
  /** The releases changed (a port was freed, or a release ran out): what the caller keeps across restarts. */
  onReleased?: (releases: readonly PortRelease[]) => void;
  /** How many ports a namespace may hold; default no limit. */
  shareOf?: (namespace: string) => number;
  /** Whether a binding may take a new port, only keep its own, or hold none (see PortEligibility); default any. */
  eligibility?: (b: ClientCertificateBinding) => PortEligibility;
  /** Milliseconds since the epoch, as the caller's clock says (default the system's): which releases are in force. */
  now?: () => number;
}

/**
 * Listener ports over every binding, recomputed only when some binding's port inputs
 * changed. A controller's own status write of the port it was given changes nothing: at
 * ten thousand bindings, recomputing after each of a cold start's writes would cost
 * O(n² log n). A recompute that moves another binding's port (a freed port settles a
 * conflict) reports the bindings whose outcome changed, so their owner looks again.
 *
 * Status is output: the last allocation is the controller's own record of who holds
 * what, and a port read from status counts only where that record says nothing (a fresh
 * term), checked by the allocator. The ports a recompute frees become releases, kept from
 * other namespaces for the quarantine; a release running out is a change like any other.
 */
export class PortAllocations {
  readonly #o: PortAllocationsOptions;
  readonly #now: () => number;
  #version = 0;
  #computed: { version: number; result: Map<string, PortOutcome> } | undefined;
  /** Who held which port after the last allocation: trusted over status. */
  #granted = new Map<string, { port: number; namespace: string }>();
  #releases: readonly PortRelease[] = [];

  constructor(options: PortAllocationsOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  added(): void {
    this.#version++;
  }

  /**
   * A binding is gone: its port is released now, not at the next allocation, which may be
   * far off when nobody waits for a port (and a restart meanwhile would forget it).
   */
  deleted(b?: ClientCertificateBinding): void {
    this.#version++;
    const key = b && bindingKey(b);
    const held = key === undefined ? undefined : this.#granted.get(key);
    if (key === undefined || !held) return;
    this.#granted.delete(key);
    const now = this.#now();
    const releases = releasedPorts(new Map([[key, held]]), new Map(), this.#releases, now, this.#o.quarantineMs ?? 0);
    if (sameReleases(releases, this.#releases)) return;
    this.#releases = releases;
    this.#o.onReleased?.(releases);
  }

  updated(b: ClientCertificateBinding, old: ClientCertificateBinding): void {
    if (portInputs(b) !== portInputs(old) && !this.#confirms(b, old)) this.#version++;
  }

  /** Something besides the bindings changed what may be handed out: a namespace's share, a Secret that now exists. */
  changed(): void {
    this.#version++;
  }

  /**
   * A leadership term starts: another replica may have led meanwhile, so this one's record
   * is forgotten (status, written by that leader, is read again, checked), and the releases
   * are the ones kept in the cluster.
   */
  reset(releases: readonly PortRelease[]): void {
    this.#granted = new Map();
    this.#computed = undefined;
    this.#releases = [...releases].sort((a, b) => a.port - b.port);
    this.#version++;
  }

  /** Releases in force, as of the last allocation. */
  get releases(): readonly PortRelease[] {
    return this.#releases;
  }

  /** The last outcome of one binding, without recomputing. */
  peek(key: string): PortOutcome | undefined {
    return this.#computed?.result.get(key);
  }

  /** Every binding's outcome, as of the last change (or the last release that ran out). */
  get(): Map<string, PortOutcome> {
    const now = this.#now();
    if (this.#computed?.version !== this.#version || this.#releases.some((r) => r.untilMs <= now)) {
      const previous = this.#computed?.result;
      const written = this.#o.previousStatus;
      const bindings = this.#o.bindings();
      const allocate = (releases: readonly PortRelease[]): Map<string, PortOutcome> =>
        allocatePorts(bindings, {
          listenerPorts: this.#o.listenerPorts,
          held: (b) => written?.(b)?.listenerPort ?? this.#granted.get(bindingKey(b))?.port,
          ...(this.#o.eligibility ? { eligibility: this.#o.eligibility } : {}),
          policy: {
            ...(this.#o.reserved ? { reserved: this.#o.reserved } : {}),
            releases,
            nowMs: now,
            ...(this.#o.shareOf ? { shareOf: this.#o.shareOf } : {}),
          },
        });
      let result = allocate(this.#releases);
      let releases = releasedPorts(this.#granted, result, this.#releases, now, this.#o.quarantineMs ?? 0);
      // What this change freed is only known once it is allocated: again with those
      // releases, so a port freed now is not handed to another namespace in the same pass.
      // Releases only take ports away from others, so the second pass frees nothing new.
      if (
        !sameReleases(
          releases,
          this.#releases.filter((r) => r.untilMs > now),
        )
      ) {
        result = allocate(releases);
        releases = releasedPorts(this.#granted, result, releases, now, this.#o.quarantineMs ?? 0);
      }
      const releasesChanged = !sameReleases(releases, this.#releases);
      this.#releases = releases;
      this.#granted = grantedPorts(result);
      this.#computed = { version: this.#version, result };
      if (releasesChanged) this.#o.onReleased?.(releases);
      if (previous && this.#o.onMoved) {
        const moved = [...result].filter(([key, outcome]) => {
          const before = previous.get(key);
          return before !== undefined && !samePort(before, outcome);
        });
        if (moved.length > 0) this.#o.onMoved(moved.map(([key]) => key));
      }
    }
    return this.#computed.result;
  }

  /** The status now shows the port the last allocation gave: an echo of a write, not a change. */
  #confirms(b: ClientCertificateBinding, old: ClientCertificateBinding): boolean {
    if (b.spec.listenerPort !== old.spec.listenerPort || b.metadata.creationTimestamp !== old.metadata.creationTimestamp) return false;
    const allocated = this.#computed?.version === this.#version ? this.#computed.result.get(bindingKey(b)) : undefined;
    return allocated?.ok === true && allocated.port === b.status?.listenerPort;
  }
}

/** What port allocation reads of a binding; a change re-runs the allocation. */
function portInputs(b: ClientCertificateBinding): string {
  return `${b.spec.listenerPort ?? ''}|${b.status?.listenerPort ?? ''}|${b.metadata.creationTimestamp ?? ''}`;
}

function samePort(a: PortOutcome, b: PortOutcome): boolean {
  return a.ok && b.ok ? a.port === b.port : a.ok === b.ok && !a.ok && !b.ok && a.reason === b.reason;
}

function sameReleases(a: readonly PortRelease[], b: readonly PortRelease[]): boolean {
  return a.length === b.length && a.every((r, i) => r.port === b[i]?.port && r.namespace === b[i]?.namespace && r.untilMs === b[i]?.untilMs);
}
