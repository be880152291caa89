import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import * as reasons from '../api/v1alpha1/reasons.ts';
import type { Problem } from '../api/v1alpha1/reasons.ts';

export type Resolve = (host: string) => Promise<boolean>;

/**
 * nginx resolves every upstream host when it loads a config, and one name it cannot
 * resolve fails `nginx -t` for the whole file: one binding's typo would freeze every
 * other binding's changes. So hosts are resolved first, from where the controller runs
 * (the same cluster DNS the proxy uses), and a binding whose host does not resolve is
 * left out with its own reason. Answers are cached briefly and shared by both
 * controllers, so they agree, and a render does not wait on DNS for a thousand unchanged
 * hosts. A failure is cached for less time than a success: callers look again after
 * `retryAfterMs`, so a host that starts resolving is picked up without any object change.
 */
export class HostResolver {
  readonly #resolve: Resolve;
  readonly #cache = new Map<string, { ok: boolean; until: number }>();
  readonly #okTtlMs: number;
  readonly retryAfterMs: number;

  constructor(options: { resolve?: Resolve; okTtlMs?: number; failTtlMs?: number } = {}) {
    this.#resolve = options.resolve ?? (async (host) => lookup(host).then(() => true, () => false));
    this.#okTtlMs = options.okTtlMs ?? 60_000;
    this.retryAfterMs = options.failTtlMs ?? 5_000;
  }

  async resolves(host: string, now = Date.now()): Promise<boolean> {
    if (isIP(host)) return true;
    const cached = this.#cache.get(host);
    if (cached && cached.until > now) return cached.ok;
    const ok = await this.#resolve(host);
    this.#cache.set(host, { ok, until: now + (ok ? this.#okTtlMs : this.retryAfterMs) });
    return ok;
  }

  /** The hosts among these the proxy could not load, each with its problem. */
  async problems(hosts: Iterable<string>): Promise<Map<string, Problem>> {
    const unique = [...new Set(hosts)];
    const verdicts = await Promise.all(unique.map((host) => this.resolves(host)));
    const problems = new Map<string, Problem>();
    unique.forEach((host, i) => {
      if (!verdicts[i]) problems.set(host, { reason: reasons.HostUnresolvable, message: `host ${host} does not resolve; the proxy leaves this binding out so the others keep loading` });
    });
    return problems;
  }
}
