import { lookup, Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import * as reasons from '../api/v1alpha1/reasons.ts';
import type { Problem } from '../api/v1alpha1/reasons.ts';
import type { DestinationPolicy } from '../model/destinations.ts';
import { systemClock, type Clock } from '../runner/clock.ts';
import { inputPolicy } from './input-policy.ts';

/** A host's answer: its addresses (none when it does not resolve) and, when DNS said, how long they hold. */
export interface HostAnswer {
  addresses: string[];
  /** The records' TTL in seconds (the smallest of them); absent for getaddrinfo's answers, which carry none. */
  ttlSeconds?: number;
}

/** Every address a host resolves to; none when it does not resolve. A bare list carries no TTL. */
export type Resolve = (host: string) => Promise<string[] | HostAnswer>;

/**
 * Asks DNS for both families with the records' TTL: `servers` ("1.2.3.4", "1.2.3.4:5353",
 * "[fd00::a]:53"), or /etc/resolv.conf's when none. The answer is the union of A and AAAA.
 * When DNS has no answer at all, getaddrinfo is asked (no TTL): it also reads /etc/hosts
 * and a pod's hostAliases, which a platform may use to name a partner. Every address of
 * either answer is checked by the caller before the proxy is given it.
 */
export function dnsResolve(servers: readonly string[] = []): Resolve {
  const resolver = new Resolver({ timeout: inputPolicy.dnsQueryTimeoutMs, tries: inputPolicy.dnsQueryTries });
  if (servers.length > 0) resolver.setServers([...servers]);
  return async (host) => {
    const answers = await Promise.allSettled([resolver.resolve4(host, { ttl: true }), resolver.resolve6(host, { ttl: true })]);
    const records = answers.flatMap((a) => (a.status === 'fulfilled' ? a.value : []));
    if (records.length > 0) return { addresses: records.map((r) => r.address), ttlSeconds: Math.min(...records.map((r) => r.ttl)) };
    return lookup(host, { all: true }).then(
      (found) => found.map((a) => a.address),
      () => [],
    );
  };
}

/**
 * Addresses in one order whatever order DNS gave them in, without repeats: IPv4 first
 * (the family every cluster routes; HAProxy connects to the first), then by text. An
 * answer that only reorders is the same answer, so it changes nothing downstream.
 */
export function sortAddresses(addresses: readonly string[]): string[] {
  return [...new Set(addresses)].sort((a, b) => isIP(a) - isIP(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/** How long an answer is used: its records' TTL within bounds, or the default when it carries none. */
export function answerLifetimeMs(answer: HostAnswer, defaultMs: number): number {
  if (answer.ttlSeconds === undefined) return defaultMs;
  return Math.min(inputPolicy.hostTtlCeilingMs, Math.max(inputPolicy.hostTtlFloorMs, answer.ttlSeconds * 1000));
}

interface Cached {
  addresses: string[];
  until: number;
}

/** What problemsNow found for a set of hosts. */
export interface HostVerdicts {
  /** Why the proxy may not be given each of these hosts. */
  problems: Map<string, Problem>;
  /** The checked addresses of each host without a problem (an IP host is its own): all the proxy is ever given. */
  addresses: Map<string, readonly string[]>;
  /** How long the youngest lookup of a never-answered host has run; undefined when every host has been answered. */
  unansweredForMs: number | undefined;
}

/**
 * Hosts resolved and checked where the controller runs, so the proxy is given addresses,
 * never a name: a name the proxy resolved itself could answer something else there than
 * here (DNS rebinding: a public address to the controller, 10.x or a node to the proxy a
 * second later), and nothing on the proxy's side checks the policy.
 *
 * So a host is resolved here (both families, with the records' TTL), and a binding whose
 * host does not resolve, or resolves anywhere refused, is left out with its own reason;
 * the others get their checked, sorted addresses. Answers are shared by both
 * controllers, so they agree, and a render does not wait on DNS for a thousand unchanged
 * hosts. An answer is used for its TTL within bounds (input-policy.ts), a failure for
 * less; callers look again when it runs out (BindingInputs keeps a timer per host in
 * use), and each new answer is judged again before the proxy sees it. Hosts no binding
 * names are forgotten (`forget`), and the cache holds at most `maxHosts` hosts.
 */
export class HostResolver {
  readonly #resolve: Resolve;
  readonly #clock: Clock;
  /** In the order last asked for: the first is the one dropped when the cache is full. */
  readonly #cache = new Map<string, Cached>();
  /** One lookup per host at a time, whoever asks: 10,000 bindings over 500 hosts are 500 lookups. */
  readonly #looking = new Map<string, { answer: Promise<string[]>; since: number }>();
  readonly #okTtlMs: number;
  readonly #maxHosts: number;
  readonly retryAfterMs: number;

  constructor(options: { resolve?: Resolve; okTtlMs?: number; failTtlMs?: number; clock?: Clock; maxHosts?: number } = {}) {
    this.#resolve = options.resolve ?? dnsResolve();
    this.#clock = options.clock ?? systemClock;
    this.#okTtlMs = options.okTtlMs ?? inputPolicy.hostAnswerTtlMs;
    this.retryAfterMs = options.failTtlMs ?? inputPolicy.hostRelookMs;
    this.#maxHosts = options.maxHosts ?? inputPolicy.hostCacheMax;
  }

  /** How many hosts' answers are kept. */
  get size(): number {
    return this.#cache.size;
  }

  /** The host's addresses (an IP host is its own), sorted and cached; none when it does not resolve. */
  async addresses(host: string, now = this.#clock.now()): Promise<string[]> {
    if (isIP(host)) return [host];
    const cached = this.#recall(host);
    if (cached && cached.until > now) return cached.addresses;
    return this.#lookUp(host, now);
  }

  /** How long until the host's answer runs out (0 when it has, or there is none): when a caller should look again. */
  refreshInMs(host: string, now = this.#clock.now()): number {
    const cached = this.#cache.get(host);
    return cached ? Math.max(0, cached.until - now) : 0;
  }

  /** Resolves when the host's lookup in flight (if any) has answered. */
  async settled(host: string): Promise<void> {
    await this.#looking.get(host)?.answer.catch(() => undefined);
  }

  /** No binding names the host any more: its answer, and any lookup in flight, are dropped. */
  forget(host: string): void {
    this.#cache.delete(host);
    this.#looking.delete(host);
  }

  #lookUp(host: string, now: number): Promise<string[]> {
    let looking = this.#looking.get(host);
    if (!looking) {
      const entry = { answer: Promise.resolve<string[]>([]), since: now };
      entry.answer = this.#resolve(host)
        .then((raw) => {
          const answer = Array.isArray(raw) ? { addresses: raw } : raw;
          const addresses = sortAddresses(answer.addresses);
          // A host forgotten while it was looked up stays forgotten.
          if (this.#looking.get(host) === entry)
            this.#remember(host, { addresses, until: now + (addresses.length > 0 ? answerLifetimeMs(answer, this.#okTtlMs) : this.retryAfterMs) });
          return addresses;
        })
        .finally(() => {
          if (this.#looking.get(host) === entry) this.#looking.delete(host);
        });
      this.#looking.set(host, (looking = entry));
    }
    return looking.answer;
  }

  #recall(host: string): Cached | undefined {
    const cached = this.#cache.get(host);
    if (cached) {
      this.#cache.delete(host);
      this.#cache.set(host, cached);
    }
    return cached;
  }

  #remember(host: string, cached: Cached): void {
    this.#cache.delete(host);
    this.#cache.set(host, cached);
    for (const oldest of this.#cache.keys()) {
      if (this.#cache.size <= this.#maxHosts) break;
      this.#cache.delete(oldest);
    }
  }

  /**
   * The hosts among these the proxy may not be given, each with its problem (it does not
   * resolve, or the policy refuses where it leads), and the checked addresses of the
   * rest, never waiting on DNS, so that a slow or failing resolver stalls no reconcile. A
   * host answered before is judged by that answer, even past its time (a new lookup
   * starts, and `wake` is called if it answers otherwise); a host never answered is left
   * out of the verdict (not a problem yet), its lookup starts, and `wake` is called when
   * it answers. `unansweredForMs`: how long the youngest lookup of a never-answered host
   * has run, so a caller may wait a little for the usual quick answer.
   */
  problemsNow(hosts: Iterable<string>, policy: DestinationPolicy | undefined, wake: () => void, now = this.#clock.now()): HostVerdicts {
    const answered: Array<[string, string[]]> = [];
    let unansweredForMs: number | undefined;
    for (const host of new Set(hosts)) {
      if (isIP(host)) {
        answered.push([host, [host]]);
        continue;
      }
      const cached = this.#recall(host);
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
    return { ...judge(answered, policy), unansweredForMs };
  }
}

/** Every address of every answer against the policy: any refused one refuses the host, since the proxy may connect to any of them. */
function judge(answered: ReadonlyArray<readonly [string, string[]]>, policy: DestinationPolicy | undefined): Omit<HostVerdicts, 'unansweredForMs'> {
  const problems = new Map<string, Problem>();
  const addresses = new Map<string, readonly string[]>();
  for (const [host, found] of answered) {
    const problem =
      found.length === 0
        ? { reason: reasons.HostUnresolvable, message: `host ${host} does not resolve; the proxy leaves this binding out so the others keep loading` }
        : policy?.problem(host, found);
    if (problem) problems.set(host, problem);
    else addresses.set(host, found);
  }
  return { problems, addresses };
}
