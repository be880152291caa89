import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import type { LabelSelector } from '../../src/api/v1alpha1/types.ts';
import { consentCheck, consentingSelector, consentLabel, selectorMatches, type NamespaceMeta } from '../../src/model/namespace-consent.ts';

function ns(name: string, labels: Record<string, string> = {}): NamespaceMeta {
  return { name, labels: { 'kubernetes.io/metadata.name': name, ...labels }, annotations: {} };
}

describe('selectorMatches', () => {
  const labels = { tier: 'web', team: 'b' };
  const cases: Array<[string, LabelSelector, boolean]> = [
    ['an empty selector matches everything', {}, true],
    ['matchLabels all hold', { matchLabels: { tier: 'web', team: 'b' } }, true],
    ['one matchLabel differs', { matchLabels: { tier: 'db' } }, false],
    ['In', { matchExpressions: [{ key: 'team', operator: 'In', values: ['a', 'b'] }] }, true],
    ['In, absent key', { matchExpressions: [{ key: 'zone', operator: 'In', values: ['x'] }] }, false],
    ['NotIn', { matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['b'] }] }, false],
    ['NotIn, absent key', { matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['x'] }] }, true],
    ['Exists', { matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, true],
    ['DoesNotExist', { matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, false],
  ];
  for (const [name, selector, expected] of cases) test(name, () => assert.equal(selectorMatches(selector, labels), expected));
});

describe('consent to allowedNamespaces', () => {
  const namespaces = [
    ns('team-a'),
    ns('team-b', { partner: 'bank', [consentLabel('team-a')]: 'true' }),
    ns('team-c', { partner: 'bank' }),
    ns('team-d', { partner: 'bank', [consentLabel('team-a')]: 'yes' }),
    ns('team-e', { partner: 'bank', [consentLabel('team-x')]: 'true' }),
  ];

  test('the consent label names the binding namespace', () => {
    assert.equal(consentLabel('team-a'), 'caller-of.mtls-egress.io/team-a');
  });

  test('without allowedNamespaces there is nothing to consent to', () => {
    assert.equal(consentCheck('team-a', undefined, namespaces), undefined);
  });

  test('selected namespaces without the label (or with another value, or consenting to someone else) are named', () => {
    const outcome = consentCheck('team-a', { matchLabels: { partner: 'bank' } }, namespaces);
    assert.ok(outcome && !outcome.ok);
    assert.equal(outcome.reason, reasons.NamespaceConsentMissing);
    assert.match(outcome.message, /team-c, team-d, team-e;/);
    assert.doesNotMatch(outcome.message, /team-b/);
  });

  test('every selected namespace consenting is ok; the binding namespace itself needs no consent', () => {
    assert.deepEqual(consentCheck('team-a', { matchLabels: { [consentLabel('team-a')]: 'true' } }, namespaces), { ok: true });
    assert.deepEqual(consentCheck('team-a', { matchLabels: { 'kubernetes.io/metadata.name': 'team-a' } }, namespaces), { ok: true });
  });

  test('a long list is cut, with the count of the rest', () => {
    const many = Array.from({ length: 14 }, (_, i) => ns(`ns-${String(i).padStart(2, '0')}`));
    const outcome = consentCheck('team-a', {}, many);
    assert.ok(outcome && !outcome.ok);
    assert.match(outcome.message, /ns-09 and 4 more/);
  });

  test('Namespaces that cannot be read: unverified, and said so (the NetworkPolicy still requires the label)', () => {
    const outcome = consentCheck('team-a', { matchLabels: { partner: 'bank' } }, undefined);
    assert.ok(outcome && !outcome.ok);
    assert.equal(outcome.reason, reasons.NamespaceConsentUnverified);
    assert.match(outcome.message, /caller-of\.mtls-egress\.io\/team-a="true"/);
  });

  test('the admitted selector ANDs the consent label, overriding a value the user set', () => {
    assert.deepEqual(consentingSelector({ matchLabels: { partner: 'bank', [consentLabel('team-a')]: 'anything' } }, 'team-a'), {
      matchLabels: { partner: 'bank', [consentLabel('team-a')]: 'true' },
    });
    const withExpressions = consentingSelector({ matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, 'team-a');
    assert.deepEqual(withExpressions, { matchExpressions: [{ key: 'tier', operator: 'Exists' }], matchLabels: { [consentLabel('team-a')]: 'true' } });
    // What the CNI will admit is exactly the consenting namespaces.
    const admitted = namespaces.filter((n) => selectorMatches(consentingSelector({ matchLabels: { partner: 'bank' } }, 'team-a'), n.labels));
    assert.deepEqual(
      admitted.map((n) => n.name),
      ['team-b'],
    );
  });
});
