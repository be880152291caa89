// When the binding inputs wait, retry and look again: every number in one place, with its
// reason. Both controllers, `render` and `validate` gather through the same BindingInputs,
// so these hold for all of them.

export const inputPolicy = {
  /**
   * How long a reconcile lets a never-answered host's first lookup run before it goes on
   * without that host's verdict. Most answers take milliseconds: waiting this long spares a
   * refused host a first, wrong, Pending status; waiting longer would let a resolver that
   * drops queries hold back status. The answer wakes the binding whenever it comes.
   */
  hostPatienceMs: 2_000,
  /**
   * How long an answer that carries no TTL (getaddrinfo's: /etc/hosts, a pod's
   * hostAliases, a test's resolver) is used before the host is looked up again; while it
   * is, the last answer stands.
   */
  hostAnswerTtlMs: 60_000,
  /**
   * The shortest time an answer is used, whatever its record's TTL says. A rebinding
   * attacker publishes TTL 0 or 1; taken at its word, every such host would cost a query
   * a second, for ever. Each new answer is checked before the proxy gets it, so a short
   * floor costs no safety: it only bounds the queries to one per host per 5 s, while a
   * partner's DNS failover (TTLs of 30-60 s are common) is still followed within seconds.
   */
  hostTtlFloorMs: 5_000,
  /**
   * The longest time an answer is used, whatever its record's TTL says: a record with a
   * day's TTL is still asked again every 5 minutes, so a partner that moves is followed
   * within minutes and no address DNS dropped long ago stays in the proxy.
   */
  hostTtlCeilingMs: 5 * 60_000,
  /**
   * How many hosts' answers are kept. Hosts no binding names any more are dropped at once;
   * the cap holds memory whatever the bindings name: 20,000 is twice the 10,000 bindings
   * the controller is measured at, each on its own host (a few MB at most). Past it, the
   * host asked for least recently is dropped, and looked up again when it is next needed.
   */
  hostCacheMax: 20_000,
  /**
   * How long one DNS query may take before it is asked again (and how often): a resolver
   * that drops queries costs each host at most ~4 s before getaddrinfo is asked instead.
   */
  dnsQueryTimeoutMs: 2_000,
  dnsQueryTries: 2,
  /**
   * How often a host that does not resolve, or leads somewhere refused, is looked up again:
   * one lookup per host, waking its bindings only when the answer changed, so 10,000
   * bindings on a broken host cost one lookup per interval, not 10,000 reconciles.
   */
  hostRelookMs: 5_000,
  /**
   * When a decode the sandbox's clock stopped (a busy machine, not a verdict on the file) is
   * tried again. A hostile file takes the sandbox's whole time limit each try; this spaces
   * the tries so such a file costs a small share of the sandbox.
   */
  decodeRetryTransientMs: 30_000,
  /** A decoded version nobody asked for this long is dropped: rotated-away versions do not accumulate. */
  decodeIdleMs: 10 * 60_000,
} as const;
