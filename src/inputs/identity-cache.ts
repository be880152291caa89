import type { CertificateInput } from '../model/certificate-input.ts';
import type { IdentityOutcome } from '../model/egress-routes.ts';
import { systemClock, type Clock } from '../runner/clock.ts';
import { inputPolicy } from './input-policy.ts';

/** Turns Secret bytes into an identity or a stable reason; never rejects for bad input. */
export type IdentityDecoder = (input: CertificateInput) => Promise<IdentityOutcome>;

interface Entry {
  outcome: Promise<IdentityOutcome>;
  settled: IdentityOutcome | undefined;
  settledAt: number;
  /** Wall-clock ms of the settling, whatever clock the cache is shown: for the rotation stamps. */
  decodedAt: number | undefined;
  usedAt: number;
  inFlight: boolean;
}

/**
 * Decoded identities by input version (Secret uid@resourceVersion per key), shared by the
 * status controller and the proxy-config controller: a PFX is decoded once per rotation,
 * however many bindings or controllers read it, and a resync decodes nothing. Entries
 * unused for `idleMs` are dropped, so rotated-away versions do not accumulate.
 *
 * Reconciles never wait for a decode (a hostile file may take the sandbox's whole time
 * limit): they ask `want(input, wake)`, use the outcome if it is there, and are woken when
 * it is. A failure that is not a verdict on the file (the sandbox's clock stopped it on a
 * busy machine) is decoded again once `retryTransientMs` have passed; one that did not
 * happen at all (the sandbox closed) is forgotten at once.
 */
export class IdentityCache {
  readonly #decode: IdentityDecoder;
  readonly #clock: Clock;
  readonly #idleMs: number;
  readonly #retryTransientMs: number;
  readonly #entries = new Map<string, Entry>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(decode: IdentityDecoder, options: { idleMs?: number; retryTransientMs?: number; clock?: Clock } = {}) {
    this.#decode = decode;
    this.#clock = options.clock ?? systemClock;
    this.#idleMs = options.idleMs ?? inputPolicy.decodeIdleMs;
    this.#retryTransientMs = options.retryTransientMs ?? inputPolicy.decodeRetryTransientMs;
    // Real time, not `clock`: the sweep paces memory, whatever time the cache is shown.
    this.#sweeper = setInterval(() => this.sweep(), Math.min(this.#idleMs, 60_000));
    this.#sweeper.unref();
  }

  get size(): number {
    return this.#entries.size;
  }

  /** When a transient failure is tried again. */
  get retryTransientMs(): number {
    return this.#retryTransientMs;
  }

  /** The outcome for this input version, decoding it the first time it is asked for (or again, after a transient failure has aged). */
  decode = (input: CertificateInput): Promise<IdentityOutcome> => {
    const entry = this.#entries.get(input.version);
    if (entry && !this.#due(entry)) {
      entry.usedAt = this.#clock.now();
      return entry.outcome;
    }
    // A decode tried again keeps showing the outcome it replaces until it settles.
    const created: Entry = {
      outcome: this.#decode(input),
      settled: entry?.settled,
      settledAt: entry?.settledAt ?? 0,
      decodedAt: entry?.decodedAt,
      usedAt: this.#clock.now(),
      inFlight: true,
    };
    created.outcome = created.outcome.then(
      (outcome) => {
        created.settled = outcome;
        created.settledAt = this.#clock.now();
        created.decodedAt = Date.now();
        created.inFlight = false;
        return outcome;
      },
      (err: unknown) => {
        // Not decoded at all (the sandbox was closed or could not start a thread).
        if (this.#entries.get(input.version) === created) this.#entries.delete(input.version);
        throw err;
      },
    );
    this.#entries.set(input.version, created);
    return created.outcome;
  };

  /**
   * The outcome if there is one now; otherwise (or when a transient failure is due to be
   * tried again) starts the decode, or joins the one running, and calls `wake` when it
   * settles. Never waits.
   */
  want(input: CertificateInput, wake: () => void): IdentityOutcome | undefined {
    const entry = this.#entries.get(input.version);
    if (entry === undefined || (entry.settled === undefined && !entry.inFlight) || this.#due(entry)) {
      this.decode(input).then(wake, wake);
    } else if (entry.inFlight) {
      // Another caller started this version's decode: this one waits for the same decode,
      // and must be woken by it too, or it would never look again.
      entry.outcome.then(wake, wake);
    }
    return this.peek(input);
  }

  /** The last outcome for this version, if a decode of it has finished. */
  peek = (input: CertificateInput): IdentityOutcome | undefined => {
    const entry = this.#entries.get(input.version);
    if (entry) entry.usedAt = this.#clock.now();
    return entry?.settled;
  };

  /** When the decode of this version settled, in wall-clock ms; undefined while none has. */
  decodedAt(input: CertificateInput): number | undefined {
    return this.#entries.get(input.version)?.decodedAt;
  }

  /** A settled transient failure old enough to try again. */
  #due(entry: Entry): boolean {
    return !entry.inFlight && isTransientOutcome(entry.settled) && this.#clock.now() - entry.settledAt >= this.#retryTransientMs;
  }

  sweep(now = this.#clock.now()): void {
    for (const [version, entry] of this.#entries) if (now - entry.usedAt > this.#idleMs) this.#entries.delete(version);
  }

  close(): void {
    clearInterval(this.#sweeper);
  }
}

export function isTransientOutcome(outcome: IdentityOutcome | undefined): boolean {
  return outcome !== undefined && !outcome.ok && 'transient' in outcome && outcome.transient === true;
}
