import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import * as reasons from '../api/v1alpha1/reasons.ts';
import type { EgressRoute } from '../model/egress-routes.ts';
import type { Problem } from '../status/evaluate.ts';

export type Resolve = (host: string) => Promise<boolean>;

/**
 * nginx resolves every upstream host when it loads a config, and one name it cannot
 * resolve fails `nginx -t` for the whole file: one binding's typo would freeze every
 * other binding's changes. So hosts are resolved first, from where the controller runs
 * (the same cluster DNS the proxy uses), and a binding whose host does not resolve is
 * left out with its own reason. Answers are cached briefly: a render must not wait on
 * DNS for a thousand unchanged hosts.
 */
export class HostResolver {
  readonly #resolve: Resolve;
  readonly #cache = new Map<string, { ok: boolean; until: number }>();
  readonly #okTtlMs: number;
  readonly #failTtlMs: number;

  constructor(options: { resolve?: Resolve; okTtlMs?: number; failTtlMs?: number } = {}) {
    this.#resolve = options.resolve ?? (async (host) => lookup(host).then(() => true, () => false));
    this.#okTtlMs = options.okTtlMs ?? 60_000;
    this.#failTtlMs = options.failTtlMs ?? 5_000;
  }

  async resolves(host: string, now = Date.now()): Promise<boolean> {
    if (isIP(host)) return true;
    const cached = this.#cache.get(host);
    if (cached && cached.until > now) return cached.ok;
    const ok = await this.#resolve(host);
    this.#cache.set(host, { ok, until: now + (ok ? this.#okTtlMs : this.#failTtlMs) });
    return ok;
  }

  /** Splits routes into those nginx can load and those left out for their host. */
  async partition(routes: readonly EgressRoute[]): Promise<{ routes: EgressRoute[]; unresolvable: Map<string, Problem> }> {
    const verdicts = await Promise.all(routes.map((r) => this.resolves(r.host)));
    const kept: EgressRoute[] = [];
    const unresolvable = new Map<string, Problem>();
    routes.forEach((route, i) => {
      if (verdicts[i]) kept.push(route);
      else unresolvable.set(route.key, { ok: false, reason: reasons.HostUnresolvable, message: `host ${route.host} does not resolve; the proxy leaves this binding out so the others keep loading` });
    });
    return { routes: kept, unresolvable };
  }
}
