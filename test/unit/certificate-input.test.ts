import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { inspect } from 'node:util';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { passwordFromBytes, resolveCertificateInput, resolveServerCA, type SecretLike } from '../../src/model/certificate-input.ts';
import { parseDuration } from '../../src/api/time.ts';
import { SecretIndex, secretReferences } from '../../src/model/secret-refs.ts';
import { binding, secret } from '../fixtures/bindings.ts';

function lookupOf(...secrets: SecretLike[]) {
  return (name: string) => secrets.find((s) => s.metadata.name === name);
}

describe('resolveCertificateInput', () => {
  const spec = binding().spec;
  test('a missing Secret is SecretNotFound', () => {
    const r = resolveCertificateInput(spec, lookupOf());
    assert.equal(r.ok ? '' : r.reason, reasons.SecretNotFound);
  });
  test('a missing key is SecretKeyNotFound and names the keys present', () => {
    const r = resolveCertificateInput(spec, lookupOf(secret('partner-pfx', { 'tls.p12': 'x' })));
    assert.ok(!r.ok);
    assert.equal(r.reason, reasons.SecretKeyNotFound);
    assert.match(r.message, /keystore\.p12.*tls\.p12/);
  });
  test('a missing password key is SecretKeyNotFound', () => {
    const r = resolveCertificateInput(spec, lookupOf(secret('partner-pfx', { 'keystore.p12': 'x' })));
    assert.equal(r.ok ? '' : r.reason, reasons.SecretKeyNotFound);
  });
  test('the password loses one trailing newline, and never prints', () => {
    const r = resolveCertificateInput(spec, lookupOf(secret('partner-pfx', { 'keystore.p12': 'bytes', password: 'hunter2\n' })));
    assert.ok(r.ok && r.kind === 'pfx');
    assert.equal(r.password?.reveal(), 'hunter2');
    assert.doesNotMatch(inspect(r, { depth: 10 }) + JSON.stringify(r), /hunter2|Ynl0ZXM=/);
  });
  test('the version changes when either Secret changes', () => {
    const v = (pfxRv: string, pwRv: string) => {
      const r = resolveCertificateInput(
        spec,
        lookupOf(secret('partner-pfx', { 'keystore.p12': 'b' }, { resourceVersion: pfxRv }), secret('pw', { password: 'p' }, { resourceVersion: pwRv })),
      );
      return r.ok ? r.version : r.reason;
    };
    const split = binding({ spec: { certificate: { secretRef: { name: 'partner-pfx' }, passwordSecretRef: { name: 'pw' } } } }).spec;
    const version = (pfxRv: string, pwRv: string) => {
      const r = resolveCertificateInput(
        split,
        lookupOf(secret('partner-pfx', { 'keystore.p12': 'b' }, { resourceVersion: pfxRv }), secret('pw', { password: 'p' }, { resourceVersion: pwRv })),
      );
      return r.ok ? r.version : r.reason;
    };
    assert.notEqual(version('1', '1'), version('2', '1'));
    assert.notEqual(version('1', '1'), version('1', '2'));
    assert.equal(v('1', '1'), v('1', '9'), 'an unrelated Secret does not matter');
  });
  test('a kubernetes.io/tls Secret gives a PEM input', () => {
    const pem = binding({ spec: { certificate: { tlsSecretRef: { name: 'partner-tls' } } } }).spec;
    const r = resolveCertificateInput(pem, lookupOf(secret('partner-tls', { 'tls.crt': 'CERT', 'tls.key': 'KEY' })));
    assert.ok(r.ok && r.kind === 'pem');
    assert.equal(r.cert, 'CERT');
    const noKey = resolveCertificateInput(pem, lookupOf(secret('partner-tls', { 'tls.crt': 'CERT' })));
    assert.equal(noKey.ok ? '' : noKey.reason, reasons.SecretKeyNotFound);
  });
});

describe('resolveServerCA', () => {
  const spec = binding({ spec: { serverCA: { secretRef: { name: 'partner-ca' } } } }).spec;
  test('absent serverCA means the system trust store', () => {
    const r = resolveServerCA(binding().spec, lookupOf());
    assert.ok(r.ok && r.ca === undefined);
  });
  test('missing, keyless and non-PEM CA Secrets each have a reason', () => {
    const reasonOf = (s?: SecretLike) => {
      const r = resolveServerCA(spec, s ? lookupOf(s) : lookupOf());
      return r.ok ? 'ok' : r.reason;
    };
    assert.equal(reasonOf(), reasons.SecretNotFound);
    assert.equal(reasonOf(secret('partner-ca', { other: 'x' })), reasons.SecretKeyNotFound);
    assert.equal(reasonOf(secret('partner-ca', { 'ca.crt': 'not pem' })), reasons.ServerCAInvalid);
    assert.equal(reasonOf(secret('partner-ca', { 'ca.crt': '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----' })), reasons.ServerCAInvalid);
  });
});

describe('SecretIndex', () => {
  test('maps each Secret to exactly the bindings that read it', () => {
    const index = new SecretIndex();
    index.set('team-a/one', 'team-a', binding().spec);
    index.set(
      'team-a/two',
      'team-a',
      binding({ spec: { certificate: { secretRef: { name: 'other' } }, serverCA: { secretRef: { name: 'partner-pfx' } } } }).spec,
    );
    index.set('team-b/three', 'team-b', binding().spec);
    assert.deepEqual(index.bindingsFor('team-a/partner-pfx').sort(), ['team-a/one', 'team-a/two']);
    assert.deepEqual(index.bindingsFor('team-b/partner-pfx'), ['team-b/three']);
    index.set('team-a/one', 'team-a', binding({ spec: { certificate: { secretRef: { name: 'rotated' } } } }).spec);
    assert.deepEqual(index.bindingsFor('team-a/partner-pfx'), ['team-a/two']);
    index.delete('team-a/two');
    assert.equal(index.isReferenced('team-a/partner-pfx'), false);
    assert.equal(index.isReferenced('team-a/rotated'), true);
  });
  test('defaults the data keys as the API server would', () => {
    assert.deepEqual(
      secretReferences({ host: 'h', certificate: { secretRef: { name: 'p' }, passwordSecretRef: { name: 'p' } }, serverCA: { secretRef: { name: 'c' } } }),
      [
        { role: 'pfx', name: 'p', key: 'keystore.p12' },
        { role: 'password', name: 'p', key: 'password' },
        { role: 'serverCA', name: 'c', key: 'ca.crt' },
      ],
    );
  });
});

describe('parseDuration', () => {
  const cases: Array<[string, number | undefined]> = [
    ['720h', 720 * 3600_000],
    ['1h30m', 5400_000],
    ['90s', 90_000],
    ['1.5h', 5400_000],
    ['0', 0],
    ['0s', 0],
    ['', undefined],
    ['10', undefined],
    ['5d', undefined],
    ['1h x', undefined],
  ];
  for (const [text, ms] of cases) test(`"${text}"`, () => assert.equal(parseDuration(text), ms));
});

describe('resolveServerCA on hostile bundles', () => {
  const withCA = (pem: string) => ({
    spec: { host: 'h.example', certificate: { secretRef: { name: 'p' } }, serverCA: { secretRef: { name: 'ca' } } },
    secret: secret('ca', { 'ca.crt': pem }),
  });

  test('BEGIN lines without an END are no certificate, and cost one pass', () => {
    const { spec, secret: s } = withCA('-----BEGIN CERTIFICATE-----\n'.repeat(50_000));
    const result = resolveServerCA(spec, () => s);
    assert.ok(!result.ok && result.reason === reasons.ServerCAInvalid, JSON.stringify(result));
  });

  test('more certificates than any partner sends are refused before they are parsed', () => {
    const block = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
    const { spec, secret: s } = withCA(block.repeat(513));
    const result = resolveServerCA(spec, () => s);
    assert.ok(!result.ok);
    assert.match(result.message, /more than 512 certificates/);
  });
});

describe('passwordFromBytes', () => {
  const cases: Array<[string, Uint8Array, string | Uint8Array]> = [
    ['UTF-8 text stays text', Buffer.from('hunter2'), 'hunter2'],
    ['one trailing newline is dropped', Buffer.from('hunter2\n'), 'hunter2'],
    ['a CRLF too', Buffer.from('hunter2\r\n'), 'hunter2'],
    ['only one', Buffer.from('hunter2\n\n'), 'hunter2\n'],
    ['non-ASCII UTF-8 stays text', Buffer.from('pässwörd'), 'pässwörd'],
    ['ISO-8859-1 bytes stay bytes, never replacement characters', Buffer.from('p\xe4ss\n', 'latin1'), new Uint8Array(Buffer.from('p\xe4ss', 'latin1'))],
  ];
  for (const [what, bytes, want] of cases) test(what, () => assert.deepEqual(passwordFromBytes(bytes), want));
});
