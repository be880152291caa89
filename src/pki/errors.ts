import {
  CertificateExpired,
  CertificateNotYetValid,
  KeyMismatch,
  NoCertificate,
  NoPrivateKey,
  PasswordIncorrect,
  PfxMalformed,
  UnsupportedAlgorithm,
  type IdentityReason,
  type Problem,
} from '../api/v1alpha1/reasons.ts';
import { CodedError } from '../errors.ts';

/**
 * One stable code per reason, in the style of Node's own `ERR_*` codes. Callers branch on
 * `reason` (it is API: conditions, alerts and runbooks match on it) or on `code`, never on
 * the message. PEM input reuses the same codes, as reasons.ts reuses the same reasons.
 */
export const pkiErrorCodes = {
  [PasswordIncorrect]: 'ERR_PFX_PASSWORD_INCORRECT',
  [PfxMalformed]: 'ERR_PFX_MALFORMED',
  [UnsupportedAlgorithm]: 'ERR_PFX_UNSUPPORTED_ALGORITHM',
  [NoCertificate]: 'ERR_PFX_NO_CERTIFICATE',
  [NoPrivateKey]: 'ERR_PFX_NO_PRIVATE_KEY',
  [KeyMismatch]: 'ERR_PFX_KEY_MISMATCH',
  [CertificateExpired]: 'ERR_CERTIFICATE_EXPIRED',
  [CertificateNotYetValid]: 'ERR_CERTIFICATE_NOT_YET_VALID',
} as const satisfies Record<IdentityReason, string>;

export type PkiErrorCode = (typeof pkiErrorCodes)[IdentityReason];

/**
 * Every failure of the identity core. The message is for humans and never contains the
 * password, key material or input bytes; no underlying error is attached as `cause`,
 * because library errors can quote the data they failed on.
 *
 * A wrong password is terminal for a controller: retrying cannot help until the Secret
 * changes. So is every other reason here; none of them is transient.
 */
export class PkiError extends CodedError<PkiErrorCode> implements Problem {
  readonly reason: IdentityReason;

  constructor(reason: IdentityReason, message: string) {
    super(pkiErrorCodes[reason], message);
    this.reason = reason;
  }
}

export function isPkiError(value: unknown): value is PkiError {
  return value instanceof PkiError;
}
