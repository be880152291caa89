import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DecodeBudgetExceeded } from '../../src/api/v1alpha1/reasons.ts';
import { DerError, MAX_DER_DEPTH, MAX_OID_BYTES, childrenOf, octetStringValue, readOid, readSmallInteger, readWhole } from '../../src/pki/der.ts';
import { PkiError } from '../../src/pki/errors.ts';

const bytes = (hex: string) => Buffer.from(hex.replace(/\s+/g, ''), 'hex');

describe('der: reading DER, and the BER PKCS#12 writers emit', () => {
  const oids: readonly [string, string][] = [
    ['06 09 2a864886f70d010701', '1.2.840.113549.1.7.1'],
    ['06 03 55 1d 11', '2.5.29.17'],
    ['06 0b 2a8308 8c9a4b 3d 01 01 01 04', '1.2.392.200011.61.1.1.1.4'],
    // An arc above 2^53 (UUID OIDs under 2.25) stays exact.
    ['06 0b 69 90 80 80 80 80 80 80 80 80 01', '2.25.147573952589676412929'],
  ];
  for (const [hex, dotted] of oids) {
    test(`OID ${dotted}`, () => assert.equal(readOid(readWhole(bytes(hex)), 'oid'), dotted));
  }

  test('indefinite lengths and a constructed OCTET STRING read as their DER equivalents', () => {
    // SEQUENCE (indefinite) { OCTET STRING (constructed, indefinite) { "ab", "cd" }, INTEGER 5 }
    const ber = readWhole(bytes('30 80 24 80 04 02 6162 04 02 6364 0000 02 01 05 0000'));
    const [octets, integer] = childrenOf(ber);
    assert.equal(Buffer.from(octetStringValue(octets!)).toString(), 'abcd');
    assert.equal(readSmallInteger(integer, 'integer'), 5);
  });

  const malformed: readonly [string, string, RegExp][] = [
    ['truncated content', '30 05 02 01 05', /truncated/],
    ['truncated header', '30', /header/],
    ['trailing bytes', '02 01 05 00', /unexpected bytes/],
    ['indefinite length without end-of-contents', '30 80 02 01 05', /indefinite-length/],
    ['primitive with indefinite length', '04 80 00 00', /indefinite/],
    ['five length octets', '04 85 0000000001 00', /longer than 4 bytes/],
    ['high tag number', '1f 81 00 00', /high-number tag/],
  ];
  for (const [name, hex, message] of malformed) {
    test(`rejects ${name}`, () =>
      assert.throws(
        () => readWhole(bytes(hex)),
        (error: unknown) => error instanceof DerError && message.test(error.message),
      ));
  }

  // The input may be some other Secret: a message never repeats a byte, tag, length or offset of it.
  test('messages carry no number and no byte of the input', () => {
    for (const hex of ['30 05 02 01 05', '30', '02 01 05 00', '30 80 02 01 05', '04 80 00 00', '04 85 0000000001 00', '1f 81 00 00', '30 70 65 73']) {
      // The one number a message has is the format's own limit: "longer than 4 bytes".
      assert.throws(
        () => childrenOf(readWhole(bytes(hex))),
        (error: unknown) => error instanceof DerError && !/\d|0x/.test(error.message.replace('4 bytes', '')),
        hex,
      );
    }
  });

  const budgetExceeded = (error: unknown) => error instanceof PkiError && error.reason === DecodeBudgetExceeded;

  test(`refuses indefinite lengths nested more than ${MAX_DER_DEPTH} deep`, () => {
    assert.throws(() => readWhole(bytes(`${'30 80'.repeat(50)}${'0000'.repeat(50)}`)), budgetExceeded);
  });

  test('reads a constructed OCTET STRING nested 5,000 deep without recursion, and refuses it', () => {
    // 24 LL (24 LL (… 04 01 61 …)): definite lengths, so only octetStringValue descends.
    let element = Buffer.from('040161', 'hex');
    for (let i = 0; i < 5000; i++) element = Buffer.concat([Buffer.from([0x24, 0x84]), lengthOf(element.length), element]);
    assert.throws(() => octetStringValue(readWhole(element)), budgetExceeded);
  });

  test(`refuses an OBJECT IDENTIFIER longer than ${MAX_OID_BYTES} bytes before decoding it`, () => {
    const content = Buffer.alloc(100_000, 0x81);
    content[content.length - 1] = 0x01;
    assert.throws(() => readOid(readWhole(Buffer.concat([Buffer.from([0x06, 0x84]), lengthOf(content.length), content])), 'oid'), budgetExceeded);
  });

  test('rejects a negative or oversized INTEGER where a count is expected', () => {
    assert.throws(() => readSmallInteger(readWhole(bytes('02 01 ff')), 'n'), /negative/);
    assert.throws(() => readSmallInteger(readWhole(bytes('02 08 0100000000000000')), 'n'), /too large/);
  });
});

function lengthOf(length: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(length);
  return out;
}
