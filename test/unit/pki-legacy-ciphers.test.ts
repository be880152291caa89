import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { cast5CbcDecrypt, rc2CbcDecrypt } from '../../src/pki/legacy-ciphers.ts';

// RC2 and CAST5 are written from their RFCs; the oracles are the RFCs' own test vectors
// and OpenSSL's legacy provider (the openssl CLI), an independent implementation.

const execFileAsync = promisify(execFile);
const hex = (bytes: Uint8Array | undefined) => (bytes === undefined ? 'undefined' : Buffer.from(bytes).toString('hex'));
const zeroIv = new Uint8Array(8);

async function opensslEncrypt(cipher: string, key: Buffer, iv: Buffer, data: Buffer): Promise<Buffer> {
  const child = execFileAsync('openssl', ['enc', `-${cipher}`, '-K', hex(key), '-iv', hex(iv), '-nopad', '-provider', 'legacy', '-provider', 'default'], {
    encoding: 'buffer',
  });
  child.child.stdin!.end(data);
  return (await child).stdout;
}

describe('RC2-CBC (RFC 2268)', () => {
  // RFC 2268 section 5: key, effective key bits, plaintext, ciphertext (one block; CBC with a zero IV is ECB).
  const vectors: readonly [string, number, string, string][] = [
    ['0000000000000000', 63, '0000000000000000', 'ebb773f993278eff'],
    ['ffffffffffffffff', 64, 'ffffffffffffffff', '278b27e42e2f0d49'],
    ['3000000000000000', 64, '1000000000000001', '30649edf9be7d2c2'],
    ['88', 64, '0000000000000000', '61a8a244adacccf0'],
    ['88bca90e90875a7f0f79c384627bafb2', 128, '0000000000000000', '2269552ab0f85ca6'],
  ];
  for (const [key, bits, plaintext, ciphertext] of vectors) {
    test(`RFC 2268 vector: ${key.length / 2}-byte key, ${bits} effective bits`, () => {
      assert.equal(hex(rc2CbcDecrypt(Buffer.from(key, 'hex'), bits, zeroIv, Buffer.from(ciphertext, 'hex'))), plaintext);
    });
  }

  for (const [cipher, keyLength, bits] of [
    ['rc2-40-cbc', 5, 40],
    ['rc2-64-cbc', 8, 64],
    ['rc2-cbc', 16, 128],
  ] as const) {
    test(`decrypts what OpenSSL's ${cipher} encrypts`, async () => {
      const key = randomBytes(keyLength);
      const iv = randomBytes(8);
      const data = randomBytes(8 * 37);
      assert.equal(hex(rc2CbcDecrypt(key, bits, iv, await opensslEncrypt(cipher, key, iv, data))), hex(data));
    });
  }

  test('refuses data that is not whole blocks', () => assert.equal(rc2CbcDecrypt(randomBytes(5), 40, zeroIv, randomBytes(12)), undefined));
});

describe('CAST5-CBC (RFC 2144)', () => {
  // RFC 2144 Appendix B.1: plaintext 0123456789ABCDEF under 128-, 80- and 40-bit keys.
  const vectors: readonly [string, string][] = [
    ['0123456712345678234567893456789a', '238b4fe5847e44b2'],
    ['01234567123456782345', 'eb6a711a2c02271b'],
    ['0123456712', '7ac816d16e9b302e'],
  ];
  for (const [key, ciphertext] of vectors) {
    test(`RFC 2144 vector: ${key.length * 4}-bit key`, () => {
      assert.equal(hex(cast5CbcDecrypt(Buffer.from(key, 'hex'), zeroIv, Buffer.from(ciphertext, 'hex'))), '0123456789abcdef');
    });
  }

  test("decrypts what OpenSSL's cast5-cbc encrypts", async () => {
    const key = randomBytes(16);
    const iv = randomBytes(8);
    const data = randomBytes(8 * 41);
    assert.equal(hex(cast5CbcDecrypt(key, iv, await opensslEncrypt('cast5-cbc', key, iv, data))), hex(data));
  });

  test('refuses keys outside 40 to 128 bits', () => {
    assert.equal(cast5CbcDecrypt(randomBytes(4), zeroIv, randomBytes(8)), undefined);
    assert.equal(cast5CbcDecrypt(randomBytes(17), zeroIv, randomBytes(8)), undefined);
  });
});
