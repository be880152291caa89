import * as reasons from '../api/v1alpha1/reasons.ts';
import type { Outcome } from '../api/v1alpha1/reasons.ts';

export type PortOutcome = Outcome<{ port: number }>;

export interface PortRange {
  first: number;
  last: number;
}

/** What allocation needs to know of a binding. */
export interface PortClaimant {
  key: string;
  /** Older claimants win ties; ISO timestamps compare as strings. */
  creationTimestamp: string;
  requested?: number;
  /** The port written to status earlier: the binding keeps it while it still wants it. */
  held?: number;
}

/**
 * Assigns every binding a listener port. Stability is the contract: a port once written
 * to status stays with its binding while the binding exists and does not ask for another,
 * so adding or removing a binding never moves anyone else, and a restart (which reads
 * the ports back from status) changes nothing. The result depends only on the set of
 * claimants, so two reconciles that read the cache at different moments agree.
 *
 * Order: held ports first (oldest holder wins a duplicate), then fixed requests (oldest
 * first; a port already taken is a conflict), then the rest get the lowest free port of
 * the range, oldest first.
 */
export function allocateListenerPorts(claimants: readonly PortClaimant[], range: PortRange): Map<string, PortOutcome> {
  // Code-unit order, not localeCompare: the same on every machine, and no ICU collation
  // on the controller's event loop (with thousands of bindings, it showed).
  const sorted = [...claimants].sort((a, b) => compare(a.creationTimestamp, b.creationTimestamp) || compare(a.key, b.key));
  const owner = new Map<number, string>();
  const result = new Map<string, PortOutcome>();

  for (const c of sorted) {
    if (c.held === undefined || (c.requested !== undefined && c.requested !== c.held)) continue;
    if (owner.has(c.held)) continue;
    owner.set(c.held, c.key);
    result.set(c.key, { ok: true, port: c.held });
  }
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
    owner.set(c.requested, c.key);
    result.set(c.key, { ok: true, port: c.requested });
  }
  let next = range.first;
  for (const c of sorted) {
    if (result.has(c.key)) continue;
    while (next <= range.last && owner.has(next)) next++;
    if (next > range.last) {
      result.set(c.key, {
        ok: false,
        reason: reasons.ListenerPortsExhausted,
        message: `no free listener port in ${range.first}-${range.last}; widen the controller's --listener-ports range`,
      });
      continue;
    }
    owner.set(next, c.key);
    result.set(c.key, { ok: true, port: next });
  }
  return result;
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
