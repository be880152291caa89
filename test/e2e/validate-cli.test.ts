import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { dump } from 'js-yaml';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import type { Finding, ValidationReport } from '../../src/commands/validate.ts';
import { partnerBindingManifests } from '../support/mtls-partner.ts';
import { PartnerPki, type Issued } from '../support/partner-pki.ts';

// `mtls-egress validate` as a pipeline runs it: the real CLI in a child process, on
// directories of manifests with PFX files made by the real `openssl pkcs12 -export`.
// Certificates are issued around a fixed instant that every run passes as --now, so
// no verdict depends on the clock.

const repo = resolve(import.meta.dirname, '../..');
const node = join(repo, 'node_modules/.bin/node');
const now = new Date('2031-03-01T00:00:00Z');
const nowArgs = ['--now', now.toISOString()];
const day = 86_400_000;

const pki = new PartnerPki('Validate Partner CA');
const at = (days: number): Date => new Date(now.getTime() + days * day);
const valid = pki.issueClient({ cn: 'client-valid', notBefore: at(-30), notAfter: at(365) });
const expiring = pki.issueClient({ cn: 'client-expiring', notBefore: at(-30), notAfter: at(10) });
const expired = pki.issueClient({ cn: 'client-expired', notBefore: at(-30), notAfter: at(-1) });

/** Distinctive, so a search for it in any output cannot hit by accident. */
const password = 'Validate-Pw.9Xq#Lm4!vT';
const wrongPassword = 'Not-The-Pw.3Hk#Zr8!qW';

const root = mkdtempSync(join(tmpdir(), 'mtls-egress-validate-cli-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** A directory holding each object list as its own file. */
function manifestDir(name: string, files: Record<string, object[]>): string {
  const dir = join(root, name);
  mkdirSync(dir);
  for (const [file, objects] of Object.entries(files)) writeFileSync(join(dir, file), objects.map((o) => dump(o)).join('---\n'));
  return dir;
}

function binding(name: string, client: Issued, options: { password?: string; listenerPort?: number } = {}): object[] {
  return partnerBindingManifests({ name, client, password: options.password ?? password, host: 'api.partner.example', port: 443, ...options });
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

const runs: Run[] = [];

function validate(...args: string[]): Promise<Run> {
  return new Promise((done) => {
    execFile(node, ['src/cli.ts', 'validate', ...args], { cwd: repo }, (error, stdout, stderr) => {
      const run = { code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr };
      runs.push(run);
      done(run);
    });
  });
}

async function validateJson(...args: string[]): Promise<{ code: number; report: ValidationReport }> {
  const run = await validate(...args, '--json');
  return { code: run.code, report: JSON.parse(run.stdout) as ValidationReport };
}

function reasonsOf(findings: readonly Finding[]): Array<[string, string, string]> {
  return findings.map((f) => [f.severity, f.name, f.reason]);
}

describe('mtls-egress validate', () => {
  const clean = manifestDir('clean', {
    'partner.yaml': binding('partner', valid, { listenerPort: 10001 }),
    'pem.yaml': [
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'pem-tls', namespace: 'team-a' },
        type: 'kubernetes.io/tls',
        stringData: { 'tls.crt': valid.certPem, 'tls.key': valid.keyPem },
      },
      {
        apiVersion: 'mtls-egress.io/v1alpha1',
        kind: 'ClientCertificateBinding',
        metadata: { name: 'pem', namespace: 'team-a' },
        spec: { host: 'pem.partner.example', certificate: { tlsSecretRef: { name: 'pem-tls' } } },
      },
      { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'an-app', namespace: 'team-a' } },
    ],
  });

  test('a clean set exits 0 with only the summary line', async () => {
    const run = await validate('-f', clean, ...nowArgs);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.equal(run.stdout, '2 bindings and 2 Secrets in 2 files: no findings; 1 object of other kinds not checked\n');
    assert.equal(run.stderr, '');
  });

  test('a certificate expiring in 10 days is a warning with --warn-days 30 and fails the run', async () => {
    const dir = manifestDir('expiring', { 'partner.yaml': binding('soon', expiring) });
    const run = await validate('-f', dir, '--warn-days', '30', ...nowArgs);
    assert.equal(run.code, 1);
    const file = join(dir, 'partner.yaml');
    assert.match(
      run.stdout,
      new RegExp(
        `^WARN ${file}: ClientCertificateBinding team-a/soon: spec\\.certificate\\.secretRef: certificate .*CN=client-expiring.* expires at 2031-03-11T00:00:00Z; replace it before then\\n`,
      ),
    );
    assert.match(run.stdout, /: 0 errors, 1 warning\n$/);
    const { report } = await validateJson('-f', dir, '--warn-days', '30', ...nowArgs);
    assert.deepEqual(reasonsOf(report.findings), [['warning', 'soon', reasons.CertificateExpiringSoon]]);
  });

  test('--warn-days is the window: the same certificate passes with --warn-days 5', async () => {
    const dir = manifestDir('expiring-short-window', { 'partner.yaml': binding('soon', expiring) });
    assert.equal((await validate('-f', dir, '--warn-days', '5', ...nowArgs)).code, 0);
  });

  test('an expired certificate is an error', async () => {
    const dir = manifestDir('expired', { 'partner.yaml': binding('old', expired) });
    const run = await validate('-f', dir, ...nowArgs);
    assert.equal(run.code, 1);
    assert.match(run.stdout, /^ERROR .*: ClientCertificateBinding team-a\/old: spec\.certificate\.secretRef: certificate .* expired at 2031-02-28T00:00:00Z\n/);
    const { report } = await validateJson('-f', dir, ...nowArgs);
    assert.deepEqual(reasonsOf(report.findings), [['error', 'old', reasons.CertificateExpired]]);
  });

  test('a wrong password is PasswordIncorrect on passwordSecretRef; a malformed PFX is PfxMalformed', async () => {
    const wrong = binding('wrong-password', valid, { password: wrongPassword });
    // The PFX was exported with one password; the Secret's password key holds another.
    (wrong[0] as { stringData: Record<string, string> }).stringData.password = password;
    const garbage = binding('garbage', valid);
    (garbage[0] as { data: Record<string, string> }).data['keystore.p12'] = Buffer.from('not a pkcs12 file').toString('base64');
    const dir = manifestDir('broken', { 'wrong.yaml': wrong, 'garbage.yaml': garbage });
    const { code, report } = await validateJson('-f', dir, ...nowArgs);
    assert.equal(code, 1);
    assert.deepEqual(
      report.findings.map((f) => [f.name, f.path, f.reason]),
      [
        ['garbage', 'spec.certificate.secretRef', reasons.PfxMalformed],
        ['wrong-password', 'spec.certificate.passwordSecretRef', reasons.PasswordIncorrect],
      ],
    );
  });

  test('a Secret not in the set is a warning that does not fail the run, unless --strict', async () => {
    const external = {
      apiVersion: 'mtls-egress.io/v1alpha1',
      kind: 'ClientCertificateBinding',
      metadata: { name: 'external', namespace: 'team-a' },
      spec: { host: 'api.partner.example', certificate: { secretRef: { name: 'from-vault' }, passwordSecretRef: { name: 'from-vault' } } },
    };
    const dir = manifestDir('external', { 'binding.yaml': [external] });
    const run = await validate('-f', dir, ...nowArgs);
    assert.equal(run.code, 0, run.stdout);
    assert.equal(
      run.stdout,
      `WARN ${join(dir, 'binding.yaml')}: ClientCertificateBinding team-a/external: spec.certificate.secretRef.name: Secret from-vault is not in the set; it will be read from the cluster\n` +
        '1 binding and 0 Secrets in 1 file: 0 errors, 1 warning\n',
    );
    assert.equal((await validate('-f', dir, '--strict', ...nowArgs)).code, 1);
  });

  test('two bindings asking for the same listenerPort are both told: ListenerPortConflict', async () => {
    const dir = manifestDir('ports', { 'a.yaml': binding('a', valid, { listenerPort: 10005 }), 'b.yaml': binding('b', valid, { listenerPort: 10005 }) });
    const { code, report } = await validateJson('-f', dir, ...nowArgs);
    assert.equal(code, 1);
    assert.deepEqual(
      report.findings.map((f) => [f.name, f.path, f.reason]),
      [
        ['a', 'spec.listenerPort', reasons.ListenerPortConflict],
        ['b', 'spec.listenerPort', reasons.ListenerPortConflict],
      ],
    );
    assert.match(report.findings[0]!.message, /listener port 10005 is also requested by ClientCertificateBinding team-a\/b/);
  });

  test('schema errors read as kubectl prints them, with the file and the object', async () => {
    const [secret] = binding('typo', valid);
    const typo = {
      apiVersion: 'mtls-egress.io/v1alpha1',
      kind: 'ClientCertificateBinding',
      metadata: { name: 'typo', namespace: 'team-a' },
      spec: { hots: 'api.partner.example', port: 70000, certificate: { secretRef: { name: 'typo-pfx' } } },
    };
    const dir = manifestDir('schema', { 'typo.yaml': [secret!, typo] });
    const run = await validate('-f', dir, ...nowArgs);
    const file = join(dir, 'typo.yaml');
    assert.equal(run.code, 1);
    assert.equal(
      run.stdout,
      [
        `ERROR ${file}: ClientCertificateBinding team-a/typo: spec.host: Required value`,
        `ERROR ${file}: ClientCertificateBinding team-a/typo: spec.hots: strict decoding error: unknown field "spec.hots"`,
        `ERROR ${file}: ClientCertificateBinding team-a/typo: spec.port: Invalid value: 70000: spec.port in body should be less than or equal to 65535`,
        `WARN ${file}: ClientCertificateBinding team-a/typo: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation`,
        '1 binding and 1 Secret in 1 file: 3 errors, 1 warning',
        '',
      ].join('\n'),
    );
  });

  test('--json: findings with every field, and a summary', async () => {
    const dir = manifestDir('json', {
      'partner.yaml': binding('soon', expiring),
      'other.yaml': [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } }],
    });
    const { code, report } = await validateJson('-f', dir, ...nowArgs);
    assert.equal(code, 1);
    assert.deepEqual(Object.keys(report), ['findings', 'summary']);
    assert.deepEqual(report.summary, { files: 2, bindings: 1, secrets: 1, ignored: 1, errors: 0, warnings: 1 });
    const [finding] = report.findings;
    assert.deepEqual(Object.keys(finding!).sort(), ['file', 'kind', 'message', 'name', 'namespace', 'path', 'reason', 'severity']);
    assert.deepEqual(
      { ...finding, message: '' },
      {
        severity: 'warning',
        file: join(dir, 'partner.yaml'),
        kind: 'ClientCertificateBinding',
        namespace: 'team-a',
        name: 'soon',
        path: 'spec.certificate.secretRef',
        reason: reasons.CertificateExpiringSoon,
        message: '',
      },
    );
  });

  test('usage and input errors exit 2 with the reason on stderr', async () => {
    const badYaml = join(root, 'bad.yaml');
    writeFileSync(badYaml, `apiVersion: v1\nkind: Secret\nstringData:\n  password: "${password}\n  x: [\n`);
    const cases: Array<[string[], RegExp]> = [
      [[], /at least one -f FILE\|DIR is required/],
      [['-f', clean, '--warn-days', 'thirty'], /--warn-days: "thirty" is not a whole number of days/],
      [['-f', clean, '--now', 'tomorrow'], /--now: "tomorrow" is not an RFC 3339 time/],
      [['-f', clean, '--bogus'], /Unknown option '--bogus'/],
      [['-f', join(root, 'missing')], /-f .*missing: no such file or directory/],
      [['-f', badYaml], /bad\.yaml: not valid YAML at line \d+, column \d+/],
    ];
    for (const [args, message] of cases) {
      const run = await validate(...args);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, message);
      assert.equal(run.stdout, '');
    }
  });

  test('--help prints the usage and exits 0', async () => {
    const run = await validate('--help');
    assert.equal(run.code, 0);
    assert.match(run.stdout, /^Usage: mtls-egress validate -f FILE\|DIR/);
    assert.match(run.stdout, /--strict/);
  });

  // Last: looks at the output of every run above.
  test('no output ever holds a password or key material', () => {
    assert.ok(runs.length >= 15, `only ${runs.length} runs to check`);
    for (const { stdout, stderr } of runs) {
      for (const text of [stdout, stderr]) {
        assert.ok(!text.includes(password), 'the password appears in the output');
        assert.ok(!text.includes(wrongPassword), 'the wrong password appears in the output');
        assert.doesNotMatch(text, /PRIVATE KEY/);
        for (const issued of [valid, expiring, expired]) assert.ok(!text.includes(issued.keyPem.split('\n')[1]!), 'key material appears in the output');
      }
    }
  });
});
