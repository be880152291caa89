import { createHmac, timingSafeEqual } from 'node:crypto';
import { PfxMalformed, UnsupportedAlgorithm } from '../api/v1alpha1/reasons.ts';
import { kdfCost, type KdfCost } from './budget.ts';
import { DerError, readAlgorithmIdentifier, readOctetString, readSmallInteger, sequenceOf, type AlgorithmIdentifier, type DerElement } from './der.ts';
import { digestsByOid, hmacDigestsByOid, type Digest } from './digests.ts';
import { PkiError } from './errors.ts';
import type { PasswordKind } from './password.ts';
import { checkIterations, pbkdf2Cost, pbkdf2Key, readPbkdf2Parameters, unsupportedAlgorithm } from './pbe.ts';
import { Pkcs12Purpose, pkcs12Kdf } from './pkcs12-kdf.ts';

// The PFX integrity check. A MAC that verifies proves the password right; one that does not
// proves it wrong (or the file altered). That is how PasswordIncorrect is told apart from a
// damaged file, and why the MAC is verified before anything is decrypted: until it is,
// nothing the file asks to decrypt has been shown to come from the password's holder.

const PBMAC1 = '1.2.840.113549.1.5.14';
const PBKDF2 = '1.2.840.113549.1.5.12';

/**
 * RFC 9579 recommends refusing PBMAC1 keys shorter than 20 bytes, as go-pkcs12
 * does: with a 1-byte key, one password in 256 verifies any MAC (OpenSSL CVE-2026-34181).
 */
export const MIN_PBMAC1_KEY_LENGTH = 20;

export interface MacCheck {
  /** Which encoding of the password the MAC key derivation takes. */
  readonly passwordKind: PasswordKind;
  /** What one attempt costs: charge it before calling verify. */
  readonly cost: KdfCost;
  /** Whether the MAC verifies with one encoding of the password. */
  verify(password: Uint8Array): boolean;
}

/**
 * Reads MacData and returns its check over `content` (the AuthenticatedSafe bytes). Throws
 * for an unsupported algorithm or parameters now, before any password work.
 */
export function pfxMacCheck(macData: DerElement, content: Uint8Array): MacCheck {
  // MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER DEFAULT 1 }
  // DigestInfo ::= SEQUENCE { digestAlgorithm AlgorithmIdentifier, digest OCTET STRING }
  const [digestInfo, salt, iterations] = sequenceOf(macData, 'MacData');
  const [algorithmField, digestField] = sequenceOf(digestInfo, 'MAC DigestInfo');
  const algorithm = readAlgorithmIdentifier(algorithmField, 'MAC');
  const expected = readOctetString(digestField, 'MAC digest');
  if (algorithm.oid === PBMAC1) return pbmac1Check(algorithm, expected, content);

  const digest = digestsByOid.get(algorithm.oid);
  if (digest === undefined) throw unsupportedAlgorithm('the MAC', algorithm.oid);
  if (expected.length !== digest.outputLength) throw new DerError('MAC digest: the wrong length for its algorithm');
  const macSalt = readOctetString(salt, 'MAC salt');
  const macIterations = iterations === undefined ? 1 : checkIterations(readSmallInteger(iterations, 'MAC iterations'), 'the MAC');
  return {
    passwordKind: 'pkcs12',
    cost: kdfCost(macIterations, digest.outputLength, digest.outputLength),
    verify: (password) => {
      const key = pkcs12Kdf({ digest, password, salt: macSalt, purpose: Pkcs12Purpose.Mac, iterations: macIterations, length: digest.outputLength });
      return hmacEquals(digest, key, content, expected);
    },
  };
}

/** RFC 9579 (OpenSSL 3.4+ `-pbmac1_pbkdf2`, and FIPS-minded writers): HMAC keyed by PBKDF2 of the password's bytes. */
function pbmac1Check(algorithm: AlgorithmIdentifier, expected: Uint8Array, content: Uint8Array): MacCheck {
  // PBMAC1-params ::= SEQUENCE { keyDerivationFunc AlgorithmIdentifier, messageAuthScheme AlgorithmIdentifier }
  const [kdfField, schemeField] = sequenceOf(algorithm.parameters, 'PBMAC1 parameters');
  const kdf = readAlgorithmIdentifier(kdfField, 'PBMAC1 key derivation');
  const scheme = readAlgorithmIdentifier(schemeField, 'PBMAC1 message authentication');
  if (kdf.oid !== PBKDF2) throw unsupportedAlgorithm('the key derivation for the MAC', kdf.oid);
  const digest = hmacDigestsByOid.get(scheme.oid);
  if (digest === undefined) throw unsupportedAlgorithm('the MAC (PBMAC1)', scheme.oid);
  const parameters = readPbkdf2Parameters(kdf.parameters, 'the MAC');
  // RFC 9579 makes keyLength mandatory (its test vector A.6 leaves it out, and
  // must be refused); a key longer than the HMAC's output adds nothing, and would let a
  // small file ask PBKDF2 for gigabytes.
  const keyLength = parameters.keyLength;
  if (keyLength === undefined) throw new PkiError(PfxMalformed, 'the PBMAC1 MAC leaves out the PBKDF2 key length, which RFC 9579 requires');
  if (keyLength < MIN_PBMAC1_KEY_LENGTH) {
    throw new PkiError(
      UnsupportedAlgorithm,
      `the PBMAC1 MAC uses a key shorter than ${MIN_PBMAC1_KEY_LENGTH} bytes, which RFC 9579 says to refuse: such a MAC lets wrong passwords through`,
    );
  }
  if (keyLength > digest.outputLength)
    throw new PkiError(PfxMalformed, "the PBMAC1 MAC states a key longer than its HMAC's output (writers use the output's length)");
  if (expected.length !== digest.outputLength) throw new DerError('MAC digest: the wrong length for its algorithm');
  return {
    passwordKind: 'pbkdf2',
    cost: pbkdf2Cost(parameters, keyLength),
    verify: (password) => hmacEquals(digest, pbkdf2Key(parameters, password, keyLength), content, expected),
  };
}

function hmacEquals(digest: Digest, key: Uint8Array, content: Uint8Array, expected: Uint8Array): boolean {
  const actual = createHmac(digest.name, key).update(content).digest();
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
