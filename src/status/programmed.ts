import * as reasons from '../api/v1alpha1/reasons.ts';
import type { Outcome } from '../api/v1alpha1/reasons.ts';

/** A proxy replica as the controller sees it: from the Pod's Ready condition and the agent's annotations. */
export interface ProxyReplica {
  name: string;
  ready: boolean;
  appliedHash: string | undefined;
  applyError: string | undefined;
}

/** Which certificate each binding presents in a configuration, by configuration hash. */
export type ServedCertificates = (configHash: string) => Readonly<Record<string, { fingerprintSha256: string }>> | undefined;

/**
 * Programmed means proven, not hoped: every ready proxy replica has applied a
 * configuration in which this binding presents exactly this certificate. A rotation is
 * therefore Programmed only once the new certificate is live everywhere.
 */
export function programmedCheck(bindingKey: string, fingerprint: string | undefined, replicas: readonly ProxyReplica[], served: ServedCertificates): Outcome {
  if (fingerprint === undefined) {
    return { ok: false, reason: reasons.ProgrammingPending, message: 'the proxy serves this binding once its certificate is usable' };
  }
  const ready = replicas.filter((r) => r.ready).sort((a, b) => (a.name < b.name ? -1 : 1));
  if (ready.length === 0) return { ok: false, reason: reasons.ProgrammingPending, message: 'no ready proxy replica yet' };
  const behind: string[] = [];
  for (const replica of ready) {
    const config = replica.appliedHash === undefined ? undefined : served(replica.appliedHash);
    if (config?.[bindingKey]?.fingerprintSha256 === fingerprint) continue;
    if (replica.applyError) {
      return {
        ok: false,
        reason: reasons.ProxyConfigRejected,
        message: `proxy replica ${replica.name} rejected the newest configuration and serves the last good one: ${replica.applyError}`,
      };
    }
    behind.push(replica.name);
  }
  if (behind.length === 0) return { ok: true };
  return {
    ok: false,
    reason: reasons.ProgrammingPending,
    message: `waiting for ${behind.length} of ${ready.length} ready proxy replicas to serve certificate ${fingerprint.slice(0, 23)}…: ${behind.join(', ')}`,
  };
}

/**
 * The bindings whose Programmed a replica's change can move, or 'all'. A replica that
 * applied a new configuration moves only the bindings whose certificate differs between
 * the configuration it served and the one it serves now: at ten thousand bindings, a
 * rotation used to re-evaluate every binding once per replica, and the next change
 * queued behind those ten thousand. Anything else (a replica ready or not, an apply
 * error, a configuration the history no longer holds) can move any binding.
 */
export function bindingsToRecheck(before: ProxyReplica, after: ProxyReplica, served: ServedCertificates): 'all' | string[] {
  if (before.name !== after.name || before.ready !== after.ready || before.applyError !== after.applyError) return 'all';
  if (before.appliedHash === after.appliedHash) return [];
  const was = before.appliedHash === undefined ? undefined : served(before.appliedHash);
  const now = after.appliedHash === undefined ? undefined : served(after.appliedHash);
  if (!was || !now) return 'all';
  const changed: string[] = [];
  for (const key of Object.keys(now)) if (was[key]?.fingerprintSha256 !== now[key]!.fingerprintSha256) changed.push(key);
  for (const key of Object.keys(was)) if (!(key in now)) changed.push(key);
  return changed;
}

/**
 * The last configurations the controller wrote, so a replica a few steps behind is
 * recognised. Each holds every binding's fingerprint, so the history is bounded by
 * entries as well as by configurations: at ten thousand bindings it keeps the newest
 * few, which is what replicas a moment behind need.
 */
export class ServedCertificateHistory {
  readonly #limit: number;
  readonly #maxEntries: number;
  readonly #configs = new Map<string, { bindings: Readonly<Record<string, { fingerprintSha256: string }>>; size: number }>();
  #entries = 0;

  constructor(limit = 32, maxEntries = 200_000) {
    this.#limit = limit;
    this.#maxEntries = maxEntries;
  }

  record(hash: string, bindings: Readonly<Record<string, { fingerprintSha256: string }>>): void {
    this.#forget(hash);
    const size = Object.keys(bindings).length;
    this.#configs.set(hash, { bindings, size });
    this.#entries += size;
    // The newest two always stay: the one being written and the one replicas serve now.
    while (this.#configs.size > 2 && (this.#configs.size > this.#limit || this.#entries > this.#maxEntries)) this.#forget(this.#configs.keys().next().value!);
  }

  #forget(hash: string): void {
    const config = this.#configs.get(hash);
    if (!config) return;
    this.#entries -= config.size;
    this.#configs.delete(hash);
  }

  served: ServedCertificates = (hash) => this.#configs.get(hash)?.bindings;
}
