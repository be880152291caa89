import type { CertificateInput } from '../model/certificate-input.ts';
import type { IdentityOutcome } from '../model/egress-routes.ts';

/** Turns Secret bytes into an identity or a stable reason; never rejects for bad input. */
export type IdentityDecoder = (input: CertificateInput) => Promise<IdentityOutcome>;

/**
 * Decoded identities by input version (Secret uid@resourceVersion per key), shared by the
 * status controller and the proxy-config controller: a PFX is decoded once per rotation,
 * however many bindings or controllers read it, and a resync decodes nothing. Entries
 * unused for `idleMs` are dropped, so rotated-away versions do not accumulate.
 */
export class IdentityCache {
  readonly #decode: IdentityDecoder;
  readonly #idleMs: number;
  readonly #entries = new Map<string, { outcome: Promise<IdentityOutcome>; settled: IdentityOutcome | undefined; usedAt: number }>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(decode: IdentityDecoder, options: { idleMs?: number } = {}) {
    this.#decode = decode;
    this.#idleMs = options.idleMs ?? 10 * 60 * 1000;
    this.#sweeper = setInterval(() => this.sweep(), Math.min(this.#idleMs, 60_000));
    this.#sweeper.unref();
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The outcome for this input version, decoding it the first time it is asked for. */
  decode = (input: CertificateInput): Promise<IdentityOutcome> => {
    const entry = this.#entries.get(input.version);
    // A failure that is not a verdict on the file (the sandbox ran out of time on a busy
    // machine) is not remembered for the version: the next caller decodes again.
    if (entry && !isTransientOutcome(entry.settled)) {
      entry.usedAt = Date.now();
      return entry.outcome;
    }
    const created = { outcome: this.#decode(input), settled: undefined as IdentityOutcome | undefined, usedAt: Date.now() };
    created.outcome = created.outcome.then(
      (outcome) => (created.settled = outcome),
      (err: unknown) => {
        // Not decoded at all (the sandbox was closed or could not start a thread).
        if (this.#entries.get(input.version) === created) this.#entries.delete(input.version);
        throw err;
      },
    );
    this.#entries.set(input.version, created);
    return created.outcome;
  };

  /** The outcome if the decode has finished; what a translation reads after awaiting decode(). */
  peek = (input: CertificateInput): IdentityOutcome | undefined => {
    const entry = this.#entries.get(input.version);
    if (entry) entry.usedAt = Date.now();
    return entry?.settled;
  };

  sweep(now = Date.now()): void {
    for (const [version, entry] of this.#entries) if (now - entry.usedAt > this.#idleMs) this.#entries.delete(version);
  }

  close(): void {
    clearInterval(this.#sweeper);
  }
}

export function isTransientOutcome(outcome: IdentityOutcome | undefined): boolean {
  return outcome !== undefined && !outcome.ok && 'transient' in outcome && outcome.transient === true;
}
