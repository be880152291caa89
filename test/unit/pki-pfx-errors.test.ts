import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { PkiError, decodePfx, pkiErrorCodes } from '../../src/pki/index.ts';
import { failureCases } from '../fixtures/pki/pfx-cases.ts';

describe('decodePfx rejects bad input with a stable reason', () => {
  before(() => Promise.all(failureCases.map((testCase) => testCase.build())));

  for (const testCase of failureCases) {
    test(`${testCase.name} → ${testCase.reason}`, async () => {
      const { bytes, password } = await testCase.build();
      const error = await decodePfx(bytes, password).then(
        () => assert.fail('decoded'),
        (thrown: unknown) => thrown,
      );
      assert.ok(error instanceof PkiError, `expected a PkiError, got ${String(error)}`);
      assert.equal(error.reason, testCase.reason, error.message);
      assert.equal(error.code, pkiErrorCodes[testCase.reason]);
      if (testCase.mentions !== undefined) assert.ok(error.message.includes(testCase.mentions), error.message);
    });
  }
});
