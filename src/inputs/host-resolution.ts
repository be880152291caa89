import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import * as reasons from '../api/v1alpha1/reasons.ts';
import type { Problem } from '../api/v1alpha1/reasons.ts';
import type { DestinationPolicy } from '../model/destinations.ts';
import { systemClock, type Clock } from '../runner/clock.ts';
import { inputPolicy } from './input-policy.ts';

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
  readonly #clock: Clock;
  readonly #cache = new Map<string, { addresses: string[]; until: number }>();
  /** One lookup per host at a time, whoever asks: 10,000 bindings over 500 hosts are 500 lookups. */
  readonly #looking = new Map<string, { answer: Promise<string[]>; since: number }>();
  readonly #okTtlMs: number;
  readonly retryAfterMs: number;

  constructor(options: { resolve?: Resolve; okTtlMs?: number; failTtlMs?: number; clock?: Clock } = {}) {
    this.#resolve = options.resolve ?? systemResolve;
    this.#clock = options.clock ?? systemClock;
    this.#okTtlMs = options.okTtlMs ?? inputPolicy.hostAnswerTtlMs;
    this.retryAfterMs = options.failTtlMs ?? inputPolicy.hostRelookMs;
  }

  /** The host's addresses (an IP host is its own), cached; none when it does not resolve. */
  async addresses(host: string, now = this.#clock.now()): Promise<string[]> {
    if (isIP(host)) return [host];
    const cached = this.#cache.get(host);
    if (cached && cached.until > now) return cached.addresses;
    return this.#lookUp(host, now);
  }

  #lookUp(host: string, now: number): Promise<string[]> {
    let looking = this.#looking.get(host);
    if (!looking) {
      const answer = this.#resolve(host)
        .then((addresses) => {
          this.#cache.set(host, { addresses, until: now + (addresses.length > 0 ? this.#okTtlMs : this.retryAfterMs) });
          return addresses;
        })
        .finally(() => this.#looking.delete(host));
      this.#looking.set(host, (looking = { answer, since: now }));
    }
    return looking.answer;
  }

  /**
   * The hosts among these the proxy may not be given, each with its problem (it does not
   * resolve, or the policy refuses where it leads), never waiting on DNS, so that a slow
   * or failing resolver stalls no reconcile. A host answered before is judged by that
   * answer, even past its time (a new lookup starts, and `wake` is called if it answers
   * otherwise); a host never answered is left out of the verdict (not a problem yet), its
   * lookup starts, and `wake` is called when it answers. `unansweredForMs`: how long the
   * youngest lookup of a never-answered host has run, so a caller may wait a little for
   * the usual quick answer; undefined when every host has been answered.
   */
  problemsNow(
    hosts: Iterable<string>,
    policy: DestinationPolicy | undefined,
    wake: () => void,
    now = this.#clock.now(),
  ): { problems: Map<string, Problem>; unansweredForMs: number | undefined } {
    const answered: Array<[string, string[]]> = [];
    let unansweredForMs: number | undefined;
    for (const host of new Set(hosts)) {
      if (isIP(host)) {
        answered.push([host, [host]]);
        continue;
      }
      const cached = this.#cache.get(host);
      if (cached) answered.push([host, cached.addresses]);
      if (cached && cached.until > now) continue;
      const before = cached?.addresses.join(',');
      this.#lookUp(host, now).then(
        (addresses) => {
          if (addresses.join(',') !== before) wake();
        },
        () => wake(),
      );
      if (!cached) unansweredForMs = Math.min(unansweredForMs ?? Infinity, now - (this.#looking.get(host)?.since ?? now));
    }
    return { problems: this.#judge(answered, policy), unansweredForMs };
  }

  #judge(answered: ReadonlyArray<readonly [string, string[]]>, policy: DestinationPolicy | undefined): Map<string, Problem> {
    const problems = new Map<string, Problem>();
    for (const [host, addresses] of answered) {
      const problem =
        addresses.length === 0
          ? { reason: reasons.HostUnresolvable, message: `host ${host} does not resolve; the proxy leaves this binding out so the others keep loading` }
          : policy?.problem(host, addresses);
      if (problem) problems.set(host, problem);
    }
    return problems;
  }
}
