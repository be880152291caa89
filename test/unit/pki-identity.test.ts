import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { describe, test } from 'node:test';
import { rfc4514Name } from '../../src/pki/certificate-facts.ts';
import { assembleIdentity, orderChain } from '../../src/pki/identity.ts';
import { authority, leafCertificate } from '../fixtures/pfx.ts';

const x509 = (pem: string) => new X509Certificate(pem);

async function certificates() {
  const ca = await authority('default');
  const leaf = await leafCertificate({ kind: 'rsa2048', issuer: 'int2' });
  const sameKeyOtherIssuer = await leafCertificate({ kind: 'rsa2048', issuer: 'int1' });
  const unrelated = await leafCertificate({ kind: 'p256', issuer: 'root' });
  return {
    root: x509(ca.root.certPem),
    int1: x509(ca.int1.certPem),
    int2: x509(ca.int2.certPem),
    leaf: x509(leaf.certPem),
    sameKeyOtherIssuer: x509(sameKeyOtherIssuer.certPem),
    unrelated: x509(unrelated.certPem),
    key: createPrivateKey(leaf.keyPem),
  };
}

describe('orderChain follows issuer links from the leaf', () => {
  const orders: readonly { name: string; input: readonly ('root' | 'int1' | 'int2' | 'unrelated')[]; expected: readonly string[] }[] = [
    { name: 'already in order', input: ['int2', 'int1', 'root'], expected: ['int2', 'int1', 'root'] },
    { name: 'reversed', input: ['root', 'int1', 'int2'], expected: ['int2', 'int1', 'root'] },
    { name: 'shuffled, an unrelated certificate left out', input: ['unrelated', 'int1', 'root', 'int2'], expected: ['int2', 'int1', 'root'] },
    { name: 'a gap: int1 missing, so the path ends at int2 and the root is left out', input: ['root', 'int2'], expected: ['int2'] },
    { name: 'nothing but the leaf', input: [], expected: [] },
  ];
  for (const { name, input, expected } of orders) {
    test(name, async () => {
      const certs = await certificates();
      const ordered = orderChain(
        certs.leaf,
        input.map((n) => certs[n]),
      );
      assert.deepEqual(
        ordered.map((c) => c.fingerprint256),
        expected.map((n) => certs[n as keyof typeof certs] as X509Certificate).map((c) => c.fingerprint256),
      );
    });
  }
});

describe('assembleIdentity picks the leaf by key', () => {
  test('two certificates for the same key: the one whose localKeyId matches the key wins, wherever it is', async () => {
    const certs = await certificates();
    const identity = assembleIdentity(
      [
        { certificate: certs.int1 },
        { certificate: certs.sameKeyOtherIssuer, localKeyId: 'aa' },
        { certificate: certs.leaf, localKeyId: 'bb' },
        { certificate: certs.int2 },
      ],
      [{ key: certs.key, localKeyId: 'bb' }],
      'the test input',
    );
    assert.equal(x509(identity.leaf.pem).fingerprint256, certs.leaf.fingerprint256);
    // The other certificate for the same key is not on the path: it is left out.
    assert.deepEqual(
      identity.chain.map(({ pem }) => x509(pem).fingerprint256),
      [certs.int2, certs.int1].map((c) => c.fingerprint256),
    );
  });

  test('a certificate repeated in the file appears once', async () => {
    const certs = await certificates();
    const identity = assembleIdentity(
      [{ certificate: certs.leaf }, { certificate: certs.int2 }, { certificate: certs.leaf }, { certificate: certs.int2 }],
      [{ key: certs.key }],
      'the test input',
    );
    assert.equal(identity.facts.chainLength, 2);
  });
});

describe('rfc4514Name turns node:crypto names into RFC 4514 strings', () => {
  const names: readonly [string, string][] = [
    ['C=DE\nO=Acme\nCN=client', 'CN=client,O=Acme,C=DE'],
    ['O=Acme\\, Inc.\nCN=a \\+ b', 'CN=a \\+ b,O=Acme\\, Inc.'],
    ['O=Acme\nOU=Pay + CN=multi', 'OU=Pay+CN=multi,O=Acme'],
    ['', ''],
  ];
  for (const [nodeName, expected] of names) {
    test(JSON.stringify(expected), () => assert.equal(rfc4514Name(nodeName), expected));
  }
});
