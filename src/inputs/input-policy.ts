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
  /** How long a host's answer that resolves is used before it is looked up again (while it is, the last answer stands). */
  hostAnswerTtlMs: 60_000,
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
