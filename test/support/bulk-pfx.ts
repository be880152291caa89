import {
  X509Certificate,
  createCipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  hash,
  pbkdf2Sync,
  randomBytes,
  sign,
  type KeyObject,
} from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import forge from 'node-forge';

// Thousands of distinct client certificates in PFX files, for benches that need a Secret
// per binding at 10,000 bindings. PartnerPki + toPfx (the real `openssl pkcs12 -export`)
// costs ~30 ms a file; this costs a few, because every cryptographic step is node:crypto:
// the certificate's TBS is built with node-forge and signed with crypto.sign, and the
// PKCS#12 container is assembled with forge's ASN.1 writer around node:crypto's PBKDF2,
// AES and HMAC. The container is what OpenSSL 3 writes by default: both bags encrypted
// with PBES2 (PBKDF2 with HMAC-SHA256, 2048 iterations, AES-256-CBC), each with a salt of
// its own, and a SHA-256 MAC over them; so the controller decodes it at the same cost as a
// partner's file. The clients share one RSA key (distinct certificates, serials and CNs).

const { asn1 } = forge;
const oids = {
  data: '1.2.840.113549.1.7.1',
  encryptedData: '1.2.840.113549.1.7.6',
  pkcs8ShroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  localKeyId: '1.2.840.113549.1.9.21',
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  hmacWithSha256: '1.2.840.113549.2.9',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
  sha256: '2.16.840.1.101.3.4.2.1',
} as const;
/** OpenSSL 3's defaults for `pkcs12 -export`. */
const iterations = 2048;
const saltBytes = 8;

type Node = forge.asn1.Asn1;
/** forge builds a certificate's TBS with this; @types/node-forge does not declare it. */
const getTBSCertificate = (forge.pki as typeof forge.pki & { getTBSCertificate(cert: forge.pki.Certificate): Node }).getTBSCertificate;
const universal = (type: number, constructed: boolean, value: Node[] | string): Node => asn1.create(asn1.Class.UNIVERSAL, type, constructed, value);
const sequence = (...items: Node[]): Node => universal(asn1.Type.SEQUENCE, true, items);
const set = (...items: Node[]): Node => universal(asn1.Type.SET, true, items);
const oid = (value: string): Node => universal(asn1.Type.OID, false, asn1.oidToDer(value).getBytes());
const octets = (bytes: Buffer): Node => universal(asn1.Type.OCTETSTRING, false, bytes.toString('binary'));
const integer = (value: number): Node => universal(asn1.Type.INTEGER, false, asn1.integerToDer(value).getBytes());
const explicit0 = (inner: Node): Node => asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [inner]);
const der = (node: Node): Buffer => Buffer.from(asn1.toDer(node).getBytes(), 'binary');

/** PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) as OpenSSL 3 writes it: its AlgorithmIdentifier and the ciphertext. */
function pbes2Encrypt(plain: Buffer, password: Buffer): { algorithm: Node; ciphertext: Buffer } {
  const salt = randomBytes(saltBytes);
  const iv = randomBytes(16);
  const key = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const cipher = createCipheriv('aes-256-cbc', key, iv);
  const ciphertext = Buffer.concat([cipher.update(plain), cipher.final()]);
  const kdfParams = sequence(octets(salt), integer(iterations), sequence(oid(oids.hmacWithSha256), universal(asn1.Type.NULL, false, '')));
  const algorithm = sequence(oid(oids.pbes2), sequence(sequence(oid(oids.pbkdf2), kdfParams), sequence(oid(oids.aes256Cbc), octets(iv))));
  return { algorithm, ciphertext };
}

/** RFC 7292 appendix B.2 with SHA-256, for the MAC key (ID 3): one 32-byte block, which is all a SHA-256 MAC needs. */
function pkcs12MacKey(password: string, salt: Buffer): Buffer {
  const v = 64;
  const fill = (bytes: Buffer): Buffer => (bytes.length === 0 ? bytes : Buffer.alloc(v * Math.ceil(bytes.length / v), bytes));
  // The password as a BMPString with its two-byte terminator.
  const bmp = Buffer.from(`${password}\0`, 'utf16le').swap16();
  let block = Buffer.concat([Buffer.alloc(v, 3), fill(salt), fill(bmp)]);
  for (let i = 0; i < iterations; i++) block = hash('sha256', block, 'buffer');
  return block;
}

function safeBag(bagId: string, value: Node, localKeyId: Buffer): Node {
  return sequence(oid(bagId), explicit0(value), set(sequence(oid(oids.localKeyId), set(octets(localKeyId)))));
}

export interface BulkIdentity {
  cn: string;
  /** Lowercase hex without leading zeros, as status reports it. */
  serial: string;
  pfx: Buffer;
}

/** What a BulkPfxIssuer is made of, as PEM: to keep a generated set on disk and issue more from the same CA later. */
export interface BulkPfxIssuerState {
  caCertPem: string;
  caKeyPem: string;
  clientKeyPem: string;
}

/**
 * A CA that issues client certificates in OpenSSL 3 default PFX files, a few milliseconds
 * each. Give its caCertPem to the partner as the client CA it trusts.
 */
export class BulkPfxIssuer {
  readonly state: BulkPfxIssuerState;
  readonly #caKey: KeyObject;
  readonly #caSubject: forge.pki.CertificateField[];
  readonly #authorityKeyId: string;
  readonly #clientPublicKey: forge.pki.PublicKey;
  /** The shared client key as PKCS#8 DER: encrypted anew, with a salt of its own, into every file. */
  readonly #clientKeyPkcs8: Buffer;

  constructor(state?: BulkPfxIssuerState, name = 'Bulk Partner CA') {
    const rsaPem = (): string => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const caKeyPem = state?.caKeyPem ?? rsaPem();
    const clientKeyPem = state?.clientKeyPem ?? rsaPem();
    this.#caKey = createPrivateKey(caKeyPem);
    this.#caSubject = [
      { name: 'commonName', value: name },
      { name: 'organizationName', value: 'Partner' },
    ];
    const caPublicKey = forge.pki.publicKeyFromPem(createPublicKey(this.#caKey).export({ type: 'spki', format: 'pem' }).toString());
    // As forge's subjectKeyIdentifier extension computes the CA's: SHA-1 of its RSAPublicKey.
    this.#authorityKeyId = forge.pki.getPublicKeyFingerprint(caPublicKey).getBytes();
    const caCertPem =
      state?.caCertPem ??
      new X509Certificate(
        this.#sign(caPublicKey, this.#caSubject, randomSerial(), 10 * 365, [
          { name: 'basicConstraints', cA: true, critical: true },
          { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
          { name: 'subjectKeyIdentifier' },
        ]),
      ).toString();
    const clientKey = createPrivateKey(clientKeyPem);
    this.#clientPublicKey = forge.pki.publicKeyFromPem(createPublicKey(clientKey).export({ type: 'spki', format: 'pem' }).toString());
    this.#clientKeyPkcs8 = clientKey.export({ type: 'pkcs8', format: 'der' });
    this.state = { caCertPem, caKeyPem, clientKeyPem };
  }

  get caCertPem(): string {
    return this.state.caCertPem;
  }

  #sign(publicKey: forge.pki.PublicKey, subject: forge.pki.CertificateField[], serial: string, days: number, extensions: object[]): Buffer {
    const cert = forge.pki.createCertificate();
    cert.publicKey = publicKey;
    cert.serialNumber = serial;
    cert.validity.notBefore = new Date(Date.now() - 3_600_000);
    cert.validity.notAfter = new Date(Date.now() + days * 86_400_000);
    cert.setSubject(subject);
    cert.setIssuer(this.#caSubject);
    cert.setExtensions(extensions);
    // What cert.sign would do, with the digest and RSA in node:crypto instead of forge's JavaScript.
    cert.signatureOid = cert.siginfo.algorithmOid = forge.pki.oids.sha256WithRSAEncryption!;
    const tbs = getTBSCertificate(cert);
    (cert as forge.pki.Certificate & { tbsCertificate: Node }).tbsCertificate = tbs;
    cert.signature = sign('sha256', der(tbs), this.#caKey).toString('binary');
    return der(forge.pki.certificateToAsn1(cert));
  }

  /** A new client certificate for `cn` (a fresh random serial), in a PFX under `password`. */
  issue(cn: string, password: string): BulkIdentity {
    const serial = randomSerial();
    const cert = this.#sign(
      this.#clientPublicKey,
      [
        { name: 'commonName', value: cn },
        { name: 'organizationName', value: 'Acme' },
      ],
      serial,
      2 * 365,
      [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', clientAuth: true },
        { name: 'authorityKeyIdentifier', keyIdentifier: this.#authorityKeyId },
      ],
    );
    return { cn, serial, pfx: this.#pfx(cert, password) };
  }

  #pfx(certDer: Buffer, password: string): Buffer {
    // OpenSSL's localKeyId: the SHA-1 of the certificate, on both bags.
    const localKeyId = createHash('sha1').update(certDer).digest();
    const passwordBytes = Buffer.from(password, 'utf8');
    const certSafe = pbes2Encrypt(
      der(sequence(safeBag(oids.certBag, sequence(oid(oids.x509Certificate), explicit0(octets(certDer))), localKeyId))),
      passwordBytes,
    );
    const key = pbes2Encrypt(this.#clientKeyPkcs8, passwordBytes);
    const keySafe = sequence(safeBag(oids.pkcs8ShroudedKeyBag, sequence(key.algorithm, octets(key.ciphertext)), localKeyId));
    const authSafe = der(
      sequence(
        sequence(
          oid(oids.encryptedData),
          explicit0(
            sequence(
              integer(0),
              sequence(oid(oids.data), certSafe.algorithm, asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, false, certSafe.ciphertext.toString('binary'))),
            ),
          ),
        ),
        sequence(oid(oids.data), explicit0(octets(der(keySafe)))),
      ),
    );
    const macSalt = randomBytes(saltBytes);
    const mac = createHmac('sha256', pkcs12MacKey(password, macSalt)).update(authSafe).digest();
    return der(
      sequence(
        integer(3),
        sequence(oid(oids.data), explicit0(octets(authSafe))),
        sequence(sequence(sequence(oid(oids.sha256), universal(asn1.Type.NULL, false, '')), octets(mac)), octets(macSalt), integer(iterations)),
      ),
    );
  }
}

function randomSerial(): string {
  // Positive, no leading zero: what a CA writes and what status shows.
  return `1${randomBytes(8).toString('hex')}`;
}

export interface BulkPfxSet {
  issuer: BulkPfxIssuer;
  identities: BulkIdentity[];
  /** Where the set is kept. */
  directory: string;
  /** How long generating it took, or undefined when it was read from the cache. */
  generatedMs: number | undefined;
}

/** Bump when what a set holds changes, so old caches are not read. */
const formatVersion = 1;
/** A cached set older than this is made again: its certificates should stay far from expiry warnings. */
const maxAgeMs = 30 * 86_400_000;

/**
 * `count` identities named `${cnPrefix}${i}`, made once and kept under
 * `$MTLS_EGRESS_CACHE/<purpose>/<hash of the parameters>/` (default ~/.cache/mtls-egress),
 * outside the repository, so a rerun reads them back in well under a second. A set that is
 * missing, unreadable or older than 30 days is generated again.
 */
export function cachedPfxSet(options: { purpose: string; count: number; password: string; cnPrefix: string }): BulkPfxSet {
  const key = createHash('sha256')
    .update(JSON.stringify({ formatVersion, count: options.count, password: options.password, cnPrefix: options.cnPrefix }))
    .digest('hex')
    .slice(0, 16);
  const directory = join(process.env.MTLS_EGRESS_CACHE ?? join(homedir(), '.cache/mtls-egress'), options.purpose, key);
  const indexPath = join(directory, 'index.json');
  const blobPath = join(directory, 'pfx.bin');
  if (existsSync(indexPath) && existsSync(blobPath)) {
    try {
      const index = JSON.parse(readFileSync(indexPath, 'utf8')) as {
        createdAt: number;
        issuer: BulkPfxIssuerState;
        identities: Array<{ cn: string; serial: string; bytes: number }>;
      };
      if (Date.now() - index.createdAt < maxAgeMs && index.identities.length === options.count) {
        const blob = readFileSync(blobPath);
        let offset = 0;
        const identities = index.identities.map(({ cn, serial, bytes }) => ({ cn, serial, pfx: blob.subarray(offset, (offset += bytes)) }));
        if (offset === blob.length) return { issuer: new BulkPfxIssuer(index.issuer), identities, directory, generatedMs: undefined };
      }
    } catch {
      // unreadable: made again below
    }
  }
  const started = performance.now();
  const issuer = new BulkPfxIssuer();
  const identities = Array.from({ length: options.count }, (_, i) => issuer.issue(`${options.cnPrefix}${i}`, options.password));
  const generatedMs = performance.now() - started;
  // Written beside, then renamed into place: a run killed mid-write leaves no half a set.
  const partial = `${directory}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true, mode: 0o700 });
  writeFileSync(join(partial, 'pfx.bin'), Buffer.concat(identities.map((identity) => identity.pfx)));
  writeFileSync(
    join(partial, 'index.json'),
    JSON.stringify({ createdAt: Date.now(), issuer: issuer.state, identities: identities.map(({ cn, serial, pfx }) => ({ cn, serial, bytes: pfx.length })) }),
    { mode: 0o600 },
  );
  rmSync(directory, { recursive: true, force: true });
  renameSync(partial, directory);
  return { issuer, identities, directory, generatedMs };
}
