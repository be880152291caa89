import * as reasons from '../api/v1alpha1/reasons.ts';
import type { Outcome } from '../api/v1alpha1/reasons.ts';
import { metaV1Time } from '../api/time.ts';

/** A port, or why none; `retryAtMs` when time alone will change the answer (a quarantine ends). */
export type PortOutcome = Outcome<{ port: number }> & { readonly retryAtMs?: number };

export interface PortRange {
  first: number;
  last: number;
}

/** What allocation needs to know of a binding. */
export interface PortClaimant {
  key: string;
  /** The binding's namespace; default the part of `key` before the slash. */
  namespace?: string;
  /** Older claimants win ties; ISO timestamps compare as strings. */
  creationTimestamp: string;
  requested?: number;
  /**
   * The port the controller itself last gave the binding (its own record, or a status it
   * wrote): the binding keeps it while it still wants it, and it settles a duplicate.
   */
  held?: number;
  /**
   * The port the binding's status shows. Anyone who may write status can write it, so it
   * counts only after every held port, inside the range, off the reserved ports, outside
   * another namespace's quarantine, and only when no other binding holds it.
   */
  reported?: number;
  /**
   * Whether the binding may be given a port it does not hold yet: false while it cannot
   * be served (its certificate Secret does not exist). A port it holds stays.
   */
  mayTakeNew?: boolean;
  /**
   * False once the binding has been unservable past the grace period (its certificate
   * Secret long gone): it gives up the port it holds, which its namespace keeps quarantined.
   */
  mayHold?: boolean;
}

/** A port a binding gave up, kept from every other namespace until `untilMs`. */
export interface PortRelease {
  port: number;
  namespace: string;
  untilMs: number;
}

export interface AllocationPolicy {
  /** Ports never handed out whatever status says (the proxy's own listeners). */
  reserved?: ReadonlySet<number>;
  /** Ports freed recently; only their own namespace may take them before `untilMs`. */
  releases?: readonly PortRelease[];
  /** Now, in milliseconds since the epoch: which releases are still in force. */
  nowMs?: number;
  /** How many ports a namespace may hold; default: no limit. */
  shareOf?: (namespace: string) => number;
}

/**
 * Assigns every binding a listener port. Stability is the contract: a port once given
 * stays with its binding while the binding exists and does not ask for another, so adding
 * or removing a binding never moves anyone else, and a restart (which reads the ports back
 * from status) changes nothing. The result depends only on the claimants and the policy,
 * so two reconciles that read the cache at different moments agree.
 *
 * Ports belong to namespaces: a port freed in one namespace is not given to another while
 * its release is in force, a namespace past its share gets no new port (what it freed and
 * is still quarantined counts, and comes back to it first), and a binding that cannot be
 * served gets none either. None of these moves a port a binding already holds.
 *
 * Order: held ports first (oldest holder wins a duplicate), then ports reported in status
 * and checked, then fixed requests (oldest first; a port already taken is a conflict), then
 * the rest get the lowest free port of the range, oldest first.
 */
export function allocateListenerPorts(claimants: readonly PortClaimant[], range: PortRange, policy: AllocationPolicy = {}): Map<string, PortOutcome> {
  // Code-unit order, not localeCompare: the same on every machine, and no ICU collation
  // on the controller's event loop (with thousands of bindings, it showed).
  const sorted = [...claimants].sort((a, b) => compare(a.creationTimestamp, b.creationTimestamp) || compare(a.key, b.key));
  const owner = new Map<number, string>();
  const result = new Map<string, PortOutcome>();
  const held = new Map<string, number>();
  const quarantine = quarantineOf(policy);
  const inRange = (port: number): boolean => port >= range.first && port <= range.last && !policy.reserved?.has(port);
  /** Per namespace, the ports it freed that are still quarantined and that nobody holds: charged to its share. */
  const freedBy = new Map<string, Set<number>>();
  const give = (c: PortClaimant, port: number): void => {
    owner.set(port, c.key);
    const ns = namespaceOf(c);
    // Taking back a port it freed costs a namespace nothing: that port was charged already.
    if (freedBy.get(ns)?.delete(port) !== true) held.set(ns, (held.get(ns) ?? 0) + 1);
    result.set(c.key, { ok: true, port });
  };
  const wants = (c: PortClaimant, port: number): boolean => c.requested === undefined || c.requested === port;

  for (const c of sorted) {
    if (c.held === undefined || c.mayHold === false || !wants(c, c.held) || !inRange(c.held) || owner.has(c.held)) continue;
    give(c, c.held);
  }
  for (const c of sorted) {
    const port = c.reported;
    if (result.has(c.key) || c.mayHold === false || port === undefined || !wants(c, port) || !inRange(port) || owner.has(port)) continue;
    if (quarantine.blocks(port, namespaceOf(c))) continue;
    give(c, port);
  }
  // A namespace's quarantined ports count against its share until they run out, or else
  // creating and deleting bindings on fixed ports would quarantine the whole range.
  for (const r of quarantine.releases) {
    if (owner.has(r.port) || !inRange(r.port)) continue;
    let freed = freedBy.get(r.namespace);
    if (!freed) freedBy.set(r.namespace, (freed = new Set()));
    freed.add(r.port);
  }
  const charged = (ns: string): number => (held.get(ns) ?? 0) + (freedBy.get(ns)?.size ?? 0);
  // Only what no binding holds is handed out below: a namespace's share and a broken
  // binding's wait never take a port from anyone.
  const refusal = (c: PortClaimant, port?: number): PortOutcome | undefined => {
    if (c.mayHold === false) {
      return {
        ok: false,
        reason: reasons.SecretNotFound,
        message:
          "the binding's certificate Secret has been missing past --broken-port-grace, so its listener port was given up; it gets one again once the Secret exists",
      };
    }
    if (c.mayTakeNew === false) {
      return { ok: false, reason: reasons.SecretNotFound, message: "a listener port is given once the binding's certificate Secret exists" };
    }
    const ns = namespaceOf(c);
    const share = policy.shareOf?.(ns);
    if (share !== undefined && charged(ns) >= share && (port === undefined || !freedBy.get(ns)?.has(port))) {
      const freed = freedBy.get(ns)?.size ?? 0;
      return {
        ok: false,
        reason: reasons.NamespacePortQuotaExceeded,
        message:
          `namespace ${ns} holds ${held.get(ns) ?? 0} listener ports` +
          (freed > 0 ? ` and freed ${freed} still quarantined` : '') +
          `, its share is ${share}; delete a binding there, or ask the platform team to raise the namespace's mtls-egress.io/max-listener-ports`,
      };
    }
    return undefined;
  };
  for (const c of sorted) {
    if (result.has(c.key) || c.requested === undefined) continue;
    const holder = owner.get(c.requested);
    if (holder !== undefined) {
      result.set(c.key, {
        ok: false,
        reason: reasons.ListenerPortConflict,
        message: `listener port ${c.requested} is already held by ClientCertificateBinding ${holder}`,
      });
      continue;
    }
    const release = quarantine.blocks(c.requested, namespaceOf(c));
    if (release) {
      result.set(c.key, quarantined(`listener port ${c.requested} was freed in namespace ${release.namespace}`, release.untilMs));
      continue;
    }
    const refused = refusal(c, c.requested);
    if (refused) result.set(c.key, refused);
    else give(c, c.requested);
  }
  let next = range.first;
  for (const c of sorted) {
    if (result.has(c.key)) continue;
    // A port the namespace freed itself comes back first: its callers are the same.
    const own = lowest(freedBy.get(namespaceOf(c)));
    const refused = refusal(c, own);
    if (refused) {
      result.set(c.key, refused);
      continue;
    }
    if (own !== undefined) {
      give(c, own);
      continue;
    }
    while (next <= range.last && (owner.has(next) || policy.reserved?.has(next))) next++;
    // Past `next`, a port is free for this namespace unless another namespace's release holds it.
    const ns = namespaceOf(c);
    let port = next;
    let waitedFor: PortRelease | undefined;
    for (; port <= range.last; port++) {
      if (owner.has(port) || policy.reserved?.has(port)) continue;
      const release = quarantine.blocks(port, ns);
      if (!release) break;
      if (!waitedFor || release.untilMs < waitedFor.untilMs) waitedFor = release;
    }
    if (port <= range.last) {
      give(c, port);
      continue;
    }
    result.set(
      c.key,
      waitedFor
        ? quarantined(`every free listener port in ${range.first}-${range.last} was freed recently in another namespace`, waitedFor.untilMs)
        : {
            ok: false,
            reason: reasons.ListenerPortsExhausted,
            message: `no free listener port in ${range.first}-${range.last}; widen the controller's --listener-ports range`,
          },
    );
  }
  return result;
}

function quarantined(why: string, untilMs: number): PortOutcome {
  return {
    ok: false,
    reason: reasons.ListenerPortQuarantined,
    message: `${why}, and is kept from other namespaces until ${metaV1Time(new Date(untilMs))} (--port-quarantine): the callers there may still use it`,
    retryAtMs: untilMs,
  };
}

function lowest(ports: ReadonlySet<number> | undefined): number | undefined {
  let min: number | undefined;
  for (const p of ports ?? []) if (min === undefined || p < min) min = p;
  return min;
}

/** The releases in force, by port: a port freed twice is kept for the later release's namespace. */
function quarantineOf(policy: AllocationPolicy): { releases: Iterable<PortRelease>; blocks(port: number, namespace: string): PortRelease | undefined } {
  const byPort = new Map<number, PortRelease>();
  const now = policy.nowMs ?? 0;
  for (const r of policy.releases ?? []) {
    if (r.untilMs <= now) continue;
    const before = byPort.get(r.port);
    if (!before || before.untilMs < r.untilMs) byPort.set(r.port, r);
  }
  return {
    releases: [...byPort.values()],
    blocks: (port, namespace) => {
      const release = byPort.get(port);
      return release && release.namespace !== namespace ? release : undefined;
    },
  };
}

/**
 * The ports given up between two allocations (a binding deleted, or moved to another
 * port), each kept from other namespaces for `quarantineMs` from now; with the releases
 * still in force from before. A port given up and taken again within its namespace stays
 * released too: when that binding goes, the namespace's callers are the same.
 */
export function releasedPorts(
  before: ReadonlyMap<string, { port: number; namespace: string }>,
  after: ReadonlyMap<string, PortOutcome>,
  releases: readonly PortRelease[],
  nowMs: number,
  quarantineMs: number,
): PortRelease[] {
  const kept = releases.filter((r) => r.untilMs > nowMs);
  if (quarantineMs <= 0) return kept;
  const byPort = new Map(kept.map((r) => [r.port, r]));
  for (const [key, held] of before) {
    const now = after.get(key);
    if (now?.ok && now.port === held.port) continue;
    byPort.set(held.port, { port: held.port, namespace: held.namespace, untilMs: nowMs + quarantineMs });
  }
  return [...byPort.values()].sort((a, b) => a.port - b.port);
}

/** Each binding's port from an allocation, with its namespace: the controller's own record. */
export function grantedPorts(result: ReadonlyMap<string, PortOutcome>): Map<string, { port: number; namespace: string }> {
  const granted = new Map<string, { port: number; namespace: string }>();
  for (const [key, outcome] of result) if (outcome.ok) granted.set(key, { port: outcome.port, namespace: namespaceOfKey(key) });
  return granted;
}

/**
 * --namespace-port-share: "10%" of the range, or a count. A namespace's own
 * mtls-egress.io/max-listener-ports annotation (a count, set by the platform) overrides it.
 */
export function parsePortShare(text: string, range: PortRange): number {
  const size = range.last - range.first + 1;
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(text.trim());
  if (percent) {
    const share = Number(percent[1]);
    if (share <= 0 || share > 100) throw new Error(`invalid port share "${text}": want a percentage in (0, 100]`);
    return Math.max(1, Math.ceil((size * share) / 100));
  }
  const count = parsePortCount(text);
  if (count === undefined || count < 1) throw new Error(`invalid port share "${text}": want N% of the range, or a count >= 1`);
  return count;
}

/**
 * Without --namespace-port-share: a tenth of the range, so ten namespaces can fill it and
 * no one can starve the rest; never fewer than 10 ports (or the whole of a smaller range),
 * so a small test range still serves a team.
 */
export function defaultPortShare(range: PortRange): number {
  const size = range.last - range.first + 1;
  return Math.min(size, Math.max(10, Math.ceil(size / 10)));
}

/** A namespace's mtls-egress.io/max-listener-ports: a whole number >= 0, or undefined when it is not one. */
export function parsePortCount(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d{1,6}$/.test(text.trim())) return undefined;
  return Number(text.trim());
}

function namespaceOf(c: PortClaimant): string {
  return c.namespace ?? namespaceOfKey(c.key);
}

function namespaceOfKey(key: string): string {
  const slash = key.indexOf('/');
  return slash < 0 ? '' : key.slice(0, slash);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function parsePortRange(text: string): PortRange {
  const match = /^(\d+)-(\d+)$/.exec(text.trim());
  const first = Number(match?.[1]);
  const last = Number(match?.[2]);
  if (!match || first < 1024 || last > 65535 || first > last) {
    throw new Error(`invalid port range "${text}": want FIRST-LAST within 1024-65535`);
  }
  return { first, last };
}
