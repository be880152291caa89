import { createHmac, timingSafeEqual } from 'node:crypto';
import {
  DerError,
  readAlgorithmIdentifier,
  readOctetString,
  readSmallInteger,
  sequenceOf,
  type AlgorithmIdentifier,
  type DerElement,
} from './der.ts';
import { digestsByOid, hmacDigestsByOid, type Digest } from './digests.ts';
import type { PasswordForm } from './password.ts';
import { checkIterations, pbkdf2Key, readPbkdf2Parameters, unsupportedAlgorithm } from './pbe.ts';
import { Pkcs12Purpose, pkcs12Kdf } from './pkcs12-kdf.ts';

// The PFX integrity check. A MAC that verifies proves the password right; one that does not
// proves it wrong (or the file altered). That is how PasswordIncorrect is told apart from a
// damaged file, and why the MAC is checked before anything is decrypted.

const PBMAC1 = '1.2.840.113549.1.5.14';

/** Whether the MAC verifies with one form of the password. */
export type MacCheck = (password: PasswordForm) => Promise<boolean>;

/**
 * Reads MacData and returns its check over `content` (the AuthenticatedSafe bytes). Throws
 * for an unsupported algorithm now, before any password work.
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
  if (expected.length !== digest.outputLength) throw new DerError(`MAC of ${expected.length} bytes for ${digest.name}`);
  const macSalt = readOctetString(salt, 'MAC salt');
  const macIterations = iterations === undefined ? 1 : checkIterations(readSmallInteger(iterations, 'MAC iterations'), 'the MAC');
  return async (password) => {
    const key = await pkcs12Kdf({
      digest,
      password: password.pkcs12,
      salt: macSalt,
      purpose: Pkcs12Purpose.Mac,
      iterations: macIterations,
      length: digest.outputLength,
    });
    return hmacEquals(digest, key, content, expected);
  };
}

/** RFC 9579 (OpenSSL 3.4+ `-pbmac1_pbkdf2`, and FIPS-minded writers): HMAC keyed by PBKDF2 of the UTF-8 password. */
function pbmac1Check(algorithm: AlgorithmIdentifier, expected: Uint8Array, content: Uint8Array): MacCheck {
  // PBMAC1-params ::= SEQUENCE { keyDerivationFunc AlgorithmIdentifier, messageAuthScheme AlgorithmIdentifier }
  const [kdfField, schemeField] = sequenceOf(algorithm.parameters, 'PBMAC1 parameters');
  const kdf = readAlgorithmIdentifier(kdfField, 'PBMAC1 key derivation');
  const scheme = readAlgorithmIdentifier(schemeField, 'PBMAC1 message authentication');
  if (kdf.oid !== '1.2.840.113549.1.5.12') throw unsupportedAlgorithm('the key derivation for the MAC', kdf.oid);
  const digest = hmacDigestsByOid.get(scheme.oid);
  if (digest === undefined) throw unsupportedAlgorithm('the MAC (PBMAC1)', scheme.oid);
  const parameters = readPbkdf2Parameters(kdf.parameters, 'the MAC');
  // RFC 9579 makes keyLength mandatory; the HMAC's output length is the only sane default.
  const keyLength = parameters.keyLength ?? digest.outputLength;
  return async (password) => hmacEquals(digest, await pbkdf2Key(parameters, password.utf8, keyLength), content, expected);
}

function hmacEquals(digest: Digest, key: Uint8Array, content: Uint8Array, expected: Uint8Array): boolean {
  const actual = createHmac(digest.name, key).update(content).digest();
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
