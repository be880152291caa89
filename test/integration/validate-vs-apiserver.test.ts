import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dump } from 'js-yaml';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import * as types from '../../src/api/v1alpha1/types.ts';
import { runValidate, type ValidationReport } from '../../src/commands/validate.ts';
import { KubeApiError } from '../../src/k8s/client.ts';
import { CustomResourceValidators } from '../../src/schema/custom-resource.ts';
import { captureIo } from '../support/captured-io.ts';
import { caseName, caseObject, schemaCases, type ExpectedFieldError, type SchemaCase } from '../fixtures/binding-schema-cases.ts';
import { useControlPlane } from '../harness/use-control-plane.ts';
import { TestKube } from '../support/kube.ts';

// `mtls-egress validate` says a binding is valid exactly when the real API server, with
// the CRD from crds/ installed, accepts it under strict field validation (what
// `kubectl apply --dry-run=server` does), names the same fields, and stores the same
// defaults. Every case of the shared table is sent to both.

const cluster = await useControlPlane();
const kube = new TestKube(cluster.kubeconfig);

interface ServerVerdict {
  accepted: boolean;
  /** Accepted: the spec as the API server would store it. */
  spec?: unknown;
  /** Rejected: field and message of each error, as the Status message lists them. */
  errors: ExpectedFieldError[];
}

const errorStart = /, (?=(?:<nil>|[\w.[\]-]+): (?:Required value|Invalid value|Unsupported value|Too long|Too many|Forbidden|Duplicate value))/;

/** The field errors in a Status message: `Kind.group "x" is invalid: [a: …, b: …]`, or strict decoding's unknown fields. */
function fieldErrorsIn(message: string): ExpectedFieldError[] {
  const unknown = [...message.matchAll(/unknown field "([^"]+)"/g)].map(([, field]) => ({
    field: field!,
    message: `strict decoding error: unknown field "${field}"`,
  }));
  if (unknown.length > 0) return unknown;
  const marker = ' is invalid: ';
  const at = message.indexOf(marker);
  assert.ok(at >= 0, `not a validation failure: ${message}`);
  const list = message.slice(at + marker.length).replace(/^\[([\s\S]*)\]$/, '$1');
  return list.split(errorStart).map((entry) => {
    const colon = entry.indexOf(': ');
    return { field: entry.slice(0, colon), message: entry.slice(colon + 2) };
  });
}

async function serverVerdict(namespace: string, object: Record<string, unknown>): Promise<ServerVerdict> {
  const path = `/apis/${types.group}/${types.version}/namespaces/${namespace}/${types.plural}`;
  try {
    const created = await kube.client.request<{ spec?: unknown }>('POST', path, { query: { dryRun: 'All', fieldValidation: 'Strict' }, body: object });
    return { accepted: true, spec: created.spec, errors: [] };
  } catch (err) {
    if (!(err instanceof KubeApiError) || (err.status !== 400 && err.status !== 422)) throw err;
    return { accepted: false, errors: fieldErrorsIn(err.message) };
  }
}

/** Runs the command in-process on one manifest file, as a pipeline would. */
async function validateFile(file: string): Promise<{ code: number; report: ValidationReport }> {
  const run = captureIo();
  const code = await runValidate(['-f', file, '--json'], run.io);
  return { code, report: JSON.parse(run.stdout) as ValidationReport };
}

describe('validate agrees with the real API server', () => {
  let namespace: string;
  let dir: string;
  let validators: CustomResourceValidators;

  before(async () => {
    namespace = await kube.namespace('validate-parity');
    dir = mkdtempSync(join(tmpdir(), 'mtls-egress-validate-parity-'));
    validators = await CustomResourceValidators.load();
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  const check = async (c: SchemaCase): Promise<void> => {
    const object = caseObject(c, namespace);
    const file = join(dir, `${caseName(c)}.yaml`);
    writeFileSync(file, dump(object));
    const [server, offline] = await Promise.all([serverVerdict(namespace, object), validateFile(file)]);
    const errors = offline.report.findings.filter((f) => f.severity === 'error');

    assert.equal(
      offline.code === 0,
      server.accepted,
      `the API server ${server.accepted ? 'accepts' : 'rejects'} it; validate exited ${offline.code}:\n${JSON.stringify(offline.report.findings, null, 2)}`,
    );
    assert.equal(server.accepted, c.stored !== undefined, 'the table says what the API server does');

    if (server.accepted) {
      assert.deepEqual(errors, []);
      assert.deepEqual(server.spec, c.stored, "the table's defaults are the API server's");
      const stored = validators.forType(object.apiVersion, object.kind)!.validate(object).object;
      assert.deepEqual(stored.spec, server.spec, "the offline defaults are the API server's");
      return;
    }
    for (const expected of c.rejected ?? []) {
      assert.ok(
        server.errors.some((e) => e.field === expected.field && (expected.message === undefined || e.message === expected.message)),
        `the table's ${expected.field}: ${expected.message} is what the API server says: ${JSON.stringify(server.errors)}`,
      );
    }
    for (const e of server.errors.filter((x) => x.field !== '<nil>')) {
      // A rule that fails to evaluate is worded by the CEL implementation: cel-go's and
      // @bufbuild/cel's texts differ; the field is the same.
      const sameWords = !e.message!.includes(' evaluating rule: ');
      const match = errors.find((f) => f.path === e.field && (!sameWords || f.message === e.message));
      assert.ok(match, `the API server says ${e.field}: ${e.message}; validate says:\n${errors.map((f) => `  ${f.path}: ${f.message}`).join('\n')}`);
    }
  };

  for (const c of schemaCases) test(`${c.stored ? 'accepted' : 'rejected'}: ${c.name}`, () => check(c));

  test('deliberately stricter: an IP host without serverName is accepted by the API server, but the proxy would not serve it', async () => {
    const object = caseObject({ name: 'ip host without servername', spec: { host: '10.0.0.1', certificate: { tlsSecretRef: { name: 'tls' } } } }, namespace);
    const file = join(dir, 'ip-host.yaml');
    writeFileSync(file, dump(object));
    const [server, offline] = await Promise.all([serverVerdict(namespace, object), validateFile(file)]);
    assert.equal(server.accepted, true);
    assert.equal(offline.code, 1);
    assert.deepEqual(
      offline.report.findings.filter((f) => f.severity === 'error').map((f) => [f.path, f.reason]),
      [['spec', reasons.InvalidSpec]],
    );
  });
});
