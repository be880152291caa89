import type { KeyObject, X509Certificate } from 'node:crypto';
import { KeyMismatch, NoCertificate, NoPrivateKey } from '../api/v1alpha1/reasons.ts';
import { certificateFacts, rfc4514Name, type CertificateFacts } from './certificate-facts.ts';
import { PkiError } from './errors.ts';
import { pkcs8Pem } from './private-key.ts';
import { Sensitive } from './sensitive.ts';

export interface CertificatePem {
  /** One CERTIFICATE block, with a trailing newline. */
  readonly pem: string;
}

/** What decodePfx and decodePem return: a client identity ready to present in a TLS handshake. */
export interface DecodedIdentity {
  /** The certificate whose public key belongs to privateKey. */
  readonly leaf: CertificatePem;
  /** The other certificates: the leaf's issuer first, then its issuer, and so on; certificates outside that chain last, in file order. */
  readonly chain: readonly CertificatePem[];
  /** PKCS#8 PEM. Prints as [redacted]; reveal() only where the key is handed to TLS. */
  readonly privateKey: Sensitive<string>;
  readonly facts: CertificateFacts;
}

export interface CertificateEntry {
  readonly certificate: X509Certificate;
  /** PKCS#12 localKeyId (hex), which pairs a certificate with its key when a file holds several. */
  readonly localKeyId?: string | undefined;
}

export interface PrivateKeyEntry {
  readonly key: KeyObject;
  readonly localKeyId?: string | undefined;
}

/**
 * Picks the leaf by key, not by position: files put the leaf first, last, or among several
 * keys (Java keystores). The first key with a matching certificate wins; among certificates
 * for the same key (a renewal kept the key), the one with the same localKeyId, then a non-CA
 * one, then the one that expires last.
 *
 * `source` names the input in messages: "the PFX", "the PEM pair".
 */
export function assembleIdentity(
  certificates: readonly CertificateEntry[],
  keys: readonly PrivateKeyEntry[],
  source: string,
): DecodedIdentity {
  if (certificates.length === 0) throw new PkiError(NoCertificate, `${source} holds ${keys.length > 0 ? 'a private key but ' : ''}no certificate`);
  if (keys.length === 0) throw new PkiError(NoPrivateKey, `${source} holds ${describeCount(certificates.length, 'certificate')} but no private key`);
  const unique = uniqueCertificates(certificates);

  for (const entry of keys) {
    const candidates = unique.filter(({ certificate }) => belongsTo(certificate, entry.key));
    const [leaf] = candidates.sort((a, b) => leafPreference(a, b, entry.localKeyId));
    if (leaf === undefined) continue;
    const chain = orderChain(
      leaf.certificate,
      unique.filter((other) => other !== leaf).map(({ certificate }) => certificate),
    );
    return {
      leaf: { pem: leaf.certificate.toString() },
      chain: chain.map((certificate) => ({ pem: certificate.toString() })),
      privateKey: new Sensitive(pkcs8Pem(entry.key)),
      facts: certificateFacts(leaf.certificate, chain.length + 1),
    };
  }
  // Names are public and say which file this really is; a CA bundle is cut short.
  const shown = unique.slice(0, 5).map(({ certificate }) => `"${rfc4514Name(certificate.subject)}"`);
  const subjects = unique.length > shown.length ? `${shown.join(', ')} and ${unique.length - shown.length} more` : shown.join(', ');
  throw new PkiError(
    KeyMismatch,
    `no certificate in ${source} belongs to its private key (${describeKey(keys[0]!.key)}); certificates found: ${subjects}`,
  );
}

function belongsTo(certificate: X509Certificate, key: KeyObject): boolean {
  try {
    return certificate.checkPrivateKey(key);
  } catch {
    return false; // different key types: not a match
  }
}

function leafPreference(a: CertificateEntry, b: CertificateEntry, localKeyId: string | undefined): number {
  const byKeyId = Number(b.localKeyId === localKeyId && localKeyId !== undefined) - Number(a.localKeyId === localKeyId && localKeyId !== undefined);
  if (byKeyId !== 0) return byKeyId;
  const byCa = Number(a.certificate.ca) - Number(b.certificate.ca);
  if (byCa !== 0) return byCa;
  return b.certificate.validToDate.getTime() - a.certificate.validToDate.getTime();
}

/** Drops repeated certificates (some writers add the leaf twice, or the CA once per chain). */
function uniqueCertificates(certificates: readonly CertificateEntry[]): CertificateEntry[] {
  const seen = new Set<string>();
  return certificates.filter(({ certificate }) => {
    if (seen.has(certificate.fingerprint256)) return false;
    seen.add(certificate.fingerprint256);
    return true;
  });
}

/**
 * Follows issuer links from the leaf (X509_check_issued: issuer name, and key identifiers
 * when present) until a self-issued certificate or a missing link; whatever is not on that
 * path follows in its original order, so nothing the file held is dropped.
 */
export function orderChain(leaf: X509Certificate, others: readonly X509Certificate[]): X509Certificate[] {
  const remaining = [...others];
  const path: X509Certificate[] = [];
  let current = leaf;
  while (!current.checkIssued(current)) {
    const index = remaining.findIndex((candidate) => current.checkIssued(candidate));
    if (index === -1) break;
    current = remaining.splice(index, 1)[0]!;
    path.push(current);
  }
  return [...path, ...remaining];
}

/** The leaf and its chain as one PEM text, leaf first: what a TLS client presents. */
export function certificateChainPem(identity: Pick<DecodedIdentity, 'leaf' | 'chain'>): string {
  return [identity.leaf, ...identity.chain].map(({ pem }) => (pem.endsWith('\n') ? pem : `${pem}\n`)).join('');
}

function describeKey(key: KeyObject): string {
  const details = key.asymmetricKeyDetails;
  if (details?.modulusLength !== undefined) return `${key.asymmetricKeyType?.toUpperCase()} ${details.modulusLength}`;
  if (details?.namedCurve !== undefined) return `EC ${details.namedCurve}`;
  return key.asymmetricKeyType ?? 'unknown type';
}

function describeCount(count: number, noun: string): string {
  return count === 1 ? `1 ${noun}` : `${count} ${noun}s`;
}
