import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';

export interface Issued {
  certPem: string;
  keyPem: string;
  serial: string;
}

export interface CertOptions {
  cn: string;
  notBefore?: Date;
  notAfter?: Date;
  /** Lowercase hex without leading zeros, as status reports it. */
  serial?: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  /** Reuse a key (fast bulk fixtures); default a fresh RSA-2048 key. */
  keyPem?: string;
}

function rsaKeyPem(): string {
  return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

function randomSerial(): string {
  // Positive, no leading zero: what a CA writes and what status shows.
  return `1${randomBytes(8).toString('hex')}`;
}

/**
 * A partner's PKI for tests that need certificates with an exact validity window (a
 * certificate that expires in 20 seconds) or a known serial, which OpenSSL 3.0's CLI
 * cannot set. The certificates are built with node-forge; PFX files are always made by
 * the real `openssl pkcs12 -export`.
 */
export class PartnerPki {
  readonly ca: Issued;
  readonly #caCert: forge.pki.Certificate;
  readonly #caKey: forge.pki.rsa.PrivateKey;

  constructor(name = 'Partner Test CA') {
    const keyPem = rsaKeyPem();
    this.#caKey = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
    const cert = forge.pki.createCertificate();
    cert.publicKey = forge.pki.setRsaPublicKey(this.#caKey.n, this.#caKey.e);
    cert.serialNumber = randomSerial();
    cert.validity.notBefore = new Date(Date.now() - 86_400_000);
    cert.validity.notAfter = new Date(Date.now() + 10 * 365 * 86_400_000);
    const subject = [
      { name: 'commonName', value: name },
      { name: 'organizationName', value: 'Partner' },
    ];
    cert.setSubject(subject);
    cert.setIssuer(subject);
    cert.setExtensions([
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      { name: 'subjectKeyIdentifier' },
    ]);
    cert.sign(this.#caKey, forge.md.sha256.create());
    this.#caCert = cert;
    this.ca = { certPem: forge.pki.certificateToPem(cert), keyPem, serial: cert.serialNumber };
  }

  #issue(options: CertOptions, usage: 'client' | 'server'): Issued {
    const keyPem = options.keyPem ?? rsaKeyPem();
    const key = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
    const cert = forge.pki.createCertificate();
    cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
    cert.serialNumber = options.serial ?? randomSerial();
    cert.validity.notBefore = options.notBefore ?? new Date(Date.now() - 3_600_000);
    cert.validity.notAfter = options.notAfter ?? new Date(Date.now() + 365 * 86_400_000);
    cert.setSubject([
      { name: 'commonName', value: options.cn },
      { name: 'organizationName', value: 'Acme' },
    ]);
    cert.setIssuer(this.#caCert.subject.attributes);
    const altNames = [...(options.dnsNames ?? []).map((value) => ({ type: 2, value })), ...(options.ipAddresses ?? []).map((ip) => ({ type: 7, ip }))];
    cert.setExtensions([
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', clientAuth: usage === 'client', serverAuth: usage === 'server' },
      ...(altNames.length ? [{ name: 'subjectAltName', altNames }] : []),
      { name: 'authorityKeyIdentifier', keyIdentifier: this.#caCert.generateSubjectKeyIdentifier().getBytes() },
    ]);
    cert.sign(this.#caKey, forge.md.sha256.create());
    return { certPem: forge.pki.certificateToPem(cert), keyPem, serial: cert.serialNumber };
  }

  issueClient(options: CertOptions): Issued {
    return this.#issue(options, 'client');
  }

  issueServer(options: CertOptions): Issued {
    return this.#issue(options, 'server');
  }
}

export function newKeyPem(): string {
  return rsaKeyPem();
}

/** A PFX as partners send it, made by `openssl pkcs12 -export` (OpenSSL 3 defaults unless `legacy`). */
export function toPfx(issued: Issued, options: { password: string; chain?: string[]; legacy?: boolean; name?: string }): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'mtls-egress-pfx-'));
  try {
    writeFileSync(join(dir, 'cert.pem'), issued.certPem);
    writeFileSync(join(dir, 'key.pem'), issued.keyPem, { mode: 0o600 });
    writeFileSync(join(dir, 'chain.pem'), (options.chain ?? []).join(''));
    execFileSync(
      'openssl',
      [
        'pkcs12',
        '-export',
        '-in',
        join(dir, 'cert.pem'),
        '-inkey',
        join(dir, 'key.pem'),
        ...(options.chain?.length ? ['-certfile', join(dir, 'chain.pem')] : []),
        '-name',
        options.name ?? 'client',
        '-passout',
        'env:PFX_PASSWORD',
        '-out',
        join(dir, 'out.p12'),
        ...(options.legacy ? ['-legacy'] : []),
      ],
      { env: { ...process.env, PFX_PASSWORD: options.password }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    return readFileSync(join(dir, 'out.p12'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
