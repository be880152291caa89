import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { before, describe, test } from 'node:test';
import { load } from 'js-yaml';
import { maxObjectNameLength, objectNamePattern, secretDataKeyPattern } from '../../src/api/meta.ts';
import { bundledCrdDirectory, CustomResourceValidators, type CustomResourceValidator } from '../../src/schema/custom-resource.ts';
import * as fieldErrors from '../../src/schema/field-errors.ts';
import type { SchemaNode, ValidationRule } from '../../src/schema/structural-schema.ts';
import { caseObject, schemaCases } from '../fixtures/binding-schema-cases.ts';

// The offline validator against the real CRD in crds/: accepted objects come out with the
// API server's defaults, rejected ones with the API server's field and words. The same
// table runs against a real API server in test/integration/validate-vs-apiserver.test.ts.

const repoCrds = resolve(import.meta.dirname, '../../crds');

function errorsOf(validator: CustomResourceValidator, object: Record<string, unknown>): fieldErrors.FieldError[] {
  return validator.validate(object).errors;
}

describe('the ClientCertificateBinding CRD, offline', () => {
  let validator: CustomResourceValidator;

  before(async () => {
    const validators = await CustomResourceValidators.load();
    validator = validators.forType('mtls-egress.io/v1alpha1', 'ClientCertificateBinding')!;
    assert.ok(validator, 'crds/ serves ClientCertificateBinding v1alpha1');
  });

  test('is read from crds/ beside the code, where package.json publishes it', () => {
    assert.equal(resolve(bundledCrdDirectory), repoCrds);
    const pkg = JSON.parse(readFileSync(resolve(repoCrds, '../package.json'), 'utf8')) as { files: string[] };
    assert.ok(pkg.files.includes('crds'));
  });

  for (const c of schemaCases.filter((x) => x.stored !== undefined)) {
    test(`accepts: ${c.name}, with the API server's defaults`, () => {
      const { errors, object } = validator.validate(caseObject(c, 'team-a'));
      assert.deepEqual(errors, [], 'no error and no rule left unevaluated');
      assert.deepEqual(object.spec, c.stored);
    });
  }

  for (const c of schemaCases.filter((x) => x.rejected !== undefined)) {
    test(`rejects: ${c.name}`, () => {
      const errors = errorsOf(validator, caseObject(c, 'team-a')).filter((e) => e.severity === 'error');
      for (const expected of c.rejected!) {
        const match = errors.find((e) => e.field === expected.field && (expected.message === undefined || e.message === expected.message));
        assert.ok(match, `expected ${expected.field}: ${expected.message ?? '…'}\ngot:\n${errors.map((e) => `  ${e.field}: ${e.message}`).join('\n')}`);
      }
    });
  }

  test('every CEL rule in the CRD is evaluated and rejects a case of the table', () => {
    const crd = load(readFileSync(resolve(repoCrds, 'mtls-egress.io_clientcertificatebindings.yaml'), 'utf8')) as {
      spec: { versions: Array<{ schema: { openAPIV3Schema: SchemaNode } }> };
    };
    const rules: ValidationRule[] = [];
    const walk = (node: SchemaNode): void => {
      rules.push(...(node['x-kubernetes-validations'] ?? []));
      for (const child of Object.values(node.properties ?? {})) walk(child);
      if (node.items) walk(node.items);
    };
    walk(crd.spec.versions[0]!.schema.openAPIV3Schema);
    assert.equal(rules.length, 5);
    const expected = schemaCases.flatMap((c) => c.rejected ?? []).map((e) => e.message ?? '');
    for (const rule of rules)
      assert.ok(
        expected.some((m) => m.endsWith(rule.message!)),
        `no case of the table breaks: ${rule.rule}`,
      );
  });

  test('every Secret name and data key in the CRD carries the API server’s own rule, as the controller checks it', () => {
    const crd = load(readFileSync(resolve(repoCrds, 'mtls-egress.io_clientcertificatebindings.yaml'), 'utf8')) as {
      spec: { versions: Array<{ schema: { openAPIV3Schema: SchemaNode } }> };
    };
    const refs: Array<[string, SchemaNode]> = [];
    const walk = (node: SchemaNode, path: string): void => {
      for (const [field, child] of Object.entries(node.properties ?? {})) {
        if (/SecretRef$|^secretRef$/.test(field)) refs.push([`${path}.${field}`, child]);
        walk(child, `${path}.${field}`);
      }
    };
    walk(crd.spec.versions[0]!.schema.openAPIV3Schema, '');
    assert.deepEqual(
      refs.map(([path]) => path),
      ['.spec.certificate.secretRef', '.spec.certificate.passwordSecretRef', '.spec.certificate.tlsSecretRef', '.spec.serverCA.secretRef'],
    );
    for (const [path, ref] of refs) {
      const { name, key } = ref.properties!;
      assert.equal(name!.pattern, objectNamePattern, `${path}.name`);
      assert.equal(name!.maxLength, maxObjectNameLength, `${path}.name`);
      if (key === undefined) continue;
      assert.equal(key.pattern, secretDataKeyPattern, `${path}.key`);
      assert.equal(key.maxLength, maxObjectNameLength, `${path}.key`);
    }
  });

  test('CEL rules are skipped after a blocking error, as the API server skips them, and the output says so', () => {
    const errors = errorsOf(validator, caseObject({ name: 'blocking', spec: { host: 'API.example', port: 'x', certificate: {} } }, 'team-a'));
    assert.deepEqual(
      errors.map((e) => [e.type, e.field]),
      [
        [fieldErrors.FieldValueTypeInvalid, 'spec.port'],
        [fieldErrors.RulesNotChecked, ''],
      ],
    );
    assert.equal(errors[1]!.severity, 'warning');
  });

  test('does not change the object it is given', () => {
    const object = caseObject(schemaCases[0]!, 'team-a');
    const copy = structuredClone(object);
    validator.validate(object);
    assert.deepEqual(object, copy);
  });
});

/** An in-memory CRD with one version whose spec has `specSchema`. */
function validatorFor(specSchema: SchemaNode): CustomResourceValidator {
  const validators = new CustomResourceValidators([
    {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      spec: {
        group: 'example.io',
        names: { kind: 'Widget' },
        versions: [{ name: 'v1', served: true, schema: { openAPIV3Schema: { type: 'object', properties: { spec: specSchema } } } }],
      },
    },
  ]);
  return validators.forType('example.io/v1', 'Widget')!;
}

function widget(spec: unknown): Record<string, unknown> {
  return { apiVersion: 'example.io/v1', kind: 'Widget', metadata: { name: 'w' }, spec };
}

describe('CEL rules and schema keywords, offline', () => {
  test('a rule needing a function the offline environment lacks is a warning, never a pass or an error', () => {
    const v = validatorFor({
      type: 'object',
      properties: { cidr: { type: 'string', 'x-kubernetes-validations': [{ rule: 'isCIDR(self)', message: 'a CIDR' }] } },
    });
    const errors = v.validate(widget({ cidr: '10.0.0.0/8' })).errors;
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.type, fieldErrors.RuleNotEvaluated);
    assert.equal(errors[0]!.severity, 'warning');
    assert.equal(errors[0]!.field, 'spec.cidr');
    assert.match(errors[0]!.message, /^rule not evaluated offline \(.*isCIDR.*\): isCIDR\(self\)$/);
  });

  test('a rule that resolves without the missing function still gets its verdict, as CEL short-circuits either way', () => {
    const v = validatorFor({ type: 'string', 'x-kubernetes-validations': [{ rule: "self == 'any' || isCIDR(self)", message: 'no' }] });
    assert.deepEqual(v.validate(widget('any')).errors, []);
  });

  test('a transition rule (oldSelf) cannot be checked without the stored object: a warning', () => {
    const v = validatorFor({ type: 'string', 'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: 'immutable' }] });
    const [error] = v.validate(widget('a')).errors;
    assert.equal(error?.type, fieldErrors.RuleNotEvaluated);
    assert.match(error!.message, /oldSelf/);
  });

  test('a rule that does not parse is a warning', () => {
    const v = validatorFor({ type: 'string', 'x-kubernetes-validations': [{ rule: 'self ==', message: 'broken' }] });
    assert.equal(v.validate(widget('a')).errors[0]?.type, fieldErrors.RuleNotEvaluated);
  });

  test('messageExpression, reason and fieldPath shape the error as on the API server', () => {
    const v = validatorFor({
      type: 'object',
      properties: { replicas: { type: 'integer' }, max: { type: 'integer' } },
      'x-kubernetes-validations': [
        { rule: 'self.replicas <= self.max', messageExpression: "'replicas must be at most ' + string(self.max)", fieldPath: '.replicas' },
        { rule: 'self.max < 100', message: 'max is capped', reason: 'FieldValueForbidden' },
      ],
    });
    const errors = v.validate(widget({ replicas: 5, max: 200 })).errors;
    assert.deepEqual(
      errors.map((e) => [e.field, e.message]),
      [['spec', 'Forbidden: max is capped']],
    );
    const second = v.validate(widget({ replicas: 7, max: 3 })).errors;
    assert.deepEqual(
      second.map((e) => [e.field, e.message]),
      [['spec.replicas', 'Invalid value: replicas must be at most 3']],
    );
  });

  test('integers are CEL ints and `type: number` is a double', () => {
    const v = validatorFor({
      type: 'object',
      properties: { count: { type: 'integer' }, ratio: { type: 'number' } },
      'x-kubernetes-validations': [{ rule: 'self.count + 1 == 3 && self.ratio > 0.25', message: 'no' }],
    });
    assert.deepEqual(v.validate(widget({ count: 2, ratio: 0.5 })).errors, []);
  });

  test('rules run on every list item and map value, after defaults', () => {
    const v = validatorFor({
      type: 'object',
      properties: {
        items: {
          type: 'array',
          items: {
            type: 'object',
            properties: { weight: { type: 'integer', default: 1 } },
            'x-kubernetes-validations': [{ rule: 'self.weight > 0', message: 'positive' }],
          },
        },
      },
    });
    const { errors, object } = v.validate(widget({ items: [{}, { weight: 0 }] }));
    assert.deepEqual(
      errors.map((e) => [e.field, e.message]),
      [['spec.items[1]', 'Invalid value: positive']],
    );
    assert.deepEqual((object.spec as { items: unknown[] }).items, [{ weight: 1 }, { weight: 0 }]);
  });

  test('OpenAPI patterns are RE2, as the API server matches them, not JavaScript regular expressions', () => {
    // JavaScript's RegExp rejects the (?i) flag group; Go's regexp and RE2 accept it.
    const v = validatorFor({ type: 'string', pattern: '(?i)^abc$' });
    assert.deepEqual(v.validate(widget('ABC')).errors, []);
    assert.equal(v.validate(widget('abd')).errors[0]?.message, `Invalid value: "abd": spec in body should match '(?i)^abc$'`);
  });

  test('maxItems, maxLength and enum are blocking, as on the API server', () => {
    const v = validatorFor({
      type: 'array',
      maxItems: 1,
      items: { type: 'string' },
      'x-kubernetes-validations': [{ rule: 'size(self) > 5', message: 'never reached' }],
    });
    const errors = v.validate(widget(['a', 'b'])).errors;
    assert.deepEqual(
      errors.map((e) => [e.type, e.message]),
      [
        [fieldErrors.FieldValueTooMany, 'Too many: 2: must have at most 1 items'],
        [fieldErrors.RulesNotChecked, fieldErrors.rulesNotCheckedMessage],
      ],
    );
  });
});
