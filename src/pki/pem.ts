import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { PasswordIncorrect, PfxMalformed } from '../api/v1alpha1/reasons.ts';
import { DerError, readWhole } from './der.ts';
import { PkiError } from './errors.ts';
import { assembleIdentity, type DecodedIdentity, type PrivateKeyEntry } from './identity.ts';
import { passwordForms, revealPassword, type PasswordInput } from './password.ts';
import { DecryptionFailed, encryptedPrivateKeyDecryptor } from './pbe.ts';
import { privateKeyFromPkcs8 } from './private-key.ts';
import { runInTimeSlice } from './time-slices.ts';

// kubernetes.io/tls Secrets: tls.crt (leaf, perhaps with its chain, in any order) and
// tls.key in any of the PEM forms tools write: PKCS#8, PKCS#1 ("RSA PRIVATE KEY"), SEC1
// ("EC PRIVATE KEY", perhaps after an "EC PARAMETERS" block). The result is the same
// DecodedIdentity a PFX gives, key converted to PKCS#8.

interface PemBlock {
  readonly label: string;
  /** The whole block, armor included, as node:crypto accepts it. */
  readonly text: string;
  readonly body: string;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
const KEY_LABELS: ReadonlySet<string> = new Set(['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY', 'DSA PRIVATE KEY', 'ENCRYPTED PRIVATE KEY']);

/**
 * Decodes a PEM certificate (chain) and private key into the identity they form. The
 * password is only needed for an encrypted key ("ENCRYPTED PRIVATE KEY", or a legacy
 * "Proc-Type: 4,ENCRYPTED" block). Async because such a key is decrypted off the event loop.
 */
export async function decodePem(
  certificatePem: string | Uint8Array,
  keyPem: string | Uint8Array,
  password?: PasswordInput,
): Promise<DecodedIdentity> {
  const certificates = pemBlocks(certificatePem, 'the certificate PEM')
    .filter((block) => block.label === 'CERTIFICATE')
    .map((block, index) => ({ certificate: certificateFromPem(block, index + 1) }));
  const keyBlocks = pemBlocks(keyPem, 'the key PEM').filter((block) => KEY_LABELS.has(block.label));
  const keys: PrivateKeyEntry[] = [];
  for (const block of keyBlocks) keys.push({ key: await privateKeyFromPem(block, revealPassword(password)) });
  return runInTimeSlice(() => assembleIdentity(certificates, keys, 'the PEM pair'));
}

function pemBlocks(input: string | Uint8Array, what: string): PemBlock[] {
  const text = typeof input === 'string' ? input : Buffer.from(input.buffer, input.byteOffset, input.length).toString('utf8');
  const blocks = [...text.matchAll(PEM_BLOCK)].map(([block, label, body]) => ({ label: label!, text: block, body: body! }));
  if (blocks.length === 0 && text.trim() !== '') throw new PkiError(PfxMalformed, `${what} is not PEM text (no -----BEGIN ...----- block)`);
  return blocks;
}

function certificateFromPem(block: PemBlock, position: number): X509Certificate {
  try {
    return new X509Certificate(block.text);
  } catch {
    throw new PkiError(PfxMalformed, `certificate ${position} in the certificate PEM is not a valid X.509 certificate`);
  }
}

async function privateKeyFromPem(block: PemBlock, password: string | undefined): Promise<KeyObject> {
  if (block.label === 'ENCRYPTED PRIVATE KEY') return privateKeyFromEncryptedPkcs8(block, password);
  const encrypted = /^Proc-Type:\s*4,ENCRYPTED/m.test(block.body);
  if (encrypted && password === undefined) {
    throw new PkiError(PasswordIncorrect, 'the private key PEM is encrypted and no password was given');
  }
  try {
    return createPrivateKey({ key: block.text, format: 'pem', ...(encrypted ? { passphrase: password } : {}) });
  } catch {
    if (encrypted) throw new PkiError(PasswordIncorrect, 'the password does not decrypt the private key PEM');
    // Unencrypted yet unreadable: for PKCS#8, privateKeyFromPkcs8 tells an unsupported algorithm from damage.
    if (block.label === 'PRIVATE KEY') return privateKeyFromPkcs8(derOf(block), 'the private key PEM');
    throw new PkiError(PfxMalformed, `the private key PEM (${block.label}) is not a valid key`);
  }
}

async function privateKeyFromEncryptedPkcs8(block: PemBlock, password: string | undefined): Promise<KeyObject> {
  const decrypt = withDerErrorsAsMalformed('the private key PEM is not valid EncryptedPrivateKeyInfo', () =>
    encryptedPrivateKeyDecryptor(readWhole(derOf(block)), 'the private key PEM'),
  );
  for (const form of passwordForms(password)) {
    try {
      return privateKeyFromPkcs8(await decrypt(form), 'the private key PEM');
    } catch (error) {
      if (!(error instanceof DecryptionFailed)) throw error;
    }
  }
  throw new PkiError(
    PasswordIncorrect,
    password === undefined ? 'the private key PEM is encrypted and no password was given' : 'the password does not decrypt the private key PEM',
  );
}

function withDerErrorsAsMalformed<T>(context: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof DerError) throw new PkiError(PfxMalformed, `${context}: ${error.message}`);
    throw error;
  }
}

function derOf(block: PemBlock): Uint8Array {
  // Headers such as Proc-Type only occur in legacy blocks; PKCS#8 bodies are pure base64.
  return Buffer.from(block.body.replace(/\s+/g, ''), 'base64');
}
