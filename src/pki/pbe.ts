import { createDecipheriv, pbkdf2Sync, scryptSync } from 'node:crypto';
import { PfxMalformed, UnsupportedAlgorithm } from '../api/v1alpha1/reasons.ts';
import { CodedError } from '../errors.ts';
import { kdfCost, type KdfCost } from './budget.ts';
import {
  DerError,
  Tag,
  childrenOf,
  readAlgorithmIdentifier,
  readOctetString,
  readSmallInteger,
  readWhole,
  sequenceOf,
  type AlgorithmIdentifier,
  type DerElement,
} from './der.ts';
import { defaultPbkdf2Prf, hmacDigestsByOid, sha1, type Digest } from './digests.ts';
import { PkiError } from './errors.ts';
import { cast5CbcDecrypt, rc2CbcDecrypt, rc4 } from './legacy-ciphers.ts';
import type { PasswordChooser, PasswordKind } from './password.ts';
import { Pkcs12Purpose, pkcs12Kdf } from './pkcs12-kdf.ts';

// Password-based decryption of PKCS#12 bags and PKCS#8 keys, dispatched by OID through the
// tables below. Every cipher runs in node:crypto except RC2, RC4 and CAST5 (see
// legacy-ciphers.ts). Everything here is synchronous and runs in the decode sandbox's
// worker: PBKDF2 and scrypt run there too rather than on the libuv threadpool, which the
// whole process shares (DNS lookups, file I/O) and where abandoned work cannot be stopped.
//
// Reading an algorithm's parameters checks them and states what one decryption attempt
// costs, so the caller can charge the decode budget before any key is derived.

/** The password did not decrypt the data: wrong padding, or plaintext that is not DER. */
export class DecryptionFailed extends CodedError<'ERR_DECRYPTION_FAILED'> {
  constructor() {
    super('ERR_DECRYPTION_FAILED', 'the data did not decrypt with this password');
  }
}

export interface PbeDecryptor {
  /** Which encoding of the password the key derivation takes (see PasswordForms). */
  readonly passwordKind: PasswordKind;
  /** What one attempt costs: charge it before calling decrypt. */
  readonly cost: KdfCost;
  /** Decrypts with one encoding of the password; the plaintext returned is a DER structure. Throws DecryptionFailed. */
  decrypt(ciphertext: Uint8Array, password: Uint8Array): Uint8Array;
}

const PBES2 = '1.2.840.113549.1.5.13';
const PBKDF2 = '1.2.840.113549.1.5.12';
const SCRYPT = '1.3.6.1.4.1.11591.4.11';

/** Names for OIDs this module recognises but cannot decrypt, so the message says what to re-export away from. */
const unsupportedAlgorithmNames: ReadonlyMap<string, string> = new Map([
  ['1.3.14.3.2.7', 'DES-CBC (single DES)'],
  ['1.2.840.113549.1.5.1', 'pbeWithMD2AndDES-CBC'],
  ['1.2.840.113549.1.5.3', 'pbeWithMD5AndDES-CBC'],
  ['1.2.840.113549.1.5.4', 'pbeWithMD2AndRC2-CBC'],
  ['1.2.840.113549.1.5.6', 'pbeWithMD5AndRC2-CBC'],
  ['1.2.840.113549.1.5.10', 'pbeWithSHA1AndDES-CBC'],
  ['1.2.840.113549.1.5.11', 'pbeWithSHA1AndRC2-CBC'],
  ['1.2.840.113549.1.9.16.3.9', 'PWRI-KEK'],
  ['1.2.840.113549.3.4', 'RC4'],
]);

export function unsupportedAlgorithm(what: string, oid: string): PkiError {
  const name = unsupportedAlgorithmNames.get(oid);
  const algorithm = name === undefined ? `an unknown algorithm (OID ${oid})` : `${name} (OID ${oid})`;
  return new PkiError(UnsupportedAlgorithm, `${what} uses ${algorithm}, which is not supported`);
}

/** An iteration count as read; its cost is the decode budget's business. */
export function checkIterations(iterations: number, what: string): number {
  if (iterations < 1) throw new DerError(`${what}: an iteration count below 1`);
  return iterations;
}

function keyLengthMismatch(what: string): PkiError {
  return new PkiError(PfxMalformed, `the key length stated for ${what} does not fit its cipher`);
}

// --- Ciphers: raw decryption and padding removal; undefined means the password was wrong.

type CipherDecrypt = (key: Uint8Array, iv: Uint8Array, data: Uint8Array) => Uint8Array | undefined;

function nodeCbc(nodeName: string): CipherDecrypt {
  return (key, iv, data) => {
    try {
      const decipher = createDecipheriv(nodeName, key, iv);
      return Buffer.concat([decipher.update(data), decipher.final()]);
    } catch {
      return undefined; // "bad decrypt" (padding) or "wrong final block length"
    }
  };
}

function withPkcs7Padding(decrypt: (key: Uint8Array, iv: Uint8Array, data: Uint8Array) => Uint8Array | undefined): CipherDecrypt {
  return (key, iv, data) => {
    const padded = decrypt(key, iv, data);
    return padded === undefined ? undefined : removePkcs7Padding(padded, 8);
  };
}

function rc2Cbc(effectiveBits: number): CipherDecrypt {
  return withPkcs7Padding((key, iv, data) => rc2CbcDecrypt(key, effectiveBits, iv, data));
}

const cast5Cbc: CipherDecrypt = withPkcs7Padding(cast5CbcDecrypt);

const rc4Stream: CipherDecrypt = (key, _iv, data) => rc4(key, data);

function removePkcs7Padding(padded: Uint8Array, blockLength: number): Uint8Array | undefined {
  const count = padded[padded.length - 1];
  if (count === undefined || count < 1 || count > blockLength || padded.length % blockLength !== 0) return undefined;
  for (let i = padded.length - count; i < padded.length; i++) if (padded[i] !== count) return undefined;
  return padded.subarray(0, padded.length - count);
}

/**
 * PKCS#12 PBE and PKCS#8 plaintexts are DER. A wrong password that happens to leave valid
 * padding (1 in 256 for CBC, always for RC4) is caught here: the odds that its garbage is
 * also a well-formed structure of exactly the right length are negligible.
 */
function checkedPlaintext(plaintext: Uint8Array | undefined): Uint8Array {
  if (plaintext === undefined) throw new DecryptionFailed();
  try {
    childrenOf(readWhole(plaintext));
  } catch (error) {
    if (error instanceof PkiError) throw error; // the plaintext is a structure, one beyond a limit
    throw new DecryptionFailed();
  }
  return plaintext;
}

// --- PKCS#12 PBE (RFC 7292 Appendix C): key and IV from the PKCS#12 KDF with SHA-1.

interface Pkcs12PbeCipher {
  readonly keyLength: number;
  readonly ivLength: number;
  readonly decrypt: CipherDecrypt;
}

const pkcs12PbeCiphers: ReadonlyMap<string, Pkcs12PbeCipher> = new Map([
  ['1.2.840.113549.1.12.1.1', { keyLength: 16, ivLength: 0, decrypt: rc4Stream }], // pbeWithSHAAnd128BitRC4
  ['1.2.840.113549.1.12.1.2', { keyLength: 5, ivLength: 0, decrypt: rc4Stream }], // pbeWithSHAAnd40BitRC4
  ['1.2.840.113549.1.12.1.3', { keyLength: 24, ivLength: 8, decrypt: nodeCbc('des-ede3-cbc') }], // pbeWithSHAAnd3-KeyTripleDES-CBC
  ['1.2.840.113549.1.12.1.4', { keyLength: 16, ivLength: 8, decrypt: nodeCbc('des-ede-cbc') }], // pbeWithSHAAnd2-KeyTripleDES-CBC
  ['1.2.840.113549.1.12.1.5', { keyLength: 16, ivLength: 8, decrypt: rc2Cbc(128) }], // pbeWithSHAAnd128BitRC2-CBC
  ['1.2.840.113549.1.12.1.6', { keyLength: 5, ivLength: 8, decrypt: rc2Cbc(40) }], // pbeWithSHAAnd40BitRC2-CBC
]);

function pkcs12PbeDecryptor(cipher: Pkcs12PbeCipher, parameters: DerElement | undefined, what: string): PbeDecryptor {
  // pkcs-12PbeParams ::= SEQUENCE { salt OCTET STRING, iterations INTEGER }
  const [salt, iterations] = sequenceOf(parameters, `${what}: PBE parameters`);
  const saltBytes = readOctetString(salt, `${what}: PBE salt`);
  const iterationCount = checkIterations(readSmallInteger(iterations, `${what}: PBE iterations`), what);
  const u = sha1.outputLength;
  return {
    passwordKind: 'pkcs12',
    cost: { work: kdfCost(iterationCount, cipher.keyLength, u).work + kdfCost(iterationCount, cipher.ivLength, u).work, scryptMemory: 0 },
    decrypt: (ciphertext, password) => {
      const derive = (purpose: Pkcs12Purpose, length: number) =>
        pkcs12Kdf({ digest: sha1, password, salt: saltBytes, purpose, iterations: iterationCount, length });
      const key = derive(Pkcs12Purpose.Key, cipher.keyLength);
      const iv = cipher.ivLength > 0 ? derive(Pkcs12Purpose.Iv, cipher.ivLength) : new Uint8Array(0);
      return checkedPlaintext(cipher.decrypt(key, iv, ciphertext));
    },
  };
}

// --- PBES2 (RFC 8018 6.2): a key derivation function and an encryption scheme, each by OID.

interface PreparedCipher {
  /** The key length the cipher takes when the KDF does not say. */
  readonly keyLength: number;
  /** For variable-length ciphers, the range a stated length must fall in; fixed ones have min = max. */
  readonly minKeyLength: number;
  readonly maxKeyLength: number;
  decrypt(key: Uint8Array, data: Uint8Array): Uint8Array | undefined;
}

type Pbes2Cipher = (parameters: DerElement | undefined, what: string) => PreparedCipher;

/** CBC ciphers whose parameters are just the IV. */
function cbcWithIv(nodeName: string, keyLength: number, blockLength: number): Pbes2Cipher {
  const decrypt = nodeCbc(nodeName);
  return (parameters, what) => {
    const iv = readOctetString(parameters, `${what}: ${nodeName} IV`);
    if (iv.length !== blockLength) throw new DerError(`${what}: a ${nodeName} IV of the wrong length`);
    return { keyLength, minKeyLength: keyLength, maxKeyLength: keyLength, decrypt: (key, data) => decrypt(key, iv, data) };
  };
}

// RFC 8018 B.2.3: rc2ParameterVersion encodes the effective key bits.
const rc2BitsByVersion: ReadonlyMap<number, number> = new Map([
  [160, 40],
  [120, 64],
  [58, 128],
]);

const rc2CbcCipher: Pbes2Cipher = (parameters, what) => {
  // RC2-CBC-Parameter ::= SEQUENCE { rc2ParameterVersion INTEGER OPTIONAL, iv OCTET STRING }
  const fields = sequenceOf(parameters, `${what}: RC2-CBC parameters`);
  const version = fields[0]?.tag === Tag.Integer ? readSmallInteger(fields.shift(), `${what}: RC2 version`) : undefined;
  const effectiveBits = version === undefined ? 32 : (rc2BitsByVersion.get(version) ?? version);
  if (effectiveBits < 8 || effectiveBits > 1024) throw new DerError(`${what}: an RC2 parameter version out of range`);
  const iv = readOctetString(fields[0], `${what}: RC2-CBC IV`);
  const decrypt = rc2Cbc(effectiveBits);
  // RC2 takes keys of 1 to 128 bytes (RFC 2268).
  return { keyLength: Math.ceil(effectiveBits / 8), minKeyLength: 1, maxKeyLength: 128, decrypt: (key, data) => decrypt(key, iv, data) };
};

const cast5CbcCipher: Pbes2Cipher = (parameters, what) => {
  // Cast5CBCParameters ::= SEQUENCE { iv OCTET STRING DEFAULT 0, keyLength INTEGER } (RFC 2984);
  // Bouncy Castle leaves keyLength out, and some writers give the IV alone.
  const fields = parameters?.tag === Tag.Sequence ? sequenceOf(parameters, `${what}: CAST5-CBC parameters`) : parameters === undefined ? [] : [parameters];
  const ivField = fields[0]?.tag === Tag.Integer ? undefined : fields.shift();
  const iv = ivField === undefined ? new Uint8Array(8) : readOctetString(ivField, `${what}: CAST5-CBC IV`);
  if (iv.length !== 8) throw new DerError(`${what}: a CAST5-CBC IV of the wrong length`);
  const bits = fields[0] === undefined ? 128 : readSmallInteger(fields[0], `${what}: CAST5 key length`);
  if (bits < 40 || bits > 128 || bits % 8 !== 0) throw keyLengthMismatch(what);
  return { keyLength: bits / 8, minKeyLength: 5, maxKeyLength: 16, decrypt: (key, data) => cast5Cbc(key, iv, data) };
};

const pbes2Ciphers: ReadonlyMap<string, Pbes2Cipher> = new Map([
  ['2.16.840.1.101.3.4.1.2', cbcWithIv('aes-128-cbc', 16, 16)],
  ['2.16.840.1.101.3.4.1.22', cbcWithIv('aes-192-cbc', 24, 16)],
  ['2.16.840.1.101.3.4.1.42', cbcWithIv('aes-256-cbc', 32, 16)],
  ['1.2.840.113549.3.7', cbcWithIv('des-ede3-cbc', 24, 8)],
  ['1.2.392.200011.61.1.1.1.2', cbcWithIv('camellia-128-cbc', 16, 16)],
  ['1.2.392.200011.61.1.1.1.3', cbcWithIv('camellia-192-cbc', 24, 16)],
  ['1.2.392.200011.61.1.1.1.4', cbcWithIv('camellia-256-cbc', 32, 16)],
  ['1.2.410.200046.1.1.2', cbcWithIv('aria-128-cbc', 16, 16)],
  ['1.2.410.200046.1.1.7', cbcWithIv('aria-192-cbc', 24, 16)],
  ['1.2.410.200046.1.1.12', cbcWithIv('aria-256-cbc', 32, 16)],
  ['1.2.156.10197.1.104.2', cbcWithIv('sm4-cbc', 16, 16)],
  ['1.2.840.113549.3.2', rc2CbcCipher],
  ['1.2.840.113533.7.66.10', cast5CbcCipher],
]);

interface PreparedKdf {
  /** The key length the parameters state, if they do. */
  readonly keyLength: number | undefined;
  /** What deriving `keyLength` bytes costs. */
  cost(keyLength: number): KdfCost;
  derive(password: Uint8Array, keyLength: number): Uint8Array;
}

type Pbes2Kdf = (parameters: DerElement | undefined, what: string) => PreparedKdf;

export interface Pbkdf2Parameters {
  readonly salt: Uint8Array;
  readonly iterations: number;
  readonly keyLength: number | undefined;
  readonly prf: Digest;
}

export function readPbkdf2Parameters(parameters: DerElement | undefined, what: string): Pbkdf2Parameters {
  // PBKDF2-params ::= SEQUENCE { salt CHOICE { specified OCTET STRING, otherSource AlgorithmIdentifier },
  //   iterationCount INTEGER, keyLength INTEGER OPTIONAL, prf AlgorithmIdentifier DEFAULT hmacWithSHA1 }
  const [salt, iterations, ...optional] = sequenceOf(parameters, `${what}: PBKDF2 parameters`);
  if (salt?.tag === Tag.Sequence) {
    throw unsupportedAlgorithm(`the key derivation for ${what}`, readAlgorithmIdentifier(salt, `${what}: PBKDF2 salt source`).oid);
  }
  let keyLength: number | undefined;
  let prf = defaultPbkdf2Prf;
  for (const field of optional) {
    if (field.tag === Tag.Integer) {
      keyLength = readSmallInteger(field, `${what}: PBKDF2 key length`);
    } else {
      const algorithm = readAlgorithmIdentifier(field, `${what}: PBKDF2 PRF`);
      prf = hmacDigestsByOid.get(algorithm.oid) ?? throwError(unsupportedAlgorithm(`the key derivation for ${what}`, algorithm.oid));
    }
  }
  return {
    salt: readOctetString(salt, `${what}: PBKDF2 salt`),
    iterations: checkIterations(readSmallInteger(iterations, `${what}: PBKDF2 iterations`), what),
    keyLength,
    prf,
  };
}

export function pbkdf2Cost(parameters: Pbkdf2Parameters, keyLength: number): KdfCost {
  return kdfCost(parameters.iterations, keyLength, parameters.prf.outputLength);
}

/** PBKDF2 on this thread. The caller has charged pbkdf2Cost and bounded keyLength. */
export function pbkdf2Key(parameters: Pbkdf2Parameters, password: Uint8Array, keyLength: number): Uint8Array {
  return pbkdf2Sync(password, parameters.salt, parameters.iterations, keyLength, parameters.prf.name);
}

const pbkdf2Kdf: Pbes2Kdf = (parameters, what) => {
  const pbkdf2Parameters = readPbkdf2Parameters(parameters, what);
  return {
    keyLength: pbkdf2Parameters.keyLength,
    cost: (keyLength) => pbkdf2Cost(pbkdf2Parameters, keyLength),
    derive: (password, keyLength) => pbkdf2Key(pbkdf2Parameters, password, keyLength),
  };
};

const scryptKdf: Pbes2Kdf = (parameters, what) => {
  // scrypt-params ::= SEQUENCE { salt OCTET STRING, costParameter INTEGER, blockSize INTEGER,
  //   parallelizationParameter INTEGER, keyLength INTEGER OPTIONAL } (RFC 7914 section 7)
  const [salt, cost, blockSize, parallelization, keyLength] = sequenceOf(parameters, `${what}: scrypt parameters`);
  const N = readSmallInteger(cost, `${what}: scrypt cost`);
  const r = readSmallInteger(blockSize, `${what}: scrypt block size`);
  const p = readSmallInteger(parallelization, `${what}: scrypt parallelization`);
  if (N < 2 || !Number.isInteger(Math.log2(N)) || r < 1 || p < 1) {
    throw new DerError(`${what}: scrypt parameters out of range`);
  }
  // RFC 7914: ROMix holds 128·r·N bytes; each of the 2·N·p BlockMix calls runs 2·r Salsa20/8
  // cores, each about as costly as one hash block.
  const memory = 128 * N * r + 128 * r * p;
  const saltBytes = readOctetString(salt, `${what}: scrypt salt`);
  return {
    keyLength: keyLength === undefined ? undefined : readSmallInteger(keyLength, `${what}: scrypt key length`),
    cost: () => ({ work: 4 * N * r * p, scryptMemory: memory }),
    derive: (password, length) => {
      try {
        return scryptSync(password, saltBytes, length, { N, r, p, maxmem: memory + 1024 * 1024 });
      } catch {
        throw new PkiError(PfxMalformed, `the scrypt parameters for ${what} are ones scrypt refuses`);
      }
    },
  };
};

const pbes2Kdfs: ReadonlyMap<string, Pbes2Kdf> = new Map([
  [PBKDF2, pbkdf2Kdf],
  [SCRYPT, scryptKdf],
]);

function pbes2Decryptor(parameters: DerElement | undefined, what: string): PbeDecryptor {
  // PBES2-params ::= SEQUENCE { keyDerivationFunc AlgorithmIdentifier, encryptionScheme AlgorithmIdentifier }
  const [kdfField, schemeField] = sequenceOf(parameters, `${what}: PBES2 parameters`);
  const kdfAlgorithm = readAlgorithmIdentifier(kdfField, `${what}: PBES2 key derivation`);
  const schemeAlgorithm = readAlgorithmIdentifier(schemeField, `${what}: PBES2 encryption scheme`);
  const prepareKdf = pbes2Kdfs.get(kdfAlgorithm.oid) ?? throwError(unsupportedAlgorithm(`the key derivation for ${what}`, kdfAlgorithm.oid));
  const prepareCipher = pbes2Ciphers.get(schemeAlgorithm.oid) ?? throwError(unsupportedAlgorithm(`the encryption of ${what}`, schemeAlgorithm.oid));
  const kdf = prepareKdf(kdfAlgorithm.parameters, what);
  const cipher = prepareCipher(schemeAlgorithm.parameters, what);
  // The key length is the file's to state, and it sizes the derivation's output: it must
  // fit the cipher, or a 1 KB file could ask PBKDF2 for a 2 GiB key.
  const keyLength = kdf.keyLength ?? cipher.keyLength;
  if (keyLength < cipher.minKeyLength || keyLength > cipher.maxKeyLength) throw keyLengthMismatch(what);
  return {
    passwordKind: 'pbkdf2',
    cost: kdf.cost(keyLength),
    decrypt: (ciphertext, password) => checkedPlaintext(cipher.decrypt(kdf.derive(password, keyLength), ciphertext)),
  };
}

/**
 * A decryptor for the given algorithm. Checks the algorithm and its parameters now, so an
 * unsupported or malformed one is reported before any password work; `what` names the
 * encrypted thing for messages ("the certificates", "the private key").
 */
export function pbeDecryptor(algorithm: AlgorithmIdentifier, what: string): PbeDecryptor {
  const pkcs12Cipher = pkcs12PbeCiphers.get(algorithm.oid);
  if (pkcs12Cipher !== undefined) return pkcs12PbeDecryptor(pkcs12Cipher, algorithm.parameters, what);
  if (algorithm.oid === PBES2) return pbes2Decryptor(algorithm.parameters, what);
  throw unsupportedAlgorithm(`the encryption of ${what}`, algorithm.oid);
}

/** A PKCS#8 EncryptedPrivateKeyInfo (a shrouded key bag, or an ENCRYPTED PRIVATE KEY PEM): its decryptor and its ciphertext. */
export interface EncryptedPrivateKey {
  readonly decryptor: PbeDecryptor;
  readonly ciphertext: Uint8Array;
}

export function readEncryptedPrivateKey(encryptedPrivateKeyInfo: DerElement, what: string): EncryptedPrivateKey {
  // EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm AlgorithmIdentifier, encryptedData OCTET STRING }
  const [algorithm, encryptedData] = sequenceOf(encryptedPrivateKeyInfo, `${what}: EncryptedPrivateKeyInfo`);
  const decryptor = pbeDecryptor(readAlgorithmIdentifier(algorithm, `${what}: encryption algorithm`), what);
  return { decryptor, ciphertext: readOctetString(encryptedData, `${what}: encrypted data`) };
}

/**
 * Decrypts with each encoding of the password the decryptor takes, the one that worked last
 * first; undefined when none does. The caller has charged the budget for every attempt.
 */
export function decryptWithAnyForm(decryptor: PbeDecryptor, ciphertext: Uint8Array, chooser: PasswordChooser): Uint8Array | undefined {
  return chooser.first(decryptor.passwordKind, (password) => {
    try {
      return decryptor.decrypt(ciphertext, password);
    } catch (error) {
      if (error instanceof DecryptionFailed) return undefined;
      throw error;
    }
  });
}

function throwError(error: Error): never {
  throw error;
}
