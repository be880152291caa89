// deploy/argocd/health.lua, run by Debian's Lua 5.1 (the language of Argo CD's
// gopher-lua) the way Argo CD runs it: the live object as the global `obj`, the chunk's
// return value the health, and only the base and table libraries in reach. The objects
// are made here by the real controller against the real API server, in every state the
// script tells apart: Ready, expiring soon, broken three ways, Pending on the proxy, a
// spec the controller has not seen yet, and a binding with no status at all.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { before, describe, test } from 'node:test';
import { load } from 'js-yaml';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { useControlPlane } from '../harness/use-control-plane.ts';
import { startController } from '../support/controller-process.ts';
import { hasReason, TestKube, type Binding } from '../support/kube.ts';
import { PartnerPki } from '../support/partner-pki.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../..');
const script = join(repo, 'deploy/argocd/health.lua');
const cluster = await useControlPlane();
const kube = new TestKube(cluster.kubeconfig);
const pki = new PartnerPki();
const day = 86_400_000;
const password = 'argocd-fixture-password';

/** The bindings as the API server returned them, by fixture name. */
const fixtures = new Map<string, Binding>();

/** A JSON value as a Lua 5.1 literal, as Argo CD hands an object to Lua: maps as tables, arrays 1-based, null as nil. */
function toLua(value: unknown): string {
  if (value === null || value === undefined) return 'nil';
  if (typeof value === 'boolean' || typeof value === 'number') return String(value);
  if (typeof value === 'string') return JSON.stringify(value).replace(/\\u([0-9a-f]{4})/gi, (_, hex: string) => `\\${parseInt(hex, 16)}`);
  if (Array.isArray(value)) return `{${value.map(toLua).join(', ')}}`;
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== null && v !== undefined);
  return `{${entries.map(([k, v]) => `[${toLua(k)}] = ${toLua(v)}`).join(', ')}}`;
}

/** Runs health.lua on `obj` under lua5.1, in an environment with only what Argo CD's VM offers it. */
async function health(obj: unknown): Promise<{ status: string; message: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'mtls-egress-argocd-'));
  const runner = join(dir, 'run.lua');
  writeFileSync(
    runner,
    [
      `local obj = ${toLua(obj)}`,
      `local check = assert(loadfile(${JSON.stringify(script)}))`,
      // Argo CD's VM opens the base, table and package libraries and a safe os; no string, io or debug.
      'setfenv(check, { obj = obj, ipairs = ipairs, pairs = pairs, next = next, tostring = tostring, tonumber = tonumber, type = type, select = select, error = error, pcall = pcall, unpack = unpack, table = table })',
      'local hs = check()',
      'assert(type(hs) == "table", "health.lua returned " .. type(hs))',
      'io.write(tostring(hs.status), "\\n", tostring(hs.message))',
    ].join('\n'),
  );
  const { stdout } = await run('lua5.1', [runner], { encoding: 'utf8' });
  const newline = stdout.indexOf('\n');
  return { status: stdout.slice(0, newline), message: stdout.slice(newline + 1) };
}

async function capture(ns: string, name: string, as = name): Promise<void> {
  fixtures.set(as, await kube.getBinding(ns, name));
}

before(async () => {
  // Status only (--data-plane none): Ready needs no proxy.
  const ns = await kube.namespace('argocd');
  const pfx = (name: string): { secretRef: { name: string }; passwordSecretRef: { name: string } } => ({
    secretRef: { name },
    passwordSecretRef: { name },
  });
  const now = Date.now();
  await kube.putPfxSecret(ns, 'healthy', pki.issueClient({ cn: 'healthy.client' }), password);
  await kube.putPfxSecret(ns, 'expiring', pki.issueClient({ cn: 'expiring.client', notAfter: new Date(now + 10 * day) }), password);
  await kube.putPfxSecret(
    ns,
    'expired',
    pki.issueClient({ cn: 'expired.client', notBefore: new Date(now - 30 * day), notAfter: new Date(now - day) }),
    password,
  );
  await kube.putPfxSecret(ns, 'wrong', pki.issueClient({ cn: 'wrong.client' }), password, { storedPassword: 'not-the-password' });
  for (const name of ['healthy', 'expiring', 'expired', 'wrong']) await kube.createBinding(ns, name, { host: 'api.partner.example', certificate: pfx(name) });
  await kube.createBinding(ns, 'no-secret', { host: 'api.partner.example', certificate: pfx('absent') });

  const controller = await startController({ kubeConfigPath: cluster.kubeConfigPath, namespaces: [ns], id: 'argocd-status' });
  for (const [name, reason] of [
    ['healthy', reasons.BindingReady],
    ['expiring', reasons.CertificateExpiringSoon],
    ['expired', reasons.CertificateExpired],
    ['wrong', reasons.PasswordIncorrect],
    ['no-secret', reasons.SecretNotFound],
  ] as const) {
    await kube.waitForBinding(ns, name, reason, hasReason(reason));
    await capture(ns, name);
  }
  assert.equal(await controller.stop(), 0);

  // With the controller stopped: a spec change it has not seen, and a binding it never saw.
  await kube.patchBinding(ns, 'healthy', { spec: { expiryWarning: '240h' } });
  await capture(ns, 'healthy', 'stale');
  await kube.createBinding(ns, 'unreported', { host: 'api.partner.example', certificate: pfx('healthy') });
  await capture(ns, 'unreported');

  // A data plane, but no proxy replica: Pending on the proxy.
  const proxied = await kube.namespace('argocd-proxied');
  const proxyNs = await kube.namespace('argocd-proxy');
  await kube.putPfxSecret(proxied, 'pfx', pki.issueClient({ cn: 'pending.client' }), password);
  await kube.createBinding(proxied, 'pending', { host: 'localhost', certificate: pfx('pfx') });
  const withProxy = await startController({
    kubeConfigPath: cluster.kubeConfigPath,
    namespaces: [proxied],
    id: 'argocd-proxied',
    args: ['--data-plane', 'nginx', '--namespace', proxyNs],
  });
  await kube.waitForBinding(proxied, 'pending', 'Pending', hasReason(reasons.ProgrammingPending));
  await capture(proxied, 'pending');
  assert.equal(await withProxy.stop(), 0);
});

describe('deploy/argocd/health.lua under Lua 5.1, on bindings the controller made', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['healthy', 'Healthy', /^Ready\b/],
    ['expiring', 'Healthy', /^CertificateExpiringSoon: certificate .* expires at \d{4}-\d\d-\d\dT.*; replace it before then$/],
    ['expired', 'Degraded', /^CertificateExpired: /],
    ['wrong', 'Degraded', /^PasswordIncorrect: /],
    ['no-secret', 'Degraded', /^SecretNotFound: /],
    ['pending', 'Progressing', /^Pending: /],
    ['stale', 'Progressing', /observe generation 2 \(the status is of generation 1\)$/],
    ['unreported', 'Progressing', /^Waiting for the mtls-egress controller to report on this binding$/],
  ];
  for (const [name, status, message] of cases) {
    test(`${name}: ${status}`, async () => {
      const binding = fixtures.get(name);
      assert.ok(binding, `fixture ${name} was captured`);
      const hs = await health(binding);
      assert.equal(hs.status, status, hs.message);
      assert.match(hs.message, message);
    });
  }

  test('the fixtures are what they claim: one status of an older generation, one with none', () => {
    const stale = fixtures.get('stale')!;
    assert.equal(stale.metadata.generation, 2);
    assert.equal(stale.status?.observedGeneration, 1);
    assert.equal(fixtures.get('unreported')!.status, undefined);
  });

  test('a Ready condition in status Unknown, or none at all, is Progressing', async () => {
    const base = structuredClone(fixtures.get('healthy')!);
    base.status!.conditions = base.status!.conditions!.map((c) => (c.type === 'Ready' ? { ...c, status: 'Unknown' } : c));
    assert.equal((await health(base)).status, 'Progressing');
    base.status!.conditions = [];
    assert.equal((await health(base)).status, 'Progressing');
  });

  test('the kustomize Component puts the script, byte for byte, into argocd-cm', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mtls-egress-argocd-install-'));
    writeFileSync(join(dir, 'install.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: argocd-cm}\ndata: {url: https://argocd.example}\n');
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      `namespace: argocd\nresources: [install.yaml]\ncomponents: [${relative(dir, join(repo, 'deploy/argocd'))}]\n`,
    );
    const { stdout } = await run('kubectl', ['kustomize', dir], { encoding: 'utf8' });
    const cm = load(stdout) as { metadata: { name: string; namespace: string }; data: Record<string, string> };
    assert.deepEqual(cm.metadata, { name: 'argocd-cm', namespace: 'argocd' });
    assert.equal(cm.data.url, 'https://argocd.example');
    assert.equal(cm.data['resource.customizations.health.mtls-egress.io_ClientCertificateBinding'], readFileSync(script, 'utf8'));
  });
});
