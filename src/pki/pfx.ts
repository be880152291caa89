import { X509Certificate } from 'node:crypto';
import { PasswordIncorrect, PfxMalformed, UnsupportedAlgorithm } from '../api/v1alpha1/reasons.ts';
import {
  DerError,
  Tag,
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
  childrenOf,
  type DerElement,
} from './der.ts';
import { PkiError } from './errors.ts';
import { assembleIdentity, type CertificateEntry, type DecodedIdentity, type PrivateKeyEntry } from './identity.ts';
import { passwordForms, revealPassword, type PasswordForm, type PasswordInput } from './password.ts';
import { DecryptionFailed, encryptedPrivateKeyDecryptor, pbeDecryptor } from './pbe.ts';
import { pfxMacCheck, type MacCheck } from './pfx-mac.ts';
import { privateKeyFromPkcs8 } from './private-key.ts';
import { pfxBytesFromSecretValue } from './secret-value.ts';
import { runInTimeSlice } from './time-slices.ts';

// PKCS#12 (RFC 7292) read by hand on top of der.ts, with every cryptographic step in
// node:crypto. Stock node-forge needs ~24 ms for an OpenSSL 3 default file, nearly all of it
// pure-JavaScript SHA-256; this path needs about as long as OpenSSL itself, and still reads
// the legacy formats (RC2, RC4) that OpenSSL 3 and node:crypto refuse.

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

/**
 * Decodes a PFX (PKCS#12) into the identity it carries: the certificate that belongs to the
 * private key, the rest of the chain in issuer order, the key as PKCS#8 PEM, and the facts.
 *
 * `input` may also be base64 text of a PFX (see pfxBytesFromSecretValue). With no password,
 * or an empty one, both encodings of "no password" are tried, as OpenSSL does. Validity is
 * not judged here: an expired certificate decodes; see evaluateValidity.
 *
 * Rejects with a PkiError whose reason says what is wrong; never with the password or key
 * material in it.
 */
export async function decodePfx(input: Uint8Array, password?: PasswordInput): Promise<DecodedIdentity> {
  const given = revealPassword(password);
  try {
    // Parsing and starting the work is synchronous; it runs in a time slice so that a burst
    // of decodes is spread over turns of the event loop. The promise is wrapped so that the
    // slice hands it over unsettled (and marked handled) instead of waiting for it.
    const opening = await runInTimeSlice(() => {
      const contents = openPfx(readPfx(pfxBytesFromSecretValue(input)), passwordForms(given), given);
      contents.catch(() => {});
      return { contents };
    });
    const bags = await opening.contents;
    // So is turning the bags into an identity (X.509 and key parsing, matching, facts).
    return await runInTimeSlice(() => identityFromBags(bags));
  } catch (error) {
    if (error instanceof DerError) throw new PkiError(PfxMalformed, `the PFX is not valid PKCS#12: ${error.message}`);
    throw error;
  }
}

interface PfxStructure {
  /** The ContentInfos of the AuthenticatedSafe: each one plain or encrypted SafeContents. */
  readonly safes: readonly DerElement[];
  readonly macCheck: MacCheck | undefined;
}

function readPfx(bytes: Uint8Array): PfxStructure {
  if (bytes[0] !== Tag.Sequence) throw new PkiError(PfxMalformed, describeNonPkcs12(bytes));
  // PFX ::= SEQUENCE { version INTEGER {v3(3)}, authSafe ContentInfo, macData MacData OPTIONAL }
  // Bytes after the PFX are ignored, as OpenSSL ignores them (some tools pad files).
  const [version, authSafe, macData] = sequenceOf(readElement(bytes, 0), 'PFX');
  const versionNumber = readSmallInteger(version, 'PFX version');
  if (versionNumber !== 3) throw new DerError(`version ${versionNumber}, but PKCS#12 files are version 3`);
  // ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY }
  const [contentType, content] = sequenceOf(authSafe, 'authSafe');
  const type = readOid(contentType, 'authSafe content type');
  if (type === Oid.signedData) {
    throw new PkiError(
      UnsupportedAlgorithm,
      `the PFX uses public-key integrity mode (a signedData authSafe, OID ${type}), which is not supported; export it with password integrity`,
    );
  }
  if (type !== Oid.data) throw new DerError(`authSafe content type ${type}, expected data (${Oid.data})`);
  // The MAC covers exactly these bytes: the value of the OCTET STRING, not its header.
  const authenticatedSafe = readOctetString(explicitContent(content, 'authSafe content'), 'authSafe content');
  return {
    safes: sequenceOf(readWhole(authenticatedSafe), 'AuthenticatedSafe'),
    macCheck: macData === undefined ? undefined : pfxMacCheck(macData, authenticatedSafe),
  };
}

function describeNonPkcs12(bytes: Uint8Array): string {
  if (bytes.length === 0) return 'the PFX is empty';
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, 4096)).toString('latin1');
  const pemLabel = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(text)?.[1];
  if (pemLabel !== undefined) {
    return `the data is PEM text (${pemLabel}), not a PKCS#12 file; give a PEM certificate and key as a PEM pair (tls.crt and tls.key, or inspect --cert/--key)`;
  }
  return 'the data is not PKCS#12: it does not start with a DER SEQUENCE, and it is not base64 of one';
}

/**
 * Checks the password and returns the bags. With a MAC, the MAC decides whether the password
 * is right; meanwhile decryption starts with the most likely password form, so PBKDF2 runs
 * on the threadpool while the MAC's key derivation runs here. Without a MAC, decryption is
 * the only test: a padding error or garbage plaintext means a wrong password.
 */
async function openPfx(pfx: PfxStructure, forms: readonly PasswordForm[], given: string | undefined): Promise<Bag[]> {
  const [likely] = forms as [PasswordForm, ...PasswordForm[]];
  if (pfx.macCheck === undefined) {
    for (const form of forms) {
      try {
        return await readSafes(pfx.safes, form);
      } catch (error) {
        if (!(error instanceof DecryptionFailed)) throw error;
      }
    }
    throw wrongPassword(given, 'the contents do not decrypt with it; the file has no MAC, so that is the only check');
  }

  const speculative = readSafes(pfx.safes, likely);
  speculative.catch(() => {}); // settled below, or abandoned when the MAC fails
  const results = await Promise.all(forms.map((form) => pfx.macCheck!(form)));
  const verified = forms[results.indexOf(true)];
  if (verified === undefined) throw wrongPassword(given, 'the MAC does not verify');
  try {
    return await (verified === likely ? speculative : readSafes(pfx.safes, verified));
  } catch (error) {
    if (!(error instanceof DecryptionFailed)) throw error;
    throw new PkiError(
      PasswordIncorrect,
      'the password verifies the PFX MAC but does not decrypt its contents: the private key has a password of its own ' +
        '(Java keytool -keypass, openssl -twopass), which is not supported; re-export with one password',
    );
  }
}

function wrongPassword(given: string | undefined, detail: string): PkiError {
  if (given === undefined) return new PkiError(PasswordIncorrect, `the PFX is password-protected and no password was given (${detail})`);
  if (given === '') return new PkiError(PasswordIncorrect, `the PFX is password-protected and the password given is empty (${detail})`);
  return new PkiError(PasswordIncorrect, `the password is incorrect (${detail})`);
}

type Bag =
  | { readonly kind: 'certificate'; readonly der: Uint8Array; readonly localKeyId: string | undefined }
  | { readonly kind: 'key'; readonly der: Uint8Array; readonly localKeyId: string | undefined };

async function readSafes(safes: readonly DerElement[], password: PasswordForm): Promise<Bag[]> {
  return (await Promise.all(safes.map((safe) => readContentInfo(safe, password)))).flat();
}

function identityFromBags(bags: readonly Bag[]): DecodedIdentity {
  const certificates: CertificateEntry[] = [];
  const keys: PrivateKeyEntry[] = [];
  for (const bag of bags) {
    if (bag.kind === 'key') {
      keys.push({ key: privateKeyFromPkcs8(bag.der, 'the private key in the PFX'), localKeyId: bag.localKeyId });
    } else {
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

async function readContentInfo(contentInfo: DerElement, password: PasswordForm): Promise<Bag[]> {
  const [contentType, content] = sequenceOf(contentInfo, 'AuthenticatedSafe ContentInfo');
  const type = readOid(contentType, 'AuthenticatedSafe content type');
  if (type === Oid.data) {
    return readSafeContents(readWhole(readOctetString(explicitContent(content, 'data'), 'data')), password, 0);
  }
  if (type === Oid.encryptedData) {
    // EncryptedData ::= SEQUENCE { version INTEGER, encryptedContentInfo EncryptedContentInfo }
    // EncryptedContentInfo ::= SEQUENCE { contentType OID, contentEncryptionAlgorithm AlgorithmIdentifier,
    //   encryptedContent [0] IMPLICIT OCTET STRING OPTIONAL }
    const [, encryptedContentInfo] = sequenceOf(explicitContent(content, 'encryptedData'), 'EncryptedData');
    const [, algorithm, encryptedContent] = sequenceOf(encryptedContentInfo, 'EncryptedContentInfo');
    const decrypt = pbeDecryptor(readAlgorithmIdentifier(algorithm, 'EncryptedContentInfo algorithm'), 'the certificates');
    if (encryptedContent === undefined || (encryptedContent.tag & 0xdf) !== Tag.Context0Primitive) {
      throw new DerError('EncryptedContentInfo without encrypted content');
    }
    const plaintext = await decrypt(octetStringValue(encryptedContent), password);
    return readSafeContents(readWhole(plaintext), password, 0);
  }
  if (type === Oid.envelopedData) {
    throw new PkiError(UnsupportedAlgorithm, `the PFX uses public-key privacy mode (envelopedData, OID ${type}), which is not supported`);
  }
  throw new DerError(`AuthenticatedSafe content type ${type}`);
}

async function readSafeContents(safeContents: DerElement, password: PasswordForm, depth: number): Promise<Bag[]> {
  if (depth > MAX_NESTED_SAFE_CONTENTS) throw new DerError(`SafeContents nested more than ${MAX_NESTED_SAFE_CONTENTS} deep`);
  const bags = sequenceOf(safeContents, 'SafeContents');
  return (await Promise.all(bags.map((bag) => readSafeBag(bag, password, depth)))).flat();
}

async function readSafeBag(safeBag: DerElement, password: PasswordForm, depth: number): Promise<Bag[]> {
  // SafeBag ::= SEQUENCE { bagId OID, bagValue [0] EXPLICIT ANY, bagAttributes SET OF PKCS12Attribute OPTIONAL }
  const [bagId, bagValue, attributes] = sequenceOf(safeBag, 'SafeBag');
  const type = readOid(bagId, 'SafeBag type');
  const value = explicitContent(bagValue, 'SafeBag value');
  const localKeyId = attributes === undefined ? undefined : readLocalKeyId(attributes);
  switch (type) {
    case Oid.keyBag:
      return [{ kind: 'key', der: encodingOf(value), localKeyId }];
    case Oid.pkcs8ShroudedKeyBag: {
      const der = await encryptedPrivateKeyDecryptor(value, 'the private key')(password);
      return [{ kind: 'key', der, localKeyId }];
    }
    case Oid.certBag: {
      // CertBag ::= SEQUENCE { certId OID, certValue [0] EXPLICIT ANY }; X.509 ones hold an OCTET STRING of DER.
      const [certId, certValue] = sequenceOf(value, 'CertBag');
      if (readOid(certId, 'CertBag type') !== Oid.x509Certificate) return []; // SDSI certificates: not for TLS
      return [{ kind: 'certificate', der: readOctetString(explicitContent(certValue, 'CertBag value'), 'CertBag value'), localKeyId }];
    }
    case Oid.safeContentsBag:
      return readSafeContents(value, password, depth + 1);
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
