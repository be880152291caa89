import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import type { ClientCertificateBindingStatus } from '../../src/api/v1alpha1/types.ts';
import { setCondition } from '../../src/status/conditions.ts';
import { evaluateBinding, maxRequeueMs, statusEqual, type EvaluationInput } from '../../src/status/evaluate.ts';
import { day, facts, t0 } from '../fixtures/bindings.ts';

const warn30d = 30 * day;

function input(overrides: Partial<EvaluationInput> = {}): EvaluationInput {
  return {
    generation: 3,
    previous: undefined,
    spec: { ok: true },
    certificate: { ok: true, facts: facts() },
    serverCA: { ok: true },
    port: { ok: true, port: 10001 },
    expiryWarningMs: warn30d,
    endpointFor: (port) => `http://mtls-egress-proxy.mtls-egress-system.svc:${port}`,
    now: t0,
    ...overrides,
  };
}

function condition(status: ClientCertificateBindingStatus, type: string) {
  return status.conditions?.find((c) => c.type === type);
}

describe('evaluateBinding: the first failing check names Ready', () => {
  const problem = (reason: string) => ({ ok: false as const, reason, message: `because ${reason}` });
  const cases: Array<{ name: string; input: Partial<EvaluationInput>; ready: string; readyReason: string; certValid: string; certReason: string }> = [
    { name: 'healthy', input: {}, ready: 'True', readyReason: reasons.BindingReady, certValid: 'True', certReason: reasons.CertificateReady },
    {
      name: 'secret missing',
      input: { certificate: problem(reasons.SecretNotFound) },
      ready: 'False',
      readyReason: reasons.SecretNotFound,
      certValid: 'False',
      certReason: reasons.SecretNotFound,
    },
    {
      name: 'wrong password',
      input: { certificate: problem(reasons.PasswordIncorrect) },
      ready: 'False',
      readyReason: reasons.PasswordIncorrect,
      certValid: 'False',
      certReason: reasons.PasswordIncorrect,
    },
    {
      name: 'invalid spec beats a broken certificate',
      input: { spec: problem(reasons.InvalidSpec), certificate: problem(reasons.PfxMalformed) },
      ready: 'False',
      readyReason: reasons.InvalidSpec,
      certValid: 'False',
      certReason: reasons.PfxMalformed,
    },
    {
      name: 'expired',
      input: { now: new Date(t0.getTime() + 400 * day) },
      ready: 'False',
      readyReason: reasons.CertificateExpired,
      certValid: 'False',
      certReason: reasons.CertificateExpired,
    },
    {
      name: 'not yet valid',
      input: { now: new Date(t0.getTime() - 60 * day) },
      ready: 'False',
      readyReason: reasons.CertificateNotYetValid,
      certValid: 'False',
      certReason: reasons.CertificateNotYetValid,
    },
    // RFC 5280: notAfter is inclusive. Status once called this instant expired while inspect called it valid.
    {
      name: 'exactly notAfter: still valid (expiring)',
      input: { now: new Date(t0.getTime() + 365 * day) },
      ready: 'True',
      readyReason: reasons.CertificateExpiringSoon,
      certValid: 'True',
      certReason: reasons.CertificateExpiringSoon,
    },
    {
      name: 'a millisecond after notAfter: expired',
      input: { now: new Date(t0.getTime() + 365 * day + 1) },
      ready: 'False',
      readyReason: reasons.CertificateExpired,
      certValid: 'False',
      certReason: reasons.CertificateExpired,
    },
    {
      name: 'expiring soon stays Ready but says so',
      input: { now: new Date(t0.getTime() + 350 * day) },
      ready: 'True',
      readyReason: reasons.CertificateExpiringSoon,
      certValid: 'True',
      certReason: reasons.CertificateExpiringSoon,
    },
    {
      name: 'port conflict',
      input: { port: problem(reasons.ListenerPortConflict) },
      ready: 'False',
      readyReason: reasons.ListenerPortConflict,
      certValid: 'True',
      certReason: reasons.CertificateReady,
    },
    {
      name: 'server CA missing',
      input: { serverCA: problem(reasons.SecretNotFound) },
      ready: 'False',
      readyReason: reasons.SecretNotFound,
      certValid: 'True',
      certReason: reasons.CertificateReady,
    },
    {
      name: 'not yet programmed',
      input: { programmed: problem(reasons.ProgrammingPending) },
      ready: 'False',
      readyReason: reasons.ProgrammingPending,
      certValid: 'True',
      certReason: reasons.CertificateReady,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const { status } = evaluateBinding(input(c.input));
      assert.equal(condition(status, 'Ready')?.status, c.ready);
      assert.equal(condition(status, 'Ready')?.reason, c.readyReason);
      assert.equal(condition(status, 'CertificateValid')?.status, c.certValid);
      assert.equal(condition(status, 'CertificateValid')?.reason, c.certReason);
      assert.equal(status.observedGeneration, 3);
      for (const cond of status.conditions ?? []) assert.equal(cond.observedGeneration, 3);
    });
  }
});

describe('evaluateBinding: status content', () => {
  test('reports certificate facts, port and endpoint', () => {
    const { status } = evaluateBinding(input());
    assert.deepEqual(status.certificate, {
      subject: 'CN=client.partner.example,O=Acme',
      issuer: 'CN=Partner CA',
      serialNumber: '1a2b',
      notBefore: '2026-05-02T00:00:00Z',
      notAfter: '2027-06-01T00:00:00Z',
      fingerprintSha256: 'AB:CD',
      dnsNames: ['client.partner.example'],
      keyAlgorithm: 'RSA 2048',
      chainLength: 2,
    });
    assert.equal(status.listenerPort, 10001);
    assert.equal(status.endpoint, 'http://mtls-egress-proxy.mtls-egress-system.svc:10001');
  });

  test('an EC key reports its curve', () => {
    const { status } = evaluateBinding(input({ certificate: { ok: true, facts: facts({ keyAlgorithm: 'ECDSA', keySize: 256, curve: 'P-256' }) } }));
    assert.equal(status.certificate?.keyAlgorithm, 'ECDSA P-256');
  });

  test('a failed decode drops stale certificate facts', () => {
    const previous = evaluateBinding(input()).status;
    const { status } = evaluateBinding(input({ previous, certificate: { ok: false, reason: reasons.PfxMalformed, message: 'bad' } }));
    assert.equal(status.certificate, undefined);
  });

  test('conditions come out in a fixed order', () => {
    const { status } = evaluateBinding(input({ programmed: { ok: true } }));
    assert.deepEqual(
      status.conditions?.map((c) => c.type),
      ['Ready', 'CertificateValid', 'Programmed'],
    );
  });
});

describe('evaluateBinding: transitions', () => {
  test('lastTransitionTime moves only when status flips', () => {
    const first = evaluateBinding(input()).status;
    const later = new Date(t0.getTime() + 1000 * 60);
    const same = evaluateBinding(input({ previous: first, now: later })).status;
    assert.equal(condition(same, 'Ready')?.lastTransitionTime, '2026-06-01T00:00:00Z');
    // True → True with a new reason is not a flip.
    const expiring = evaluateBinding(input({ previous: first, now: new Date(t0.getTime() + 350 * day) })).status;
    assert.equal(condition(expiring, 'Ready')?.lastTransitionTime, '2026-06-01T00:00:00Z');
    const broken = evaluateBinding(input({ previous: first, now: later, certificate: { ok: false, reason: reasons.PasswordIncorrect, message: 'x' } })).status;
    assert.equal(condition(broken, 'Ready')?.lastTransitionTime, '2026-06-01T00:01:00Z');
  });

  test('one Event per transition, none on a resync', () => {
    const created = evaluateBinding(input());
    assert.deepEqual(
      created.events.map((e) => [e.type, e.reason]),
      [['Normal', reasons.BindingReady]],
    );
    const resync = evaluateBinding(input({ previous: created.status, now: new Date(t0.getTime() + 60_000) }));
    assert.deepEqual(resync.events, []);
    assert.ok(statusEqual(created.status, resync.status));
  });

  test('healthy → expiring → expired → renewed: one Event each, the right type', () => {
    const steps: Array<[Partial<EvaluationInput>, 'Normal' | 'Warning', string]> = [
      [{}, 'Normal', reasons.BindingReady],
      [{ now: new Date(t0.getTime() + 340 * day) }, 'Warning', reasons.CertificateExpiringSoon],
      [{ now: new Date(t0.getTime() + 366 * day) }, 'Warning', reasons.CertificateExpired],
      [
        { now: new Date(t0.getTime() + 367 * day), certificate: { ok: true, facts: facts({ notAfter: new Date(t0.getTime() + 800 * day) }) } },
        'Normal',
        reasons.BindingReady,
      ],
    ];
    let previous: ClientCertificateBindingStatus | undefined;
    for (const [overrides, type, reason] of steps) {
      const result = evaluateBinding(input({ previous, ...overrides }));
      assert.deepEqual(
        result.events.map((e) => [e.type, e.reason]),
        [[type, reason]],
      );
      // The same moment again is a resync: nothing new to say.
      assert.deepEqual(evaluateBinding(input({ previous: result.status, ...overrides })).events, []);
      previous = result.status;
    }
  });
});

describe('evaluateBinding: requeue at the next expiry threshold', () => {
  const notAfter = new Date(t0.getTime() + 365 * day);
  const cases: Array<{ name: string; now: Date; want: number | undefined }> = [
    { name: 'far from expiry: capped', now: t0, want: maxRequeueMs },
    { name: 'just before the warning', now: new Date(notAfter.getTime() - warn30d - 5000), want: 5000 + 1000 },
    { name: 'inside the warning: just after notAfter (inclusive)', now: new Date(notAfter.getTime() - 3000), want: 3000 + 1 + 1000 },
    { name: 'expired: time changes nothing more', now: new Date(notAfter.getTime() + 1), want: undefined },
    { name: 'not yet valid: at notBefore', now: new Date(t0.getTime() - 30 * day - 2000), want: 2000 + 1000 },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.equal(evaluateBinding(input({ now: c.now })).requeueAfterMs, c.want);
    });
  }
  test('a broken certificate does not requeue on time', () => {
    assert.equal(evaluateBinding(input({ certificate: { ok: false, reason: reasons.PasswordIncorrect, message: 'x' } })).requeueAfterMs, undefined);
  });
});

describe('setCondition', () => {
  test('adds, replaces in place, and keeps other conditions', () => {
    let list = setCondition(undefined, { type: 'A', status: 'True', reason: 'R', message: 'm' }, 1, t0);
    list = setCondition(list, { type: 'B', status: 'False', reason: 'S', message: 'n' }, 1, t0);
    list = setCondition(list, { type: 'A', status: 'False', reason: 'T', message: 'o' }, 2, new Date(t0.getTime() + 5000));
    assert.deepEqual(
      list.map((c) => [c.type, c.status, c.reason, c.observedGeneration, c.lastTransitionTime]),
      [
        ['A', 'False', 'T', 2, '2026-06-01T00:00:05Z'],
        ['B', 'False', 'S', 1, '2026-06-01T00:00:00Z'],
      ],
    );
  });
});

describe('evaluateBinding: DestinationPolicyComplete', () => {
  const gap = { reason: reasons.PodRangeUnknown, message: "the cluster's pod range is unknown" };

  test('a gap in the destination policy shows as its own condition, last, and does not gate Ready', () => {
    const { status } = evaluateBinding(input({ programmed: { ok: true }, destinationPolicyGap: gap }));
    assert.deepEqual(
      status.conditions?.map((c) => [c.type, c.status, c.reason]),
      [
        ['Ready', 'True', reasons.BindingReady],
        ['CertificateValid', 'True', reasons.CertificateReady],
        ['Programmed', 'True', reasons.Programmed],
        ['DestinationPolicyComplete', 'False', reasons.PodRangeUnknown],
      ],
    );
  });

  test('once the gap closes the condition goes; a new binding gets one Event, for Ready', () => {
    const first = evaluateBinding(input({ destinationPolicyGap: gap }));
    assert.deepEqual(
      first.events.map((e) => e.reason),
      [reasons.BindingReady],
    );
    const closed = evaluateBinding(input({ previous: first.status })).status;
    assert.equal(condition(closed, 'DestinationPolicyComplete'), undefined);
  });
});

describe('evaluateBinding: AllowedNamespaces says whether the selected namespaces consent', () => {
  const missing = { ok: false as const, reason: reasons.NamespaceConsentMissing, message: 'team-c does not consent' };
  const cases: Array<{ name: string; consent: EvaluationInput['consent']; status: string | undefined; reason?: string }> = [
    { name: 'no allowedNamespaces: no condition', consent: undefined, status: undefined },
    { name: 'every namespace consents', consent: { ok: true }, status: 'True', reason: reasons.NamespacesConsent },
    { name: 'some do not: False, naming them', consent: missing, status: 'False', reason: reasons.NamespaceConsentMissing },
    {
      name: 'Namespaces unreadable: Unknown',
      consent: { ok: false, reason: reasons.NamespaceConsentUnverified, message: 'cannot read' },
      status: 'Unknown',
      reason: reasons.NamespaceConsentUnverified,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const { status } = evaluateBinding(input(c.consent ? { consent: c.consent } : {}));
      const allowed = condition(status, 'AllowedNamespaces');
      assert.equal(allowed?.status, c.status);
      if (c.reason) assert.equal(allowed?.reason, c.reason);
      // Ready is about the binding's own namespace: consent never gates it.
      assert.equal(condition(status, 'Ready')?.status, 'True');
    });
  }

  test('the condition goes when allowedNamespaces goes', () => {
    const before = evaluateBinding(input({ consent: missing })).status;
    const after = evaluateBinding(input({ previous: before })).status;
    assert.equal(condition(after, 'AllowedNamespaces'), undefined);
  });
});
