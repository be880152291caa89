import { createPrivateKey, type KeyObject } from 'node:crypto';
import { PfxMalformed } from '../api/v1alpha1/reasons.ts';
import { readAlgorithmIdentifier, readWhole, sequenceOf } from './der.ts';
import { PkiError } from './errors.ts';
import { unsupportedAlgorithm } from './pbe.ts';

// Key algorithms node:crypto reads from PKCS#8. A key that fails to parse with one of these
// is damaged; with any other OID it is a kind of key we do not support, and the message
// says which.
const parseableKeyAlgorithms: ReadonlySet<string> = new Set([
  '1.2.840.113549.1.1.1', // rsaEncryption
  '1.2.840.113549.1.1.10', // RSASSA-PSS
  '1.2.840.10045.2.1', // ecPublicKey
  '1.3.101.112', // Ed25519
  '1.3.101.113', // Ed448
  '1.2.840.10040.4.1', // DSA
]);

/** A PKCS#8 PrivateKeyInfo as a KeyObject; `what` names it in messages ("the private key in the PFX"). */
export function privateKeyFromPkcs8(der: Uint8Array, what: string): KeyObject {
  try {
    return createPrivateKey({ key: Buffer.from(der.buffer, der.byteOffset, der.length), format: 'der', type: 'pkcs8' });
  } catch {
    const oid = pkcs8AlgorithmOid(der);
    if (oid !== undefined && !parseableKeyAlgorithms.has(oid)) throw unsupportedAlgorithm(what, oid);
    throw new PkiError(PfxMalformed, `${what} is not a valid PKCS#8 private key`);
  }
}

function pkcs8AlgorithmOid(der: Uint8Array): string | undefined {
  try {
    // PrivateKeyInfo ::= SEQUENCE { version INTEGER, privateKeyAlgorithm AlgorithmIdentifier, privateKey OCTET STRING, ... }
    const [, algorithm] = sequenceOf(readWhole(der), 'PrivateKeyInfo');
    return readAlgorithmIdentifier(algorithm, 'private key algorithm').oid;
  } catch {
    return undefined;
  }
}

/** The PKCS#8 PEM a DecodedIdentity carries, whatever form the key came in. */
export function pkcs8Pem(key: KeyObject): string {
  return String(key.export({ type: 'pkcs8', format: 'pem' }));
}
