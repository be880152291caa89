import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import forge from 'node-forge';
import { digestsByOid, type Digest } from '../../src/pki/digests.ts';
import { passwordForms } from '../../src/pki/password.ts';
import { Pkcs12Purpose, pkcs12Kdf } from '../../src/pki/pkcs12-kdf.ts';

// node-forge's generateKey is an independent implementation of RFC 7292 Appendix B.2 (pure
// JavaScript, its own hashes): the oracle for ours.

function digest(name: string): Digest {
  const found = [...digestsByOid.values()].find((candidate) => candidate.name === name);
  assert.ok(found, name);
  return found;
}

const forgeDigests: Record<string, () => forge.md.MessageDigest> = {
  sha1: () => forge.md.sha1.create(),
  sha256: () => forge.md.sha256.create(),
  sha384: () => forge.md.sha384.create(),
  sha512: () => forge.md.sha512.create(),
};

interface KdfCase {
  readonly digest: keyof typeof forgeDigests;
  readonly password: string | null;
  readonly saltHex: string;
  readonly purpose: Pkcs12Purpose;
  readonly iterations: number;
  readonly length: number;
}

const cases: readonly KdfCase[] = [
  { digest: 'sha1', password: 'smeg', saltHex: '0a58cf64530d823f', purpose: Pkcs12Purpose.Key, iterations: 1, length: 24 },
  { digest: 'sha1', password: 'smeg', saltHex: '0a58cf64530d823f', purpose: Pkcs12Purpose.Iv, iterations: 1, length: 8 },
  { digest: 'sha1', password: 'queeg', saltHex: '05dec959acff72f7', purpose: Pkcs12Purpose.Key, iterations: 1000, length: 24 },
  { digest: 'sha1', password: 'queeg', saltHex: '05dec959acff72f7', purpose: Pkcs12Purpose.Key, iterations: 1000, length: 5 },
  { digest: 'sha1', password: 'x'.repeat(70), saltHex: 'aa'.repeat(20), purpose: Pkcs12Purpose.Mac, iterations: 2048, length: 20 },
  { digest: 'sha256', password: 'Pässwörd-🔑', saltHex: '0102030405060708', purpose: Pkcs12Purpose.Mac, iterations: 2048, length: 32 },
  // Longer than one hash output: exercises step 6C, the I_j update between blocks.
  { digest: 'sha256', password: 'pw', saltHex: 'ff'.repeat(8), purpose: Pkcs12Purpose.Key, iterations: 3, length: 100 },
  { digest: 'sha384', password: 'pw', saltHex: '00'.repeat(16), purpose: Pkcs12Purpose.Mac, iterations: 2048, length: 48 },
  { digest: 'sha512', password: 'pw', saltHex: '0102', purpose: Pkcs12Purpose.Key, iterations: 5, length: 200 },
  // The two encodings of "no password": an empty string (just the terminator) and none at all.
  { digest: 'sha256', password: '', saltHex: '0102030405060708', purpose: Pkcs12Purpose.Mac, iterations: 2048, length: 32 },
  { digest: 'sha256', password: null, saltHex: '0102030405060708', purpose: Pkcs12Purpose.Mac, iterations: 2048, length: 32 },
];

function pkcs12Password(password: string | null): Uint8Array {
  const [absent, empty] = passwordForms(undefined).pkcs12;
  if (password === null) return absent!;
  if (password === '') return empty!;
  return passwordForms(password).pkcs12[0]!;
}

describe('pkcs12Kdf matches RFC 7292 Appendix B.2 (node-forge as the oracle)', () => {
  for (const c of cases) {
    test(`${c.digest}, id ${c.purpose}, ${c.iterations} iterations, ${c.length} bytes, password ${JSON.stringify(c.password)}`, async () => {
      const salt = Buffer.from(c.saltHex, 'hex');
      const ours = pkcs12Kdf({
        digest: digest(c.digest),
        password: pkcs12Password(c.password),
        salt,
        purpose: c.purpose,
        iterations: c.iterations,
        length: c.length,
      });
      const theirs = forge.pkcs12.generateKey(
        c.password,
        forge.util.createBuffer(salt.toString('binary')),
        c.purpose,
        c.iterations,
        c.length,
        forgeDigests[c.digest]!(),
      );
      assert.equal(Buffer.from(ours).toString('hex'), forge.util.bytesToHex(theirs.getBytes()));
    });
  }
});
