import { X509Certificate } from 'node:crypto';
import { PasswordIncorrect, PfxMalformed, UnsupportedAlgorithm } from '../api/v1alpha1/reasons.ts';
import { DecodeBudget, type BudgetUse, type DecodeLimits, type KdfCost } from './budget.ts';
import {
  DerError,
  Tag,
  childrenOf,
  encodingOf,
  explicitContent,
  octetStringValue,
  readAlgorithmIdentifier,
  readElement,
  readOctetString,
  readOid,
  readSmallInteger,
  readWhole,
  sequenceOf,
  type DerElement,
} from './der.ts';
import { PkiError, asPkiError } from './errors.ts';
import { assembleIdentity, type CertificateEntry, type DecodedIdentity, type PrivateKeyEntry } from './identity.ts';
import { PasswordChooser, passwordForms, revealPassword, type PasswordInput } from './password.ts';
import { decryptWithAnyForm, pbeDecryptor, readEncryptedPrivateKey, type EncryptedPrivateKey, type PbeDecryptor } from './pbe.ts';
import { pfxMacCheck, type MacCheck } from './pfx-mac.ts';
import { privateKeyFromPkcs8 } from './private-key.ts';
import { pfxBytesFromSecretValue } from './secret-value.ts';
import { Sensitive } from './sensitive.ts';

// PKCS#12 (RFC 7292) read by hand on top of der.ts, with every cryptographic step in
// node:crypto. Stock node-forge needs ~24 ms for an OpenSSL 3 default file, nearly all of it
// pure-JavaScript SHA-256; this path needs about as long as OpenSSL itself, and still reads
// the legacy formats (RC2, RC4, CAST5) that OpenSSL 3 and node:crypto refuse.
//
// The input may be hostile, so a decode runs in three steps, each paid for before it runs:
// 1. Read the structure (no cryptography) and charge the decode budget for every key
//    derivation in sight: the MAC and every encrypted bag, in every password encoding that
//    may be tried. A file that asks for too much is refused here, having cost microseconds.
// 2. Verify the MAC. Nothing is decrypted before it verifies: a wrong password costs one
//    MAC derivation per password encoding, and a file whose MAC fails costs no more.
// 3. Decrypt, one bag after another; bags found inside decrypted contents are charged
//    before their own decryption. The first failure ends the decode: no work is left
//    running behind a verdict.
// It is synchronous: it runs in the decode sandbox's worker (sandbox/decode-pool.ts).

const Oid = {
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  envelopedData: '1.2.840.113549.1.7.3',
  encryptedData: '1.2.840.113549.1.7.6',
  keyBag: '1.2.840.113549.1.12.10.1.1',
  pkcs8ShroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  safeContentsBag: '1.2.840.113549.1.12.10.1.6',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  localKeyId: '1.2.840.113549.1.9.21',
} as const;

const MAX_NESTED_SAFE_CONTENTS = 4;

export interface DecodeOptions {
  /** Overrides of defaultDecodeLimits (see budget.ts). */
  readonly limits?: Partial<DecodeLimits>;
  /** Told what the decode was charged, whether it succeeded or not: for the corpus test and benches. */
  readonly onBudgetUse?: (use: BudgetUse) => void;
}

/**
 * Decodes a PFX (PKCS#12) into the identity it carries: the certificate that belongs to the
 * private key, the certificates that chain it to its issuers, the key as PKCS#8 PEM, and
 * the facts.
 *
 * `pfx` may also be base64 text of a PFX (see pfxBytesFromSecretValue). With no password,
 * or an empty one, both encodings of "no password" are tried, as OpenSSL does. Validity is
 * not judged here: an expired certificate decodes; see evaluateValidity.
 *
 * Runs synchronously, on the calling thread: the operator calls it only inside the decode
 * sandbox (decodeIdentity). Rejects with a PkiError whose reason says what is wrong; never
 * with the password, key material or input bytes in it.
 */
export async function decodePfx(pfx: Uint8Array | Sensitive<Uint8Array>, password?: PasswordInput, options: DecodeOptions = {}): Promise<DecodedIdentity> {
  const budget = new DecodeBudget(options.limits);
  try {
    const input = pfx instanceof Sensitive ? pfx.reveal() : pfx;
    budget.checkInput(input.length, 'the PFX');
    const structure = readPfx(pfxBytesFromSecretValue(input));
    const given = revealPassword(password);
    const bags = openPfx(structure, new PasswordChooser(passwordForms(given)), given, budget);
    return identityFromBags(bags, budget);
  } catch (error) {
    throw asPkiError(error, 'the PFX', (message) => `the PFX is not valid PKCS#12: ${message}`);
  } finally {
    options.onBudgetUse?.(budget.use);
  }
}

interface PfxStructure {
  /** The ContentInfos of the AuthenticatedSafe: each one plain or encrypted SafeContents. */
  readonly safes: readonly DerElement[];
  readonly macData: DerElement | undefined;
  /** What the MAC covers: the value of the authSafe OCTET STRING, not its header. */
  readonly authenticatedSafe: Uint8Array;
}

function readPfx(bytes: Uint8Array): PfxStructure {
  if (bytes[0] !== Tag.Sequence) throw new PkiError(PfxMalformed, describeNonPkcs12(bytes));
  // PFX ::= SEQUENCE { version INTEGER {v3(3)}, authSafe ContentInfo, macData MacData OPTIONAL }
  // Bytes after the PFX are ignored, as OpenSSL ignores them (some tools pad files).
  const [version, authSafe, macData] = sequenceOf(readElement(bytes, 0), 'PFX');
  if (readSmallInteger(version, 'PFX version') !== 3) throw new DerError('PFX version: not 3, the version of PKCS#12 files');
  // ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY }
  const [contentType, content] = sequenceOf(authSafe, 'authSafe');
  const type = readOid(contentType, 'authSafe content type');
  if (type === Oid.signedData) {
    throw new PkiError(
      UnsupportedAlgorithm,
      `the PFX uses public-key integrity mode (a signedData authSafe, OID ${type}), which is not supported; export it with password integrity`,
    );
  }
  if (type !== Oid.data) throw new DerError('authSafe content type: not data');
  const authenticatedSafe = readOctetString(explicitContent(content, 'authSafe content'), 'authSafe content');
  return { safes: sequenceOf(readWhole(authenticatedSafe), 'AuthenticatedSafe'), macData, authenticatedSafe };
}

// PEM labels said back by name: the common ones. Any other label is the input's own text,
// and the input may be some other Secret, so it is not repeated.
const knownPemLabels: ReadonlySet<string> = new Set([
  'CERTIFICATE',
  'PRIVATE KEY',
  'ENCRYPTED PRIVATE KEY',
  'RSA PRIVATE KEY',
  'EC PRIVATE KEY',
  'PUBLIC KEY',
  'CERTIFICATE REQUEST',
  'PKCS7',
]);

/** Why the bytes are not a PFX, in fixed words: nothing of the input is repeated but a well-known PEM label. */
function describeNonPkcs12(bytes: Uint8Array): string {
  if (bytes.length === 0) return 'the PFX is empty';
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, 4096)).toString('latin1');
  const pemLabel = /-----BEGIN ([A-Z0-9 ]{1,40})-----/.exec(head)?.[1];
  if (pemLabel !== undefined) {
    const named = knownPemLabels.has(pemLabel) ? ` (${pemLabel})` : '';
    return `the data is PEM text${named}, not a PKCS#12 file; give a PEM certificate and key as a PEM pair (tls.crt and tls.key, or inspect --cert/--key)`;
  }
  return 'the data is not PKCS#12: it does not start with a DER SEQUENCE, and it is not base64 of one';
}

// --- What the file holds, read before any password work.

type Bag =
  | { readonly kind: 'certificate'; readonly der: Uint8Array; readonly localKeyId: string | undefined }
  | { readonly kind: 'key'; readonly der: Uint8Array; readonly localKeyId: string | undefined };

type PlannedBag = Bag | { readonly kind: 'shrouded-key'; readonly encrypted: EncryptedPrivateKey; readonly localKeyId: string | undefined };

type PlannedSafe =
  | { readonly kind: 'plain'; readonly bags: readonly PlannedBag[] }
  | { readonly kind: 'encrypted'; readonly decryptor: PbeDecryptor; readonly ciphertext: Uint8Array };

function readContentInfo(contentInfo: DerElement, budget: DecodeBudget): PlannedSafe {
  const [contentType, content] = sequenceOf(contentInfo, 'AuthenticatedSafe ContentInfo');
  const type = readOid(contentType, 'AuthenticatedSafe content type');
  if (type === Oid.data) {
    return { kind: 'plain', bags: readSafeContents(readWhole(readOctetString(explicitContent(content, 'data'), 'data')), 0, budget) };
  }
  if (type === Oid.encryptedData) {
    // EncryptedData ::= SEQUENCE { version INTEGER, encryptedContentInfo EncryptedContentInfo }
    // EncryptedContentInfo ::= SEQUENCE { contentType OID, contentEncryptionAlgorithm AlgorithmIdentifier,
    //   encryptedContent [0] IMPLICIT OCTET STRING OPTIONAL }
    const [, encryptedContentInfo] = sequenceOf(explicitContent(content, 'encryptedData'), 'EncryptedData');
    const [, algorithm, encryptedContent] = sequenceOf(encryptedContentInfo, 'EncryptedContentInfo');
    const decryptor = pbeDecryptor(readAlgorithmIdentifier(algorithm, 'EncryptedContentInfo algorithm'), 'the certificates');
    if (encryptedContent === undefined || (encryptedContent.tag & 0xdf) !== Tag.Context0Primitive) {
      throw new DerError('EncryptedContentInfo: no encrypted content');
    }
    return { kind: 'encrypted', decryptor, ciphertext: octetStringValue(encryptedContent) };
  }
  if (type === Oid.envelopedData) {
    throw new PkiError(UnsupportedAlgorithm, `the PFX uses public-key privacy mode (envelopedData, OID ${type}), which is not supported`);
  }
  throw new DerError('AuthenticatedSafe content type: not data, encryptedData or envelopedData');
}

function readSafeContents(safeContents: DerElement, depth: number, budget: DecodeBudget): PlannedBag[] {
  if (depth > MAX_NESTED_SAFE_CONTENTS) throw new DerError(`SafeContents nested more than ${MAX_NESTED_SAFE_CONTENTS} deep`);
  const bags = sequenceOf(safeContents, 'SafeContents');
  budget.countBags(bags.length, 'the PFX');
  return bags.flatMap((bag) => readSafeBag(bag, depth, budget));
}

function readSafeBag(safeBag: DerElement, depth: number, budget: DecodeBudget): PlannedBag[] {
  // SafeBag ::= SEQUENCE { bagId OID, bagValue [0] EXPLICIT ANY, bagAttributes SET OF PKCS12Attribute OPTIONAL }
  const [bagId, bagValue, attributes] = sequenceOf(safeBag, 'SafeBag');
  const type = readOid(bagId, 'SafeBag type');
  const value = explicitContent(bagValue, 'SafeBag value');
  const localKeyId = attributes === undefined ? undefined : readLocalKeyId(attributes);
  switch (type) {
    case Oid.keyBag:
      return [{ kind: 'key', der: encodingOf(value), localKeyId }];
    case Oid.pkcs8ShroudedKeyBag:
      return [{ kind: 'shrouded-key', encrypted: readEncryptedPrivateKey(value, 'the private key'), localKeyId }];
    case Oid.certBag: {
      // CertBag ::= SEQUENCE { certId OID, certValue [0] EXPLICIT ANY }; X.509 ones hold an OCTET STRING of DER.
      const [certId, certValue] = sequenceOf(value, 'CertBag');
      if (readOid(certId, 'CertBag type') !== Oid.x509Certificate) return []; // SDSI certificates: not for TLS
      return [{ kind: 'certificate', der: readOctetString(explicitContent(certValue, 'CertBag value'), 'CertBag value'), localKeyId }];
    }
    case Oid.safeContentsBag:
      return readSafeContents(value, depth + 1, budget);
    default:
      return []; // CRLs, secrets and unknown bags carry nothing a client identity needs
  }
}

function readLocalKeyId(attributes: DerElement): string | undefined {
  // PKCS12Attribute ::= SEQUENCE { attrId OID, attrValues SET OF ANY }
  for (const attribute of childrenOf(attributes)) {
    const [attributeId, values] = sequenceOf(attribute, 'bag attribute');
    if (readOid(attributeId, 'bag attribute type') !== Oid.localKeyId || values === undefined) continue;
    const [first] = childrenOf(values);
    return first === undefined ? undefined : Buffer.from(readOctetString(first, 'localKeyId')).toString('hex');
  }
  return undefined;
}

// --- Password work, in the order the comment at the top gives.

/** One attempt per password encoding that may be tried: what the budget is charged up front. */
function attemptCosts(costs: { readonly cost: KdfCost; readonly passwordKind: 'pkcs12' | 'pbkdf2' }, chooser: PasswordChooser): KdfCost[] {
  return Array.from({ length: chooser.count(costs.passwordKind) }, () => costs.cost);
}

function decryptorsIn(bags: readonly PlannedBag[]): PbeDecryptor[] {
  return bags.flatMap((bag) => (bag.kind === 'shrouded-key' ? [bag.encrypted.decryptor] : []));
}

function openPfx(pfx: PfxStructure, chooser: PasswordChooser, given: string | undefined, budget: DecodeBudget): Bag[] {
  const mac: MacCheck | undefined = pfx.macData === undefined ? undefined : pfxMacCheck(pfx.macData, pfx.authenticatedSafe);
  const safes = pfx.safes.map((safe) => readContentInfo(safe, budget));
  const decryptors = safes.flatMap((safe) => (safe.kind === 'encrypted' ? [safe.decryptor] : decryptorsIn(safe.bags)));
  budget.chargeKdf(
    [...(mac === undefined ? [] : attemptCosts(mac, chooser)), ...decryptors.flatMap((decryptor) => attemptCosts(decryptor, chooser))],
    'the PFX',
  );

  if (mac !== undefined && chooser.first(mac.passwordKind, (password) => (mac.verify(password) ? true : undefined)) === undefined) {
    throw wrongPassword(given, 'the MAC does not verify');
  }

  const decrypt = (decryptor: PbeDecryptor, ciphertext: Uint8Array, what: string): Uint8Array => {
    const plaintext = decryptWithAnyForm(decryptor, ciphertext, chooser);
    if (plaintext !== undefined) return plaintext;
    if (mac === undefined) throw wrongPassword(given, 'the contents do not decrypt with it; the file has no MAC, so that is the only check');
    throw new PkiError(
      PasswordIncorrect,
      `the password verifies the PFX MAC but does not decrypt ${what} in any encoding tried: ${what} may be encrypted with a second password ` +
        '(Java keytool -keypass, openssl -twopass), which is not supported; re-export with one password',
    );
  };

  const planned: PlannedBag[] = [];
  for (const safe of safes) {
    if (safe.kind === 'plain') {
      planned.push(...safe.bags);
      continue;
    }
    const inner = readSafeContents(readWhole(decrypt(safe.decryptor, safe.ciphertext, 'the certificates')), 0, budget);
    budget.chargeKdf(
      decryptorsIn(inner).flatMap((decryptor) => attemptCosts(decryptor, chooser)),
      'the PFX',
    );
    planned.push(...inner);
  }
  return planned.map((bag) =>
    bag.kind === 'shrouded-key'
      ? { kind: 'key', der: decrypt(bag.encrypted.decryptor, bag.encrypted.ciphertext, 'the private key'), localKeyId: bag.localKeyId }
      : bag,
  );
}

function wrongPassword(given: string | undefined, detail: string): PkiError {
  if (given === undefined) return new PkiError(PasswordIncorrect, `the PFX is password-protected and no password was given (${detail})`);
  if (given === '') return new PkiError(PasswordIncorrect, `the PFX is password-protected and the password given is empty (${detail})`);
  return new PkiError(PasswordIncorrect, `the password is incorrect, or the file was altered after it was written (${detail})`);
}

function identityFromBags(bags: readonly Bag[], budget: DecodeBudget): DecodedIdentity {
  const certificates: CertificateEntry[] = [];
  const keys: PrivateKeyEntry[] = [];
  for (const bag of bags) {
    if (bag.kind === 'key') {
      budget.countKey('the PFX');
      keys.push({ key: privateKeyFromPkcs8(bag.der, 'the private key in the PFX'), localKeyId: bag.localKeyId });
    } else {
      budget.countCertificate('the PFX');
      certificates.push({ certificate: x509(bag.der, certificates.length + 1), localKeyId: bag.localKeyId });
    }
  }
  return assembleIdentity(certificates, keys, 'the PFX');
}

function x509(der: Uint8Array, position: number): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch {
    throw new PkiError(PfxMalformed, `certificate ${position} in the PFX is not a valid X.509 certificate`);
  }
}
