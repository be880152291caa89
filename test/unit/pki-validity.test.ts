import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CertificateExpired, CertificateNotYetValid } from '../../src/api/v1alpha1/reasons.ts';
import { decodePfx, evaluateValidity, rfc3339 } from '../../src/pki/index.ts';
import { opensslPfx } from '../fixtures/pfx.ts';

// The clock is an argument: every edge is tested at the exact millisecond, without sleeping.
const notBefore = new Date('2026-01-01T00:00:00Z');
const notAfter = new Date('2027-01-01T00:00:00Z');
const at = (iso: string, offsetMs = 0) => new Date(Date.parse(iso) + offsetMs);

describe('evaluateValidity judges the validity window at an injected time', () => {
  const cases: readonly { name: string; now: Date; reason: string | undefined }[] = [
    { name: 'a millisecond before notBefore', now: at('2026-01-01T00:00:00Z', -1), reason: CertificateNotYetValid },
    { name: 'exactly notBefore (inclusive)', now: notBefore, reason: undefined },
    { name: 'in the middle', now: at('2026-07-01T12:00:00Z'), reason: undefined },
    { name: 'exactly notAfter (inclusive)', now: notAfter, reason: undefined },
    { name: 'a millisecond after notAfter', now: at('2027-01-01T00:00:00Z', 1), reason: CertificateExpired },
    { name: 'years later', now: at('2100-01-01T00:00:00Z'), reason: CertificateExpired },
  ];
  for (const { name, now, reason } of cases) {
    test(`${name} → ${reason ?? 'valid'}`, () => assert.equal(evaluateValidity({ notBefore, notAfter }, now)?.reason, reason));
  }

  test('the message gives the boundary and the time judged, in RFC 3339', () => {
    const violation = evaluateValidity({ notBefore, notAfter }, at('2027-02-03T04:05:06Z'));
    assert.equal(violation?.message, 'the certificate expired at 2027-01-01T00:00:00Z (now is 2027-02-03T04:05:06Z)');
    assert.equal(rfc3339(at('2027-02-03T04:05:06.789Z')), '2027-02-03T04:05:06.789Z');
  });

  test('decoding does not judge validity: a certificate decodes, then fails the check at a later time', async () => {
    const fixture = await opensslPfx({ name: 'pfx-openssl3-aes256-sha256' });
    const { facts } = await decodePfx(fixture.bytes, fixture.password);
    assert.equal(evaluateValidity(facts, facts.notAfter), undefined);
    assert.equal(evaluateValidity(facts, new Date(facts.notAfter.getTime() + 1000))?.reason, CertificateExpired);
    assert.equal(evaluateValidity(facts, new Date(facts.notBefore.getTime() - 1000))?.reason, CertificateNotYetValid);
  });
});
