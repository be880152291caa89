import type { CertificateInput } from '../model/certificate-input.ts';
import type { IdentityOutcome, RouteIdentityDecoder } from '../model/egress-routes.ts';

/**
 * Decoded identities by input version (Secret uid@resourceVersion per key), shared by the
 * status controller and the proxy-config controller: a PFX is decoded once per rotation,
 * however many bindings or controllers read it, and a resync decodes nothing. Entries
 * unused for `idleMs` are dropped, so rotated-away versions do not accumulate.
 */
export class IdentityCache {
  readonly #decode: RouteIdentityDecoder;
  readonly #idleMs: number;
  readonly #entries = new Map<string, { outcome: Promise<IdentityOutcome>; usedAt: number }>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(decode: RouteIdentityDecoder, options: { idleMs?: number } = {}) {
    this.#decode = decode;
    this.#idleMs = options.idleMs ?? 10 * 60 * 1000;
    this.#sweeper = setInterval(() => this.sweep(), Math.min(this.#idleMs, 60_000));
    this.#sweeper.unref();
  }

  get size(): number {
    return this.#entries.size;
  }

  decode: RouteIdentityDecoder = (input: CertificateInput) => {
    const entry = this.#entries.get(input.version);
    if (entry) {
      entry.usedAt = Date.now();
      return entry.outcome;
    }
    const outcome = this.#decode(input);
    this.#entries.set(input.version, { outcome, usedAt: Date.now() });
    return outcome;
  };

  sweep(now = Date.now()): void {
    for (const [version, entry] of this.#entries) if (now - entry.usedAt > this.#idleMs) this.#entries.delete(version);
  }

  close(): void {
    clearInterval(this.#sweeper);
  }
}
