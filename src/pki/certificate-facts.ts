import type { KeyObject, X509Certificate } from 'node:crypto';
import { PfxMalformed, UnsupportedAlgorithm } from '../api/v1alpha1/reasons.ts';
import { DerError, childrenOf, contentOf, readOctetString, readOid, readWhole, sequenceOf } from './der.ts';
import { PkiError } from './errors.ts';

export type KeyAlgorithm = 'RSA' | 'RSA-PSS' | 'ECDSA' | 'Ed25519' | 'Ed448' | 'DSA';

/** What an operator wants to know about a certificate. Plain data: safe to log and serialise. */
export interface CertificateFacts {
  /** RFC 4514 order (most specific first), e.g. "CN=client,O=Acme"; special characters escaped as RFC 4514 says. */
  readonly subject: string;
  readonly issuer: string;
  /** Lowercase hex without colons or leading zeros ("0" for zero). */
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Uppercase hex pairs joined by colons, as `openssl x509 -fingerprint -sha256` prints it. */
  readonly fingerprintSha256: string;
  readonly dnsNames: string[];
  readonly uris: string[];
  readonly keyAlgorithm: KeyAlgorithm;
  /** Bits: the modulus for RSA and DSA, the curve's field size for ECDSA, 256 for Ed25519, 456 for Ed448. */
  readonly keySize: number;
  /** For ECDSA: the NIST name where there is one (P-256, P-384, P-521), else OpenSSL's curve name. */
  readonly curve?: string;
  /** The leaf plus the chain that came with it. */
  readonly chainLength: number;
}

/** The facts a binding's status and the proxy routes carry: all but the URIs, which no TLS client checks. */
export type IdentityFacts = Omit<CertificateFacts, 'uris' | 'keyAlgorithm'> & { readonly keyAlgorithm: string };

export function certificateFacts(certificate: X509Certificate, chainLength: number): CertificateFacts {
  const { dnsNames, uris } = subjectAltNames(certificate.raw);
  return {
    subject: rfc4514Name(certificate.subject),
    issuer: rfc4514Name(certificate.issuer),
    serialNumber: certificate.serialNumber.toLowerCase().replace(/^0+(?=.)/, ''),
    notBefore: certificate.validFromDate,
    notAfter: certificate.validToDate,
    fingerprintSha256: certificate.fingerprint256,
    dnsNames,
    uris,
    ...keyFacts(certificate.publicKey),
    chainLength,
  };
}

/**
 * Node prints a name one RDN per line in encoding order (root-most first), values already
 * escaped per RFC 2253, multi-valued RDNs joined by " + ". RFC 4514 wants the reverse order,
 * joined by commas. An unescaped " + " can only be the RDN separator, since a "+" inside a
 * value is escaped; newlines inside values are escaped too, so splitting on them is safe.
 */
export function rfc4514Name(nodeName: string): string {
  if (nodeName === '') return '';
  return nodeName
    .split('\n')
    .reverse()
    .map((rdn) => rdn.replaceAll(' + ', '+'))
    .join(',');
}

const nistCurves: Readonly<Record<string, { name: string; bits: number }>> = {
  prime256v1: { name: 'P-256', bits: 256 },
  secp384r1: { name: 'P-384', bits: 384 },
  secp521r1: { name: 'P-521', bits: 521 },
};

function keyFacts(key: KeyObject): Pick<CertificateFacts, 'keyAlgorithm' | 'keySize' | 'curve'> {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return { keyAlgorithm: 'RSA', keySize: details.modulusLength ?? 0 };
    case 'rsa-pss':
      return { keyAlgorithm: 'RSA-PSS', keySize: details.modulusLength ?? 0 };
    case 'dsa':
      return { keyAlgorithm: 'DSA', keySize: details.modulusLength ?? 0 };
    case 'ed25519':
      return { keyAlgorithm: 'Ed25519', keySize: 256 };
    case 'ed448':
      return { keyAlgorithm: 'Ed448', keySize: 456 };
    case 'ec': {
      const curve = details.namedCurve ?? 'unknown';
      const nist = nistCurves[curve];
      // Other curves (brainpoolP256r1, secp256k1, ...) carry their size in their name.
      return { keyAlgorithm: 'ECDSA', keySize: nist?.bits ?? Number(/\d+/.exec(curve)?.[0] ?? 0), curve: nist?.name ?? curve };
    }
    default:
      throw new PkiError(UnsupportedAlgorithm, `the certificate's key type ${key.asymmetricKeyType ?? 'unknown'} is not supported`);
  }
}

const SUBJECT_ALT_NAME = '2.5.29.17';
const DNS_NAME = 0x82; // [2] IMPLICIT IA5String
const URI = 0x86; // [6] IMPLICIT IA5String

/** DNS and URI names, read from the DER: node's subjectAltName string quotes and escapes values, the DER does not. */
function subjectAltNames(certificateDer: Uint8Array): { dnsNames: string[]; uris: string[] } {
  const dnsNames: string[] = [];
  const uris: string[] = [];
  try {
    // Certificate ::= SEQUENCE { tbsCertificate, ... }; the extensions are tbsCertificate's [3].
    const [tbsCertificate] = sequenceOf(readWhole(certificateDer), 'certificate');
    const extensionsField = sequenceOf(tbsCertificate, 'tbsCertificate').find((field) => field.tag === 0xa3);
    if (extensionsField === undefined) return { dnsNames, uris };
    const [extensions] = childrenOf(extensionsField);
    for (const extension of sequenceOf(extensions, 'extensions')) {
      // Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
      const fields = sequenceOf(extension, 'extension');
      if (readOid(fields[0], 'extension id') !== SUBJECT_ALT_NAME) continue;
      const value = readOctetString(fields.at(-1), 'subjectAltName');
      for (const name of sequenceOf(readWhole(value), 'GeneralNames')) {
        if (name.tag === DNS_NAME) dnsNames.push(Buffer.from(contentOf(name)).toString('latin1'));
        else if (name.tag === URI) uris.push(Buffer.from(contentOf(name)).toString('latin1'));
      }
    }
  } catch (error) {
    if (!(error instanceof DerError)) throw error;
    throw new PkiError(PfxMalformed, `the certificate's subjectAltName extension is malformed: ${error.message}`);
  }
  return { dnsNames, uris };
}
