import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { KeyMismatch, NoCertificate, NoPrivateKey, PasswordIncorrect, PfxMalformed, type IdentityReason } from '../../src/api/v1alpha1/reasons.ts';
import { PkiError, decodePem, decodePfx, type DecodedIdentity } from '../../src/pki/index.ts';
import { FIXTURE_PASSWORD, keyFile, opensslPfx, pemPair, type KeyKind, type PemKeyForm } from '../fixtures/pfx.ts';

interface PemCase {
  readonly name: string;
  readonly kind: KeyKind;
  readonly form: PemKeyForm;
  readonly label: RegExp;
}

const cases: readonly PemCase[] = [
  { name: 'RSA PKCS#8', kind: 'rsa2048', form: 'pkcs8', label: /BEGIN PRIVATE KEY/ },
  { name: 'RSA PKCS#1', kind: 'rsa2048', form: 'traditional', label: /BEGIN RSA PRIVATE KEY/ },
  { name: 'EC P-256 SEC1', kind: 'p256', form: 'traditional', label: /BEGIN EC PRIVATE KEY/ },
  { name: 'EC P-384 SEC1 after EC PARAMETERS', kind: 'p384', form: 'ec-with-parameters', label: /BEGIN EC PARAMETERS[\s\S]*BEGIN EC PRIVATE KEY/ },
  { name: 'Ed25519 PKCS#8', kind: 'ed25519', form: 'pkcs8', label: /BEGIN PRIVATE KEY/ },
  ...['hmacWithSHA1', 'hmacWithSHA224', 'hmacWithSHA256', 'hmacWithSHA384', 'hmacWithSHA512', 'hmacWithSHA512-256'].map((prf) => ({
    name: `encrypted PKCS#8, PBES2 AES-256-CBC, PBKDF2 ${prf}`,
    kind: 'rsa2048' as const,
    form: { encrypted: 'pbes2', prf } as const,
    label: /BEGIN ENCRYPTED PRIVATE KEY/,
  })),
  { name: 'encrypted PKCS#8, PBES2 scrypt', kind: 'p256', form: { encrypted: 'scrypt' }, label: /BEGIN ENCRYPTED PRIVATE KEY/ },
  { name: 'encrypted PKCS#8, pbeWithSHAAnd40BitRC2-CBC', kind: 'rsa2048', form: { encrypted: 'pkcs12-rc2-40' }, label: /BEGIN ENCRYPTED PRIVATE KEY/ },
  { name: 'encrypted PKCS#1 (Proc-Type: 4,ENCRYPTED)', kind: 'rsa2048', form: { encrypted: 'traditional-aes256' }, label: /Proc-Type: 4,ENCRYPTED/ },
];

function fingerprints(identity: DecodedIdentity): string[] {
  return [identity.leaf, ...identity.chain].map(({ pem }) => new X509Certificate(pem).fingerprint256);
}

describe('decodePem reads kubernetes.io/tls pairs', () => {
  before(() => Promise.all(cases.map(({ kind, form }) => pemPair({ kind, form }))));

  for (const testCase of cases) {
    test(testCase.name, async () => {
      const pair = await pemPair({ kind: testCase.kind, form: testCase.form });
      assert.match(pair.keyPem, testCase.label);
      const identity = await decodePem(pair.certPem, Buffer.from(pair.keyPem), FIXTURE_PASSWORD);
      // tls.crt holds [int2, leaf, int1]: the leaf is found by key, the chain put in order.
      assert.deepEqual(
        fingerprints(identity),
        [pair.leaf, pair.authority.int2, pair.authority.int1].map(({ certPem }) => new X509Certificate(certPem).fingerprint256),
      );
      assert.equal(identity.privateKey.reveal(), createPrivateKey(pair.leaf.keyPem).export({ type: 'pkcs8', format: 'pem' }));
      assert.equal(identity.facts.subject, pair.leaf.expected.subject);
      assert.equal(identity.facts.chainLength, 3);
    });
  }

  test('a PEM pair and a PFX of the same identity decode to the same result', async () => {
    const pair = await pemPair({ kind: 'p256', form: 'traditional' });
    const pfx = await opensslPfx({ name: 'pfx-ec-p256-int2-chain', key: 'p256', issuer: 'int2', caCertificates: ['int2', 'int1'] });
    const fromPem = await decodePem(pair.certPem, pair.keyPem);
    const fromPfx = await decodePfx(pfx.bytes, pfx.password);
    assert.deepEqual({ ...fromPem, privateKey: fromPem.privateKey.reveal() }, { ...fromPfx, privateKey: fromPfx.privateKey.reveal() });
  });
});

interface PemFailure {
  readonly name: string;
  readonly input: () => Promise<{ cert: string; key: string; password?: string }>;
  readonly reason: IdentityReason;
}

const rsaPair = () => pemPair({ kind: 'rsa2048', form: 'pkcs8' });
const encryptedPair = () => pemPair({ kind: 'rsa2048', form: { encrypted: 'pbes2', prf: 'hmacWithSHA256' } });
const legacyEncryptedPair = () => pemPair({ kind: 'rsa2048', form: { encrypted: 'traditional-aes256' } });

const failures: readonly PemFailure[] = [
  {
    name: 'encrypted PKCS#8 with the wrong password',
    input: async () => ({ cert: (await encryptedPair()).certPem, key: (await encryptedPair()).keyPem, password: 'wrong' }),
    reason: PasswordIncorrect,
  },
  {
    name: 'encrypted PKCS#8 without a password',
    input: async () => ({ cert: (await encryptedPair()).certPem, key: (await encryptedPair()).keyPem }),
    reason: PasswordIncorrect,
  },
  {
    name: 'Proc-Type encrypted key with the wrong password',
    input: async () => ({ cert: (await legacyEncryptedPair()).certPem, key: (await legacyEncryptedPair()).keyPem, password: 'wrong' }),
    reason: PasswordIncorrect,
  },
  {
    name: 'Proc-Type encrypted key without a password',
    input: async () => ({ cert: (await legacyEncryptedPair()).certPem, key: (await legacyEncryptedPair()).keyPem }),
    reason: PasswordIncorrect,
  },
  { name: 'tls.crt empty', input: async () => ({ cert: '', key: (await rsaPair()).keyPem }), reason: NoCertificate },
  {
    name: 'tls.key holds only EC PARAMETERS',
    input: async () => ({
      cert: (await rsaPair()).certPem,
      key: (await pemPair({ kind: 'p256', form: 'ec-with-parameters' })).keyPem.split(/(?=-----BEGIN EC PRIVATE KEY)/)[0]!,
    }),
    reason: NoPrivateKey,
  },
  {
    name: 'key of another certificate',
    input: async () => ({ cert: (await rsaPair()).certPem, key: (await keyFile({ kind: 'rsa2048', label: 'unrelated' })).pem }),
    reason: KeyMismatch,
  },
  { name: 'tls.crt is not PEM', input: async () => ({ cert: 'not a certificate', key: (await rsaPair()).keyPem }), reason: PfxMalformed },
  {
    name: 'a damaged certificate block',
    input: async () => ({
      cert: (await rsaPair()).certPem.replace(/(-----BEGIN CERTIFICATE-----\n)(.{40})/, '$1AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'),
      key: (await rsaPair()).keyPem,
    }),
    reason: PfxMalformed,
  },
  {
    name: 'a damaged key block',
    input: async () => ({ cert: (await rsaPair()).certPem, key: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' }),
    reason: PfxMalformed,
  },
];

describe('decodePem rejects bad pairs with a stable reason', () => {
  for (const failure of failures) {
    test(`${failure.name} → ${failure.reason}`, async () => {
      const { cert, key, password } = await failure.input();
      await assert.rejects(decodePem(cert, key, password), (error: unknown) => error instanceof PkiError && error.reason === failure.reason);
    });
  }
});
