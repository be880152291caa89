import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { MAX_DER_DEPTH, MAX_OID_BYTES } from '../../src/pki/der.ts';
import { MAX_MESSAGE_LENGTH } from '../../src/pki/errors.ts';
import { DecodePool, PkiError, defaultDecodeLimits, pkiErrorCodes, type DecodedIdentity } from '../../src/pki/index.ts';
import { MIN_PBMAC1_KEY_LENGTH } from '../../src/pki/pfx-mac.ts';
import { FIXTURE_PASSWORD, opensslPfx } from '../fixtures/pfx.ts';
import { hostileCases, inputBytes, type HostileCase } from '../fixtures/hostile/generate.ts';

// Every hostile class runs through the decode sandbox, as the controller runs a Secret:
// each must end with its reason (the exported constant), a short message, and nothing of
// the input in that message. What each case did on main is in its `what`.

const cases = await hostileCases();

// The only numbers a message may hold are the decoder's own: its limits, and the numbers
// in the names of things (PKCS#12, UTF-8, ISO-8859-1, RFC 9579, X.509). Any other number
// could be read from the input: a length, a tag, an iteration count.
const count = (value: number) => value.toLocaleString('en-US');
const allowedNumbers = new Set([
  ...Object.values(defaultDecodeLimits).flatMap((limit) => [count(limit), count(Math.floor(limit / 1024)), count(Math.floor(limit / 1024 / 1024))]),
  String(MAX_DER_DEPTH),
  String(MAX_OID_BYTES),
  String(MIN_PBMAC1_KEY_LENGTH),
  String(MAX_MESSAGE_LENGTH),
  '12',
  '8',
  '8859',
  '1',
  '9579',
  '509',
  '4',
  '10',
]);

function assertSafeMessage(message: string, hostile: HostileCase): void {
  assert.ok(message.length <= MAX_MESSAGE_LENGTH, `a message of ${message.length} characters`);
  assert.doesNotMatch(message, /0x[0-9a-f]/i, 'a byte value in hex');
  // Digits inside a name (PBKDF2, PBMAC1) are not numbers.
  for (const number of message.match(/(?<![A-Za-z\d])\d(?:[\d,]*\d)?/g) ?? []) {
    assert.ok(allowedNumbers.has(number), `the number ${number} is not one of the decoder's own: ${message}`);
  }
  if (hostile.secretText !== undefined) {
    for (let i = 0; i + 6 <= hostile.secretText.length; i++) {
      const window = hostile.secretText.slice(i, i + 6);
      assert.ok(!message.includes(window), `the message repeats the input ("${window}"): ${message}`);
    }
  }
  // Nothing of the input's bytes as text, hex or base64 either.
  const bytes = inputBytes(hostile.request);
  for (const encoding of ['hex', 'base64'] as const) {
    const encoded = bytes.subarray(0, 4096).toString(encoding);
    for (let i = 0; i + 12 <= encoded.length; i += 12) assert.ok(!message.includes(encoded.slice(i, i + 12)), `the message holds input bytes as ${encoding}`);
  }
}

function expectation(hostile: HostileCase): string {
  return 'reason' in hostile.expect ? hostile.expect.reason : 'decodes';
}

describe('hostile inputs end with a reason, through the decode sandbox', () => {
  const pool = new DecodePool();
  after(() => pool.close());

  for (const hostile of cases) {
    test(`${hostile.name} → ${expectation(hostile)}`, async () => {
      let identity: DecodedIdentity | undefined;
      let failure: unknown;
      try {
        identity = await pool.decode(hostile.request);
      } catch (error) {
        failure = error;
      }
      if ('decodes' in hostile.expect) {
        assert.equal(failure, undefined, `expected it to decode: ${String(failure)}`);
        await hostile.expect.check(identity!);
        return;
      }
      assert.ok(failure instanceof PkiError, `expected a PkiError, got ${String(failure)}`);
      assert.equal(failure.reason, hostile.expect.reason, failure.message);
      assert.equal(failure.code, pkiErrorCodes[hostile.expect.reason]);
      assertSafeMessage(failure.message, hostile);
    });
  }

  test('while every hostile case runs, 20 good files still decode', async () => {
    const good = await Promise.all(Array.from({ length: 20 }, (_, i) => opensslPfx({ name: `pfx-good-beside-hostile-${i}` })));
    const hostile = Promise.allSettled(cases.map((hostileCase) => pool.decode(hostileCase.request)));
    const identities = await Promise.all(good.map((fixture) => pool.decode({ kind: 'pfx', pfx: fixture.bytes, password: FIXTURE_PASSWORD })));
    assert.equal(identities.length, 20);
    for (const [index, identity] of identities.entries()) assert.equal(identity.facts.subject, good[index]!.leaf.expected.subject);
    await hostile;
  });
});
