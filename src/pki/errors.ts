import {
  CertificateExpired,
  CertificateNotYetValid,
  DecodeBudgetExceeded,
  KeyMismatch,
  NoCertificate,
  NoPrivateKey,
  PasswordIncorrect,
  PfxMalformed,
  UnsupportedAlgorithm,
  type IdentityReason,
  type Problem,
} from '../api/v1alpha1/reasons.ts';
import { CodedError, isCodedError } from '../errors.ts';

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
  [DecodeBudgetExceeded]: 'ERR_PFX_DECODE_BUDGET_EXCEEDED',
} as const satisfies Record<IdentityReason, string>;

export type PkiErrorCode = (typeof pkiErrorCodes)[IdentityReason];

/**
 * The longest message a PkiError carries. Messages become condition messages, Events and
 * log lines; the parts that come from a file (subjects, OIDs) are short in real files, and
 * this keeps a hostile one from making them long.
 */
export const MAX_MESSAGE_LENGTH = 1024;

/**
 * Every failure of the identity core. The message is for humans and never contains the
 * password, key material or input bytes; no underlying error is attached as `cause`,
 * because library errors can quote the data they failed on.
 *
 * A wrong password is terminal for a controller: retrying cannot help until the Secret
 * changes. So is every other reason here, with one exception the sandbox marks: a decode
 * stopped by the wall clock, which a busy machine can cause for a file within budget.
 */
export class PkiError extends CodedError<PkiErrorCode> implements Problem {
  readonly reason: IdentityReason;
  readonly #transient: boolean;

  constructor(reason: IdentityReason, message: string, options: { transient?: boolean } = {}) {
    super(pkiErrorCodes[reason], message.length > MAX_MESSAGE_LENGTH ? `${message.slice(0, MAX_MESSAGE_LENGTH - 1)}…` : message);
    this.reason = reason;
    this.#transient = options.transient ?? false;
  }

  override get transient(): boolean {
    return this.#transient;
  }
}

export function isPkiError(value: unknown): value is PkiError {
  return value instanceof PkiError;
}

/**
 * What leaves the identity core: always a PkiError. DER errors become PfxMalformed with
 * `malformed` wording; a RangeError (a stack or allocation limit) becomes
 * DecodeBudgetExceeded; anything else a fixed PfxMalformed message, since a library's own
 * message may quote the data it failed on.
 */
export function asPkiError(error: unknown, source: string, malformed: (message: string) => string): PkiError {
  if (error instanceof PkiError) return error;
  if (isCodedError(error, 'ERR_DER')) return new PkiError(PfxMalformed, malformed(error.message));
  if (error instanceof RangeError) return new PkiError(DecodeBudgetExceeded, `decoding ${source} ran into a stack or memory limit`);
  return new PkiError(PfxMalformed, `${source} could not be decoded`);
}
