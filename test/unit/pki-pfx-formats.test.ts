import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { decodePfx, certificateChainPem, type DecodedIdentity } from '../../src/pki/index.ts';
import { LEAF_DNS_NAMES, LEAF_URIS, authority, leafCertificate, type KeyKind } from '../fixtures/pfx.ts';
import { formatCases, type FormatCase } from '../fixtures/pki/pfx-cases.ts';

const expectedKeyFacts: Record<KeyKind, Pick<DecodedIdentity['facts'], 'keyAlgorithm' | 'keySize' | 'curve'>> = {
  rsa2048: { keyAlgorithm: 'RSA', keySize: 2048 },
  rsa4096: { keyAlgorithm: 'RSA', keySize: 4096 },
  p256: { keyAlgorithm: 'ECDSA', keySize: 256, curve: 'P-256' },
  p384: { keyAlgorithm: 'ECDSA', keySize: 384, curve: 'P-384' },
  ed25519: { keyAlgorithm: 'Ed25519', keySize: 256 },
};

function fingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

async function assertDecodes(testCase: FormatCase): Promise<void> {
  const { bytes, password } = await testCase.build();
  const identity = await decodePfx(bytes, password);
  const leaf = await leafCertificate({ kind: testCase.key, issuer: testCase.issuer });
  const ca = await authority('default');

  // The leaf is the certificate of the key, whatever its position in the file.
  assert.equal(fingerprint(identity.leaf.pem), fingerprint(leaf.certPem));
  assert.equal(identity.privateKey.reveal(), createPrivateKey(leaf.keyPem).export({ type: 'pkcs8', format: 'pem' }));
  assert.match(identity.privateKey.reveal(), /^-----BEGIN PRIVATE KEY-----\n/);
  assert.deepEqual(
    identity.chain.map(({ pem }) => fingerprint(pem)),
    testCase.chain.map((name) => fingerprint(ca[name].certPem)),
  );

  // Every fact agrees with what `openssl x509` prints for the same certificate.
  const { facts } = identity;
  assert.equal(facts.subject, leaf.expected.subject);
  assert.equal(facts.issuer, leaf.expected.issuer);
  assert.equal(facts.serialNumber, leaf.expected.serialNumber);
  assert.equal(facts.fingerprintSha256, leaf.expected.fingerprintSha256);
  assert.equal(facts.notBefore.getTime(), leaf.expected.notBefore.getTime());
  assert.equal(facts.notAfter.getTime(), leaf.expected.notAfter.getTime());
  assert.deepEqual(facts.dnsNames, LEAF_DNS_NAMES);
  assert.deepEqual(facts.uris, LEAF_URIS);
  assert.deepEqual({ keyAlgorithm: facts.keyAlgorithm, keySize: facts.keySize, curve: facts.curve }, { curve: undefined, ...expectedKeyFacts[testCase.key] });
  assert.equal(facts.chainLength, testCase.chain.length + 1);
  assert.equal(certificateChainPem(identity), [identity.leaf, ...identity.chain].map(({ pem }) => pem).join(''));
}

describe('decodePfx reads every format partners send', () => {
  // Build all fixtures at once: openssl runs in parallel on both cores.
  before(() => Promise.all(formatCases.map((testCase) => testCase.build())));

  for (const testCase of formatCases) {
    test(testCase.name, () => assertDecodes(testCase));
  }
});
