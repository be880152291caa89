import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { PasswordIncorrect, PfxMalformed } from '../api/v1alpha1/reasons.ts';
import { DecodeBudget } from './budget.ts';
import { readWhole } from './der.ts';
import { PkiError, asPkiError } from './errors.ts';
import { assembleIdentity, type DecodedIdentity, type PrivateKeyEntry } from './identity.ts';
import { PasswordChooser, passwordForms, revealPassword, type PasswordInput } from './password.ts';
import { decryptWithAnyForm, readEncryptedPrivateKey } from './pbe.ts';
import type { DecodeOptions } from './pfx.ts';
import { privateKeyFromPkcs8 } from './private-key.ts';
import { Sensitive } from './sensitive.ts';

// kubernetes.io/tls Secrets: tls.crt (leaf, perhaps with its chain, in any order) and
// tls.key in any of the PEM forms tools write: PKCS#8, PKCS#1 ("RSA PRIVATE KEY"), SEC1
// ("EC PRIVATE KEY", perhaps after an "EC PARAMETERS" block). The result is the same
// DecodedIdentity a PFX gives, key converted to PKCS#8. Like decodePfx, it runs in the
// decode sandbox, under the same budget.

interface PemBlock {
  readonly label: string;
  /** The whole block, armor included, as node:crypto accepts it. */
  readonly text: string;
  readonly body: string;
}

const KEY_LABELS: ReadonlySet<string> = new Set(['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY', 'DSA PRIVATE KEY', 'ENCRYPTED PRIVATE KEY']);
const CERTIFICATE = 'CERTIFICATE';

/**
 * Decodes a PEM certificate (chain) and private key into the identity they form. The
 * password is only needed for an encrypted key ("ENCRYPTED PRIVATE KEY", or a legacy
 * "Proc-Type: 4,ENCRYPTED" block). Synchronous inside, like decodePfx.
 */
export async function decodePem(
  certificatePem: string | Uint8Array,
  key: string | Uint8Array | Sensitive<string | Uint8Array>,
  password?: PasswordInput,
  options: DecodeOptions = {},
): Promise<DecodedIdentity> {
  const budget = new DecodeBudget(options.limits);
  try {
    const keyPem = key instanceof Sensitive ? key.reveal() : key;
    budget.checkInput(certificatePem.length, 'the certificate PEM');
    budget.checkInput(keyPem.length, 'the key PEM');
    const certificates = pemBlocks(certificatePem, 'the certificate PEM', new Set([CERTIFICATE])).map((block, index) => {
      budget.countCertificate('the certificate PEM');
      return { certificate: certificateFromPem(block, index + 1) };
    });
    const given = revealPassword(password);
    const keys: PrivateKeyEntry[] = pemBlocks(keyPem, 'the key PEM', KEY_LABELS).map((block) => {
      budget.countKey('the key PEM');
      return { key: privateKeyFromPem(block, given, budget) };
    });
    return assembleIdentity(certificates, keys, 'the PEM pair');
  } catch (error) {
    throw asPkiError(error, 'the PEM pair', (message) => `the private key PEM is not valid EncryptedPrivateKeyInfo: ${message}`);
  } finally {
    options.onBudgetUse?.(budget.use);
  }
}

/**
 * The blocks with the wanted labels, in order. One pass: each END marker is looked for once
 * per block, and a label whose END is missing is not looked for again, so any text costs
 * time in proportion to its length (a regular expression over BEGIN…END did not).
 */
function pemBlocks(input: string | Uint8Array, what: string, wanted: ReadonlySet<string>): PemBlock[] {
  const text = typeof input === 'string' ? input : Buffer.from(input.buffer, input.byteOffset, input.length).toString('utf8');
  const blocks: PemBlock[] = [];
  const unterminated = new Set<string>();
  let sawBlock = false;
  let position = 0;
  for (;;) {
    const begin = text.indexOf('-----BEGIN ', position);
    if (begin === -1) break;
    const labelStart = begin + '-----BEGIN '.length;
    const labelEnd = text.indexOf('-----', labelStart);
    if (labelEnd === -1) break;
    position = labelEnd + 5;
    const label = labelEnd - labelStart <= 64 ? text.slice(labelStart, labelEnd) : '';
    if (!/^[A-Z0-9 ]+$/.test(label)) continue;
    sawBlock = true;
    if (!wanted.has(label) || unterminated.has(label)) continue;
    const endMarker = `-----END ${label}-----`;
    const end = text.indexOf(endMarker, position);
    if (end === -1) {
      unterminated.add(label);
      continue;
    }
    blocks.push({ label, text: text.slice(begin, end + endMarker.length), body: text.slice(position, end) });
    position = end + endMarker.length;
  }
  if (!sawBlock && text.trim() !== '') throw new PkiError(PfxMalformed, `${what} is not PEM text (no -----BEGIN ...----- block)`);
  return blocks;
}

function certificateFromPem(block: PemBlock, position: number): X509Certificate {
  try {
    return new X509Certificate(block.text);
  } catch {
    throw new PkiError(PfxMalformed, `certificate ${position} in the certificate PEM is not a valid X.509 certificate`);
  }
}

function privateKeyFromPem(block: PemBlock, password: string | undefined, budget: DecodeBudget): KeyObject {
  if (block.label === 'ENCRYPTED PRIVATE KEY') return privateKeyFromEncryptedPkcs8(block, password, budget);
  const encrypted = /^Proc-Type:\s*4,ENCRYPTED/m.test(block.body);
  if (encrypted && password === undefined) {
    throw new PkiError(PasswordIncorrect, 'the private key PEM is encrypted and no password was given');
  }
  try {
    // A legacy encrypted block derives its key with one MD5 (EVP_BytesToKey): no budget to charge.
    return createPrivateKey({ key: block.text, format: 'pem', ...(encrypted ? { passphrase: password } : {}) });
  } catch {
    if (encrypted) throw new PkiError(PasswordIncorrect, 'the password does not decrypt the private key PEM');
    // Unencrypted yet unreadable: for PKCS#8, privateKeyFromPkcs8 tells an unsupported algorithm from damage.
    if (block.label === 'PRIVATE KEY') return privateKeyFromPkcs8(derOf(block), 'the private key PEM');
    throw new PkiError(PfxMalformed, `the private key PEM (${block.label}) is not a valid key`);
  }
}

function privateKeyFromEncryptedPkcs8(block: PemBlock, password: string | undefined, budget: DecodeBudget): KeyObject {
  const { decryptor, ciphertext } = readEncryptedPrivateKey(readWhole(derOf(block)), 'the private key PEM');
  const chooser = new PasswordChooser(passwordForms(password));
  budget.chargeKdf(
    Array.from({ length: chooser.count(decryptor.passwordKind) }, () => decryptor.cost),
    'the private key PEM',
  );
  const der = decryptWithAnyForm(decryptor, ciphertext, chooser);
  if (der !== undefined) return privateKeyFromPkcs8(der, 'the private key PEM');
  throw new PkiError(
    PasswordIncorrect,
    password === undefined ? 'the private key PEM is encrypted and no password was given' : 'the password does not decrypt the private key PEM',
  );
}

function derOf(block: PemBlock): Uint8Array {
  // Headers such as Proc-Type only occur in legacy blocks; PKCS#8 bodies are pure base64.
  return Buffer.from(block.body.replace(/\s+/g, ''), 'base64');
}
