// The identity core's public surface: what controllers, the proxy renderer and the CLI use.
// They decode through decodeIdentity (the sandbox); decodePfx and decodePem are the pure
// functions its workers run, exported for tests.
export { decodePfx } from './pfx.ts';
export { decodePem } from './pem.ts';
export { pfxBytesFromSecretValue } from './secret-value.ts';
export { certificateValidity, evaluateValidity, nextValidityChange, type Validity, type ValidityWindow } from './validity.ts';
export { rfc3339 } from '../api/time.ts';
export { certificateChainPem, type CertificatePem, type DecodedIdentity } from './identity.ts';
export { rfc4514Name, type CertificateFacts, type KeyAlgorithm } from './certificate-facts.ts';
export { PkiError, isPkiError, pkiErrorCodes, type PkiErrorCode } from './errors.ts';
export type { PasswordInput } from './password.ts';
export { Sensitive } from './sensitive.ts';
export { decodeIdentity, closeDecodeSandbox, DecodePool, DecoderUnavailable, defaultPoolSize } from './sandbox/decode-pool.ts';
export type { DecodeCallOptions, DecodePoolOptions, DecodePoolStats, DecodeRequest } from './sandbox/decode-pool.ts';
export { defaultDecodeLimits, type BudgetUse, type DecodeLimits } from './budget.ts';
export type { DecodeOptions } from './pfx.ts';
