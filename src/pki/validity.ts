import { rfc3339 } from '../api/time.ts';
import { CertificateExpired, CertificateExpiringSoon, CertificateNotYetValid, CertificateReady, type Problem } from '../api/v1alpha1/reasons.ts';
import type { CertificateFacts } from './certificate-facts.ts';

// The one judge of a certificate's validity window. Status, `inspect`, `render` and
// `validate` all ask it, so a certificate is never valid on one surface and expired on
// another. Pure: the clock is an argument, so tests and `inspect --now` can move it.

export type ValidityWindow = Pick<CertificateFacts, 'notBefore' | 'notAfter'>;

export interface Validity {
  /** CertificateReady, CertificateExpiringSoon, CertificateExpired or CertificateNotYetValid. */
  readonly reason: typeof CertificateReady | typeof CertificateExpiringSoon | typeof CertificateExpired | typeof CertificateNotYetValid;
  /** Whether the certificate may be presented now: an expiring one may, an expired or not yet valid one may not. */
  readonly usable: boolean;
}

/**
 * The verdict at `now`. The window runs from notBefore through notAfter, both inclusive,
 * as RFC 5280 4.1.2.5 says; it is expiring soon from `notAfter − expiryWarningMs` on.
 */
export function certificateValidity(facts: ValidityWindow, now: Date, expiryWarningMs = 0): Validity {
  const t = now.getTime();
  if (t < facts.notBefore.getTime()) return { reason: CertificateNotYetValid, usable: false };
  if (t > facts.notAfter.getTime()) return { reason: CertificateExpired, usable: false };
  if (t >= facts.notAfter.getTime() - expiryWarningMs) return { reason: CertificateExpiringSoon, usable: true };
  return { reason: CertificateReady, usable: true };
}

/** The next instant after `now` at which time alone changes the verdict, if any. */
export function nextValidityChange(facts: ValidityWindow, now: Date, expiryWarningMs = 0): Date | undefined {
  const t = now.getTime();
  // The first moment of each state: valid at notBefore, expiring at notAfter − warning,
  // expired one millisecond after notAfter (inclusive end).
  const thresholds = [facts.notBefore.getTime(), facts.notAfter.getTime() - expiryWarningMs, facts.notAfter.getTime() + 1];
  const next = thresholds.filter((threshold) => threshold > t).sort((a, b) => a - b)[0];
  return next === undefined ? undefined : new Date(next);
}

/**
 * Why the certificate cannot be used at `now`, for a file on a workstation (`inspect`):
 * the message names the boundary and the time judged. Undefined when it is usable.
 */
export function evaluateValidity(facts: ValidityWindow, now: Date): Problem | undefined {
  const { reason, usable } = certificateValidity(facts, now);
  if (usable) return undefined;
  if (reason === CertificateExpired) {
    return { reason, message: `the certificate expired at ${rfc3339(facts.notAfter)} (now is ${rfc3339(now)})` };
  }
  return { reason, message: `the certificate is not valid before ${rfc3339(facts.notBefore)} (now is ${rfc3339(now)})` };
}
