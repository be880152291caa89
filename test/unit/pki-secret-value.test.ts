import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodePfx, pfxBytesFromSecretValue } from '../../src/pki/index.ts';
import { opensslPfx } from '../fixtures/pfx.ts';

// Azure Key Vault hands out PFX certificates as base64 text; External Secrets and the CSI
// driver put that text into the Secret unchanged. It must decode without conversion.

const wrap = (text: string, width: number) => text.replace(new RegExp(`(.{${width}})`, 'g'), '$1\n');

describe('pfxBytesFromSecretValue', () => {
  const forms: readonly { name: string; encode: (der: Buffer) => string }[] = [
    { name: 'base64 on one line (Azure Key Vault)', encode: (der) => der.toString('base64') },
    { name: 'base64 wrapped at 76 columns with a trailing newline (base64 CLI)', encode: (der) => `${wrap(der.toString('base64'), 76)}\n` },
    { name: 'base64 with CRLF line breaks', encode: (der) => wrap(der.toString('base64'), 64).replaceAll('\n', '\r\n') },
    { name: 'URL-safe base64 without padding', encode: (der) => der.toString('base64url') },
    { name: 'a PKCS12 PEM block', encode: (der) => `-----BEGIN PKCS12-----\n${wrap(der.toString('base64'), 64)}\n-----END PKCS12-----\n` },
  ];
  for (const form of forms) {
    test(`${form.name} decodes to the DER, and decodePfx reads it`, async () => {
      const fixture = await opensslPfx({ name: 'pfx-openssl3-aes256-sha256' });
      const text = Buffer.from(form.encode(fixture.bytes));
      assert.deepEqual(Buffer.from(pfxBytesFromSecretValue(text)), fixture.bytes);
      assert.equal((await decodePfx(text, fixture.password)).facts.subject, fixture.leaf.expected.subject);
    });
  }

  const unchanged: readonly { name: string; value: Buffer }[] = [
    { name: 'DER', value: Buffer.from([0x30, 0x82, 0x01, 0x00, 0x02, 0x01, 0x03]) },
    { name: 'empty', value: Buffer.alloc(0) },
    { name: 'text that is not base64', value: Buffer.from('hello, world') },
    { name: 'base64 of something that is not DER', value: Buffer.from(Buffer.from('plain text, not a certificate').toString('base64')) },
    { name: 'a PEM certificate', value: Buffer.from('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n') },
    // Once a pattern with whitespace inside it took quadratic time here (256 KB: a minute and a half).
    { name: 'a long run of spaces ending in a stray character', value: Buffer.from(`A${' '.repeat(200_000)}!`) },
  ];
  for (const { name, value } of unchanged) {
    test(`${name} is returned unchanged`, () => assert.equal(pfxBytesFromSecretValue(value), value));
  }
});
