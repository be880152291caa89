import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import * as reasons from '../api/v1alpha1/reasons.ts';
import type { Problem } from '../api/v1alpha1/reasons.ts';
import type { DestinationPolicy } from '../model/destinations.ts';

/** Every address a host resolves to; none when it does not resolve. */
export type Resolve = (host: string) => Promise<string[]>;

const systemResolve: Resolve = (host) =>
  lookup(host, { all: true }).then(
    (answers) => answers.map((a) => a.address),
    () => [],
  );

/**
 * Hosts as the proxy will resolve them, checked before they reach its configuration.
 *
 * nginx resolves every upstream host when it loads a config, and one name it cannot
 * resolve fails `nginx -t` for the whole file: one binding's typo would freeze every
 * other binding's changes. And a host may resolve to an address the proxy must not reach
 * (the destination policy). So hosts are resolved first, from where the controller runs
 * (the same cluster DNS the proxy uses), and a binding whose host does not resolve, or
 * resolves somewhere refused, is left out with its own reason. Answers are cached briefly
 * and shared by both controllers, so they agree, and a render does not wait on DNS for a
 * thousand unchanged hosts. A failure is cached for less time than a success: callers
 * look again after `retryAfterMs`, so a host that starts resolving is picked up without
 * any object change.
 */
export class HostResolver {
  readonly #resolve: Resolve;
  readonly #cache = new Map<string, { addresses: string[]; until: number }>();
  readonly #okTtlMs: number;
  readonly retryAfterMs: number;

  constructor(options: { resolve?: Resolve; okTtlMs?: number; failTtlMs?: number } = {}) {
    this.#resolve = options.resolve ?? systemResolve;
    this.#okTtlMs = options.okTtlMs ?? 60_000;
    this.retryAfterMs = options.failTtlMs ?? 5_000;
  }

  /** The host's addresses (an IP host is its own), cached; none when it does not resolve. */
  async addresses(host: string, now = Date.now()): Promise<string[]> {
    if (isIP(host)) return [host];
    const cached = this.#cache.get(host);
    if (cached && cached.until > now) return cached.addresses;
    const addresses = await this.#resolve(host);
    this.#cache.set(host, { addresses, until: now + (addresses.length > 0 ? this.#okTtlMs : this.retryAfterMs) });
    return addresses;
  }

  /** The hosts among these the proxy may not be given, each with its problem: it does not resolve, or the policy refuses where it leads. */
  async problems(hosts: Iterable<string>, policy?: DestinationPolicy): Promise<Map<string, Problem>> {
    const unique = [...new Set(hosts)];
    const answers = await Promise.all(unique.map((host) => this.addresses(host)));
    const problems = new Map<string, Problem>();
    unique.forEach((host, i) => {
      const addresses = answers[i]!;
      const problem =
        addresses.length === 0
          ? { reason: reasons.HostUnresolvable, message: `host ${host} does not resolve; the proxy leaves this binding out so the others keep loading` }
          : policy?.problem(host, addresses);
      if (problem) problems.set(host, problem);
    });
    return problems;
  }
}
