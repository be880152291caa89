// A binding that names its Secret "." or "..": the API server refuses it at admission
// (the CRD's patterns), and one stored before the CRD had them (an upgrade) is refused by
// the controller with InvalidSpec, before any request: "." in a GET's path
// (/api/v1/namespaces/ns/secrets/.) is normalised away and the GET becomes a LIST of every
// Secret in the namespace.
//
// A private control plane: the file installs an older CRD and upgrades it, which would
// disturb every file sharing the run's control plane.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { load } from 'js-yaml';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import type { ClientCertificateBindingSpec } from '../../src/api/v1alpha1/types.ts';
import { KubeApiError } from '../../src/k8s/client.ts';
import { pollUntil } from '../harness/poll.ts';
import { usePrivateControlPlane } from '../harness/use-control-plane.ts';
import { httpGet, startController, type ControllerProcess } from '../support/controller-process.ts';
import { hasReason, TestKube } from '../support/kube.ts';
import { PartnerPki } from '../support/partner-pki.ts';

const crdFile = resolve(import.meta.dirname, '../../crds/mtls-egress.io_clientcertificatebindings.yaml');
const crdName = 'clientcertificatebindings.mtls-egress.io';
const current = readFileSync(crdFile, 'utf8');

/** The CRD as it was before it checked names and keys: the same file without those patterns. */
function crdBeforeNameRules(): string {
  const older = current
    .split('\n')
    .filter((line) => !/^\s+pattern: '\^(\[a-z0-9\]\(\[-a-z0-9\]\*|\\\.\?\[-_a-zA-Z0-9\])/.test(line))
    .join('\n');
  assert.equal(current.split('\n').length - older.split('\n').length, 7, 'four name patterns and three key patterns left out');
  return older;
}

const olderCrdDir = mkdtempSync(join(tmpdir(), 'mtls-egress-older-crd-'));
writeFileSync(join(olderCrdDir, 'mtls-egress.io_clientcertificatebindings.yaml'), crdBeforeNameRules());
const cluster = await usePrivateControlPlane({ crdDir: olderCrdDir });
const kube = new TestKube(cluster.kubeconfig);
const pki = new PartnerPki();
let ns: string;
let controller: ControllerProcess;

const pfx = { secretRef: { name: 'good-pfx' }, passwordSecretRef: { name: 'good-pfx' } };

/** Each stored binding: its name, its spec, and the field and value the CRD now refuses in it. */
const stored: Array<[string, ClientCertificateBindingSpec, string, string]> = [
  ['dot', { host: 'api.partner.example', certificate: { secretRef: { name: '.' } } }, 'spec.certificate.secretRef.name', '.'],
  [
    'dot-dot-password',
    { host: 'api.partner.example', certificate: { ...pfx, passwordSecretRef: { name: '..' } } },
    'spec.certificate.passwordSecretRef.name',
    '..',
  ],
  ['dot-tls', { host: 'api.partner.example', certificate: { tlsSecretRef: { name: '.' } } }, 'spec.certificate.tlsSecretRef.name', '.'],
  ['dot-dot-ca', { host: 'api.partner.example', certificate: pfx, serverCA: { secretRef: { name: '..' } } }, 'spec.serverCA.secretRef.name', '..'],
  ['dot-dot-key', { host: 'api.partner.example', certificate: { ...pfx, secretRef: { name: 'good-pfx', key: '..' } } }, 'spec.certificate.secretRef.key', '..'],
];
const escaped = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

async function secretReads(): Promise<number> {
  const body = (await httpGet(controller.healthPort, '/metrics')).body;
  return [...body.matchAll(/^mtls_egress_secret_reads_total\{[^}]*\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}

before(async () => {
  ns = await kube.namespace('names');
  // What the namespace holds besides: a LIST would read this.
  await kube.putPfxSecret(ns, 'good-pfx', pki.issueClient({ cn: 'names.client' }), 'pw');
  await kube.putSecret(ns, 'unrelated', { token: 'a LIST of the namespace would read this' });
  for (const [name, spec] of stored) await kube.createBinding(ns, name, spec);
  // The upgrade: the current CRD, with the patterns, over the stored bindings.
  await kube.client.request('PATCH', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crdName}`, {
    query: { fieldManager: 'mtls-egress-test-harness', force: 'true', fieldValidation: 'Strict' },
    body: load(current),
    contentType: 'application/apply-patch+yaml',
  });
  // The new schema is served once a create with a "." name is refused.
  await pollUntil(
    async () => {
      try {
        await kube.client.request('POST', `/apis/mtls-egress.io/v1alpha1/namespaces/${ns}/clientcertificatebindings`, {
          query: { dryRun: 'All' },
          body: { apiVersion: 'mtls-egress.io/v1alpha1', kind: 'ClientCertificateBinding', metadata: { name: 'probe', namespace: ns }, spec: stored[0]![1] },
        });
        return undefined;
      } catch (err) {
        if (err instanceof KubeApiError && err.status === 422) return true;
        throw err;
      }
    },
    { what: 'the upgraded CRD refusing a "." Secret name', timeoutMs: 30_000, intervalMs: 200 },
  );
  controller = await startController({
    kubeConfigPath: cluster.kubeConfigPath,
    namespaces: [ns],
    id: 'names',
    args: ['--listener-ports', '10000-10099', '--data-plane', 'none'],
  });
});

after(() => controller?.kill());

describe('Secret names and keys a binding may give', () => {
  for (const [name, spec, field, value] of stored) {
    test(`the API server now refuses ${field} ${JSON.stringify(value)}`, async () => {
      await assert.rejects(kube.createBinding(ns, `new-${name}`, spec), (err: unknown) => {
        assert.ok(err instanceof KubeApiError, String(err));
        assert.equal(err.status, 422);
        assert.match(err.message, new RegExp(`${escaped(field)}: Invalid value: ${escaped(JSON.stringify(value))}`));
        return true;
      });
    });
  }

  test('a binding stored before the CRD checked names: InvalidSpec naming the field, for every one', async () => {
    for (const [name, , field, value] of stored) {
      const b = await kube.waitForBinding(ns, name, 'InvalidSpec', hasReason(reasons.InvalidSpec));
      const ready = b.status?.conditions?.find((c) => c.type === 'Ready');
      assert.equal(ready?.status, 'False');
      assert.match(ready?.message ?? '', new RegExp(`^${escaped(field)} ${escaped(JSON.stringify(value))} is not a Secret (name|data key)`), name);
    }
  });

  test('and no Secret was requested for them: no GET that could have become a LIST', async () => {
    // The good PFX Secret is read for the bindings whose other reference is wrong only if
    // the gatherer reads valid names beside invalid ones; a "." or ".." is never read.
    await kube.waitForBinding(ns, 'dot-dot-key', 'InvalidSpec', hasReason(reasons.InvalidSpec));
    assert.ok((await secretReads()) <= 1, `at most the one GET of good-pfx, got ${await secretReads()}`);
  });
});
