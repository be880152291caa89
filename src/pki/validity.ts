import { CertificateExpired, CertificateNotYetValid } from '../api/v1alpha1/reasons.ts';
import type { CertificateFacts } from './certificate-facts.ts';
import type { IdentityViolation } from './errors.ts';

/**
 * Judges the leaf's validity window at `now`, a check separate from decoding so that an
 * expired certificate still decodes (and can be shown). Both ends are inclusive, as X.509
 * says. Pure: the clock is an argument, so tests and `inspect --now` can move it.
 *
 * Returns undefined when the certificate is valid at `now`.
 */
export function evaluateValidity(
  facts: Pick<CertificateFacts, 'notBefore' | 'notAfter'>,
  now: Date,
): IdentityViolation | undefined {
  if (now.getTime() > facts.notAfter.getTime()) {
    return { reason: CertificateExpired, message: `the certificate expired at ${rfc3339(facts.notAfter)} (now is ${rfc3339(now)})` };
  }
  if (now.getTime() < facts.notBefore.getTime()) {
    return {
      reason: CertificateNotYetValid,
      message: `the certificate is not valid before ${rfc3339(facts.notBefore)} (now is ${rfc3339(now)})`,
    };
  }
  return undefined;
}

/** RFC 3339 in UTC, without the milliseconds X.509 times never have: "2026-01-31T12:00:00Z". */
export function rfc3339(date: Date): string {
  const iso = date.toISOString();
  return iso.endsWith('.000Z') ? `${iso.slice(0, -5)}Z` : iso;
}
