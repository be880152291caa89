import { createPublicKey, type KeyObject, type X509Certificate } from 'node:crypto';
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
  /**
   * The certificates that chain the leaf towards a root: its issuer first, then that one's
   * issuer, and so on, as far as the file has them. Nothing else: a file holding several
   * identities (a Java keystore) must not make the proxy present another identity's
   * certificate to the partner.
   */
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
 * Linear in the number of certificates and keys: certificates are indexed by their public
 * key, so a key finds its certificates in one lookup rather than trying each one.
 *
 * `source` names the input in messages: "the PFX", "the PEM pair".
 */
export function assembleIdentity(certificates: readonly CertificateEntry[], keys: readonly PrivateKeyEntry[], source: string): DecodedIdentity {
  if (certificates.length === 0) throw new PkiError(NoCertificate, `${source} holds ${keys.length > 0 ? 'a private key but ' : ''}no certificate`);
  if (keys.length === 0) throw new PkiError(NoPrivateKey, `${source} holds ${describeCount(certificates.length, 'certificate')} but no private key`);
  const unique = uniqueCertificates(certificates);
  const byPublicKey = new Map<string, CertificateEntry[]>();
  for (const entry of unique) {
    const id = publicKeyId(entry.certificate.publicKey);
    if (id !== undefined) pushTo(byPublicKey, id, entry);
  }

  for (const entry of keys) {
    const candidates = certificatesFor(entry.key, byPublicKey, unique);
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
  // Names are public and say which file this really is; a CA bundle is cut short, and so is a long name.
  const shown = unique.slice(0, 5).map(({ certificate }) => `"${shortened(rfc4514Name(certificate.subject), 100)}"`);
  const subjects = unique.length > shown.length ? `${shown.join(', ')} and ${unique.length - shown.length} more` : shown.join(', ');
  throw new PkiError(KeyMismatch, `no certificate in ${source} belongs to its private key (${describeKey(keys[0]!.key)}); certificates found: ${subjects}`);
}

/**
 * A public key's identity, the same whether it comes from a certificate or is derived from
 * the private key: the JWK members that define it (n and e; crv, x and y), which do not
 * depend on how the key was encoded, or else the SPKI DER (DSA, RSA-PSS).
 */
function publicKeyId(key: KeyObject): string | undefined {
  try {
    const jwk = key.export({ format: 'jwk' });
    return [jwk.kty, jwk.crv, jwk.n, jwk.e, jwk.x, jwk.y].join(':');
  } catch {
    try {
      return `spki:${key.export({ type: 'spki', format: 'der' }).toString('base64')}`;
    } catch {
      return undefined;
    }
  }
}

// Keys whose public key has no identity that a certificate shares (an unusual encoding on
// one side) fall back to OpenSSL's own check, certificate by certificate; this caps how
// many such checks one decode runs, so the fallback cannot make matching quadratic again.
const MAX_FALLBACK_CHECKS = 256;

function certificatesFor(key: KeyObject, byPublicKey: ReadonlyMap<string, CertificateEntry[]>, unique: readonly CertificateEntry[]): CertificateEntry[] {
  let id: string | undefined;
  try {
    id = publicKeyId(createPublicKey(key));
  } catch {
    id = undefined;
  }
  const matched = id === undefined ? undefined : byPublicKey.get(id);
  if (matched !== undefined) return [...matched];
  return unique.slice(0, MAX_FALLBACK_CHECKS).filter(({ certificate }) => belongsTo(certificate, key));
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

/** Names compared as OpenSSL compares them, near enough to index by: case and runs of spaces do not count. */
function nameKey(name: string): string {
  return name.toLowerCase().replace(/\s+/g, ' ');
}

/**
 * The chain the leaf presents: follows issuer links from the leaf (X509_check_issued:
 * issuer name, and key identifiers when present) until a self-issued certificate or a
 * missing link. Certificates not on that path are left out: they may belong to another
 * identity in the same file.
 *
 * Candidates are found by subject name, so each step looks at the few certificates with
 * that name rather than all of them.
 */
export function orderChain(leaf: X509Certificate, others: readonly X509Certificate[]): X509Certificate[] {
  const bySubject = new Map<string, X509Certificate[]>();
  for (const certificate of others) {
    pushTo(bySubject, nameKey(certificate.subject), certificate);
  }
  const used = new Set<X509Certificate>();
  const path: X509Certificate[] = [];
  let current = leaf;
  while (!current.checkIssued(current)) {
    const issuedBy = (candidate: X509Certificate) => !used.has(candidate) && current.checkIssued(candidate);
    // A name OpenSSL matches but that renders differently still chains: then look at all of them.
    const next = (bySubject.get(nameKey(current.issuer)) ?? []).find(issuedBy) ?? others.find(issuedBy);
    if (next === undefined) break;
    used.add(next);
    path.push(next);
    current = next;
  }
  return path;
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

function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const values = map.get(key);
  if (values === undefined) map.set(key, [value]);
  else values.push(value);
}

function shortened(text: string, length: number): string {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

function describeCount(count: number, noun: string): string {
  return count === 1 ? `1 ${noun}` : `${count} ${noun}s`;
}
