import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { dump } from 'js-yaml';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import type { ValidationReport } from '../../src/commands/validate.ts';
import { maxManifestFileBytes } from '../../src/manifests/read-manifests.ts';
import {
  aliasBombYaml,
  oversizedYaml,
  plantSymlinkedOut,
  quotingYamlErrors,
  recursiveAliasYaml,
  terminalEscapeBinding,
  typedListYaml,
} from '../fixtures/hostile-manifests.ts';
import { partnerBindingManifests } from '../support/mtls-partner.ts';
import { PartnerPki } from '../support/partner-pki.ts';

// The offline commands on files a hostile pull request could hold, run as a pipeline
// runs them: the real CLI in a child process, each with a deadline, so a hang or an
// out-of-memory crash fails here instead of stalling CI. Every input comes from a
// builder in test/fixtures/hostile-manifests.ts.

const repo = resolve(import.meta.dirname, '../..');
const node = join(repo, 'node_modules/.bin/node');
const root = mkdtempSync(join(tmpdir(), 'mtls-egress-cli-hostile-'));
after(() => rmSync(root, { recursive: true, force: true }));

interface Run {
  code: number | string;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Promise<Run> {
  return new Promise((done) => {
    // A heap small enough that an input which blows memory up crashes quickly, and a deadline.
    execFile(
      node,
      ['--max-old-space-size=256', 'src/cli.ts', ...args],
      { cwd: repo, timeout: 60_000, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        done({ code: error ? (error.code ?? error.signal ?? -1) : 0, stdout, stderr });
      },
    );
  });
}

function file(name: string, text: string): string {
  const path = join(root, name);
  writeFileSync(path, text);
  return path;
}

describe('validate and render on hostile manifests', () => {
  test('an alias bomb is refused with exit 2, without expanding it', async () => {
    const bomb = file('bomb.yaml', aliasBombYaml());
    assert.ok(Buffer.byteLength(readFileSync(bomb)) < 4096, 'a few kilobytes');
    for (const run of [await cli('validate', '-f', bomb), await cli('render', '-f', bomb, '--out', join(root, 'bomb-out'))]) {
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /bomb\.yaml: its YAML aliases expand to more than 1000000 values/);
    }
  });

  test('a value that contains itself is refused with exit 2', async () => {
    const run = await cli('validate', '-f', file('loop.yaml', recursiveAliasYaml()));
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /aliases expand/);
  });

  test('a file over the size limit is refused before it is read', async () => {
    const big = file('big.yaml', oversizedYaml(maxManifestFileBytes + 100));
    const run = await cli('validate', '-f', big);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /big\.yaml: \d+ bytes is more than the 4194304 a manifest file may have/);
  });

  test('a FIFO is refused instead of waited on forever', async () => {
    const fifo = join(root, 'pipe.yaml');
    execFileSync('mkfifo', [fifo]);
    const run = await cli('validate', '-f', fifo);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /pipe\.yaml: not a regular file/);
  });

  test('YAML errors name the position, never the tag or alias the file spells', async () => {
    const secret = 'Tag-Looking-Secret-7Qx2';
    for (const [i, text] of quotingYamlErrors(secret).entries()) {
      const run = await cli('validate', '-f', file(`quoting-${i}.yaml`, text));
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /not valid YAML at line \d+/);
      assert.ok(!run.stderr.includes(secret), run.stderr);
    }
  });

  test('typed lists (ClientCertificateBindingList, SecretList) are flattened as kubectl does: a wrong password is found', async () => {
    const pki = new PartnerPki('Hostile CLI CA');
    const [secret, binding] = partnerBindingManifests({
      name: 'listed',
      client: pki.issueClient({ cn: 'listed.client' }),
      password: 'right-pw',
      host: 'api.partner.example',
      port: 443,
    }) as [Record<string, unknown>, Record<string, unknown>];
    const wrong = { ...secret, stringData: { password: 'wrong-pw' } };
    const dir = join(root, 'typed-lists');
    mkdirSync(dir);
    writeFileSync(join(dir, 'bindings.yaml'), typedListYaml('ClientCertificateBindingList', [binding]));
    writeFileSync(join(dir, 'secrets.yaml'), typedListYaml('SecretList', [wrong]));
    const run = await cli('validate', '-f', dir, '--json');
    assert.equal(run.code, 1, run.stderr);
    const report = JSON.parse(run.stdout) as ValidationReport;
    assert.deepEqual(
      report.findings.map((f) => [f.name, f.reason]),
      [['listed', reasons.PasswordIncorrect]],
    );
  });

  test('names and namespaces with terminal escapes are printed escaped: no forged output line', async () => {
    const run = await cli('validate', '-f', file('escape.yaml', dump(terminalEscapeBinding())));
    assert.equal(run.code, 1, run.stderr);
    const all = run.stdout + run.stderr;
    // eslint-disable-next-line no-control-regex -- finding control characters is the test
    const controlCharacter = new RegExp('[\\u0000-\\u0008\\u000b-\\u001f\\u007f]');
    assert.doesNotMatch(all, controlCharacter, 'no control character reaches the terminal');
    assert.match(run.stdout, /evil\\u001b\[2K\\u000d\\u001b\[32m0 bindings/);
    const rendered = await cli('render', '-f', join(root, 'escape.yaml'), '--out', join(root, 'escape-out'));
    assert.doesNotMatch(rendered.stdout + rendered.stderr, controlCharacter);
  });

  test('render --out never writes, deletes or chmods through a symbolic link planted in an earlier output', async () => {
    const { linkedCerts, linkedFile, victimDir, victimFile } = plantSymlinkedOut(root);
    const input = file('one-binding.yaml', '');
    for (const [out, what] of [
      [linkedCerts, /certs\/ is a symbolic link; render will not write through it/],
      [linkedFile, /certs\/team-a_partner\.key is a symbolic link/],
    ] as const) {
      // nginx's layout (certs/NAME.key) is what plantSymlinkedOut plants links in.
      const run = await cli('render', '-f', input, '--data-plane', 'nginx', '--out', out);
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, what);
    }
    assert.equal(readFileSync(victimFile, 'utf8'), 'keep me');
    assert.equal(statSync(victimFile).mode & 0o777, 0o644);
    assert.equal(statSync(victimDir).mode & 0o777, 0o755);
  });

  test('validate refuses an IP host in the ranges refused everywhere: DestinationNotAllowed on spec.host', async () => {
    const metadata = {
      apiVersion: 'mtls-egress.io/v1alpha1',
      kind: 'ClientCertificateBinding',
      metadata: { name: 'metadata', namespace: 'team-a' },
      spec: { host: '169.254.169.254', serverName: 'metadata.example', certificate: { secretRef: { name: 'elsewhere' } } },
    };
    const run = await cli('validate', '-f', file('metadata.yaml', dump(metadata)), '--json');
    assert.equal(run.code, 1, run.stderr);
    const report = JSON.parse(run.stdout) as ValidationReport;
    assert.deepEqual(
      report.findings.filter((f) => f.severity === 'error').map((f) => [f.path, f.reason]),
      [['spec.host', reasons.DestinationNotAllowed]],
    );
  });

  test('render --out that is itself a symbolic link is refused', async () => {
    const real = join(root, 'real-out');
    mkdirSync(real);
    const link = join(root, 'link-out');
    execFileSync('ln', ['-s', real, link]);
    const run = await cli('render', '-f', file('empty.yaml', ''), '--out', link);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /is a symbolic link/);
  });
});
