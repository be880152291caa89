import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { identityReasons } from '../../src/api/v1alpha1/reasons.ts';
import { UsageError } from '../../src/config.ts';
import { CodedError, errorCodes, errorSummary, isCodedError, isTransient } from '../../src/errors.ts';
import { NamespaceNotFoundError } from '../../src/controller/leader-election.ts';
import { KubeApiError } from '../../src/k8s/client.ts';
import { InputError } from '../../src/manifests/read-manifests.ts';
import { DerError } from '../../src/pki/der.ts';
import { PkiError, pkiErrorCodes } from '../../src/pki/errors.ts';
import { DecryptionFailed } from '../../src/pki/pbe.ts';
import { NginxError } from '../../src/dataplane/nginx/control.ts';

describe('the error registry', () => {
  it('gives every error class a registered code', () => {
    const errors: CodedError[] = [
      new UsageError('x'),
      new InputError('x'),
      new DerError('x'),
      new DecryptionFailed(),
      new PkiError('PasswordIncorrect', 'x'),
      new KubeApiError(500, undefined, 'x'),
      new NginxError('ERR_NGINX_NOT_RUNNING', 'x'),
      new NamespaceNotFoundError('x', 'y'),
    ];
    for (const err of errors) {
      assert.ok(err instanceof CodedError, err.name);
      assert.ok(Object.hasOwn(errorCodes, err.code), `${err.name}: ${err.code} is registered`);
      assert.equal(err.name, err.constructor.name);
    }
  });

  it('maps every identity reason to a registered, distinct code', () => {
    const codes = identityReasons.map((reason) => pkiErrorCodes[reason]);
    assert.equal(new Set(codes).size, identityReasons.length);
    for (const code of codes) assert.ok(Object.hasOwn(errorCodes, code), code);
  });

  const transience: Array<[string, unknown, boolean]> = [
    ['a wrong password is terminal', new PkiError('PasswordIncorrect', 'x'), false],
    ['a usage error is terminal', new UsageError('x'), false],
    ['a 409 conflict is transient', new KubeApiError(409, 'Conflict', 'x'), true],
    ['a 429 throttle is transient', new KubeApiError(429, 'TooManyRequests', 'x'), true],
    ['a connection failure is transient', new KubeApiError(0, 'ConnectionFailed', 'x'), true],
    ['a 503 is transient', new KubeApiError(503, undefined, 'x'), true],
    ['a 422 is terminal', new KubeApiError(422, 'Invalid', 'x'), false],
    ['a 404 is terminal', new KubeApiError(404, 'NotFound', 'x'), false],
    ['a missing namespace for the Lease is terminal', new NamespaceNotFoundError('x', 'y'), false],
    ['nginx not running yet is transient', new NginxError('ERR_NGINX_NOT_RUNNING', 'x'), true],
    ['an error we did not raise on purpose is retried', new TypeError('x'), true],
    ['a thrown non-error is retried', 'boom', true],
  ];
  for (const [name, err, transient] of transience) {
    it(name, () => assert.equal(isTransient(err), transient));
  }

  it('narrows by code', () => {
    assert.ok(isCodedError(new DerError('x'), 'ERR_DER'));
    assert.ok(!isCodedError(new DerError('x'), 'ERR_INPUT'));
    assert.ok(!isCodedError(new Error('x')));
  });

  it('summarises an error without its stack or cause', () => {
    assert.deepEqual(errorSummary(new KubeApiError(503, undefined, 'GET /x: 503')), { message: 'GET /x: 503', code: 'ERR_KUBE_API', status: 503 });
    assert.deepEqual(errorSummary(new Error('plain', { cause: new Error('secret bytes') })), { message: 'plain' });
    assert.deepEqual(errorSummary(7), { message: '7' });
  });
});
