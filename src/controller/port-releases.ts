import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { annotationContentHash, managedLabels } from '../api/labels.ts';
import type { KubeObject } from '../api/meta.ts';
import { errorSummary } from '../errors.ts';
import type { OwnedObjects } from '../k8s/owned-objects.ts';
import type { PortRelease } from '../model/listener-ports.ts';
import { sleep } from '../runner/backoff.ts';

/** The ConfigMap, in the controller's namespace, that keeps the port quarantine across restarts and leader changes. */
export const portReleasesName = 'mtls-egress-port-releases';
export const componentPortReleases = 'port-releases';
const dataKey = 'releases.json';

interface ConfigMapLike extends KubeObject {
  data?: Record<string, string>;
}

/**
 * The releases in force, kept where the next leader reads them before its first
 * allocation: without them, a restart would hand a freed port to another namespace at
 * once, which the quarantine exists to prevent. Entries expire with their quarantine, so
 * the object holds only the ports freed in the last --port-quarantine.
 *
 * One writer (the leader), one write at a time: a change while a write is out is written
 * after it, the newest only. A failed write is tried again; nothing else waits on it.
 */
export class PortReleaseStore {
  readonly #owned: OwnedObjects<'configmaps'>;
  readonly #namespace: string;
  readonly #logger: Logger;
  #pending: readonly PortRelease[] | undefined;
  #writing = false;
  #term: AbortSignal | undefined;

  constructor(options: { owned: OwnedObjects<'configmaps'>; namespace: string; logger: Logger }) {
    this.#owned = options.owned;
    this.#namespace = options.namespace;
    this.#logger = options.logger.child({ store: portReleasesName });
  }

  /** The releases kept in the cluster, read at the start of a term; retried until read or the term ends (then none). */
  async load(term: AbortSignal): Promise<PortRelease[]> {
    this.#owned.seed();
    this.#term = term;
    for (let attempt = 0; !term.aborted; attempt++) {
      try {
        const stored = await this.#owned.read<ConfigMapLike>('configmaps', portReleasesName);
        return parseReleases(stored?.data?.[dataKey]);
      } catch (err) {
        // Fail closed: no allocation runs before the quarantine is known.
        const retryInMs = Math.min(30_000, 500 * 2 ** attempt);
        this.#logger.warn({ err: errorSummary(err), retryInMs }, 'could not read the port releases; no listener port is given until they are read');
        await sleep(retryInMs, term).catch(() => undefined);
      }
    }
    return [];
  }

  /** Keeps these releases (the newest set wins); written in the background by the leader. */
  save(releases: readonly PortRelease[]): void {
    if (!this.#term || this.#term.aborted) return;
    this.#pending = releases;
    if (!this.#writing) void this.#drain();
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    try {
      for (let failures = 0; this.#pending && this.#term && !this.#term.aborted;) {
        const releases = this.#pending;
        this.#pending = undefined;
        try {
          await this.#owned.put('configmaps', releasesConfigMap(releases, this.#namespace));
          failures = 0;
        } catch (err) {
          this.#pending ??= releases;
          const retryInMs = Math.min(30_000, 500 * 2 ** failures++);
          this.#logger.warn({ err: errorSummary(err), retryInMs }, 'could not write the port releases; retrying');
          await sleep(retryInMs, this.#term).catch(() => undefined);
        }
      }
    } finally {
      this.#writing = false;
    }
  }
}

/** The ConfigMap that holds the releases, with the content hash OwnedObjects writes by. */
export function releasesConfigMap(releases: readonly PortRelease[], namespace: string): ConfigMapLike & { metadata: { annotations: Record<string, string> } } {
  const text = JSON.stringify(releases.map((r) => ({ port: r.port, namespace: r.namespace, until: new Date(r.untilMs).toISOString() })));
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: portReleasesName,
      namespace,
      labels: managedLabels(componentPortReleases),
      annotations: { [annotationContentHash]: createHash('sha256').update(text).digest('hex') },
    },
    data: { [dataKey]: text },
  };
}

/** What the ConfigMap holds, read defensively: an entry that is not a release is dropped, the rest kept. */
export function parseReleases(text: string | undefined): PortRelease[] {
  if (!text) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return [];
  }
  if (!Array.isArray(parsed)) return [];
  const releases: PortRelease[] = [];
  for (const entry of parsed as unknown[]) {
    const e = entry as { port?: unknown; namespace?: unknown; until?: unknown };
    const untilMs = typeof e.until === 'string' ? Date.parse(e.until) : NaN;
    if (typeof e.port === 'number' && Number.isInteger(e.port) && typeof e.namespace === 'string' && Number.isFinite(untilMs)) {
      releases.push({ port: e.port, namespace: e.namespace, untilMs });
    }
  }
  return releases;
}

/**
 * The releases kept, plus one for each port a binding held when it vanished unseen (deleted
 * while no controller led), from now; a port already released keeps its release.
 */
export function releasesOfVanished(
  kept: readonly PortRelease[],
  vanished: ReadonlyArray<{ key: string; port: number }>,
  nowMs: number,
  quarantineMs: number,
): PortRelease[] {
  if (quarantineMs <= 0 || vanished.length === 0) return [...kept];
  const byPort = new Map(kept.map((r) => [r.port, r]));
  for (const { key, port } of vanished) {
    if (!byPort.has(port)) byPort.set(port, { port, namespace: key.slice(0, key.indexOf('/')), untilMs: nowMs + quarantineMs });
  }
  return [...byPort.values()].sort((a, b) => a.port - b.port);
}
