// `kubectl apply -f crds/`, the way the README and the chart's crds.enabled=false path
// install the CRD, on a real API server that has no CRD yet: with the machine's kubectl
// and with the cluster release's. crds/ holds the CRD and a kustomize file named
// `Kustomization`, which kustomize reads and `kubectl apply -f` skips (no .yaml).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, test } from 'node:test';
import { usePrivateControlPlane } from '../harness/use-control-plane.ts';
import { findClusterKubectl } from '../harness/tools.ts';
import { TestKube } from '../support/kube.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../..');
// No CRD installed by the harness: kubectl creates it, as on a user's cluster.
const cluster = await usePrivateControlPlane({ crdDir: mkdtempSync(join(tmpdir(), 'mtls-egress-no-crds-')) });
const kube = new TestKube(cluster.kubeconfig);
const crdName = 'clientcertificatebindings.mtls-egress.io';

const kubectls: Array<[string, () => Promise<string>]> = [
  ['the machine’s kubectl', () => Promise.resolve('kubectl')],
  ['the cluster release’s kubectl', findClusterKubectl],
];

async function kubectl(binary: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(binary, ['--kubeconfig', cluster.kubeConfigPath, ...args], { cwd: repo, encoding: 'utf8' }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

describe('kubectl apply -f crds/', () => {
  test('crds/ holds only the CRD as YAML; the kustomize file has no extension kubectl reads', () => {
    assert.deepEqual(readdirSync(join(repo, 'crds')).sort(), ['Kustomization', 'mtls-egress.io_clientcertificatebindings.yaml']);
  });

  for (const [name, find] of kubectls) {
    test(`${name}: applies the CRD alone and exits 0, again and again, client- and server-side`, async () => {
      const binary = await find();
      const dry = await kubectl(binary, 'apply', '-f', 'crds/', '--dry-run=server', '-o', 'name');
      assert.equal(dry.code, 0, dry.stderr);
      assert.deepEqual(dry.stdout.trim().split('\n'), [`customresourcedefinition.apiextensions.k8s.io/${crdName}`]);
      for (const args of [
        ['apply', '-f', 'crds/'],
        ['apply', '-f', 'crds/'],
        ['apply', '--server-side', '--force-conflicts', '-f', 'crds/'],
      ]) {
        const r = await kubectl(binary, ...args);
        assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stdout, new RegExp(`customresourcedefinition\\.apiextensions\\.k8s\\.io/${crdName.replace(/\./g, '\\.')} `));
      }
      const established = await kubectl(binary, 'wait', '--for=condition=Established', `crd/${crdName}`, '--timeout=30s');
      assert.equal(established.code, 0, established.stderr);
    });
  }

  test('the CRD it installed serves bindings', async () => {
    const ns = await kube.namespace('crds-apply');
    await kube.createBinding(ns, 'b', { host: 'api.partner.example', certificate: { secretRef: { name: 's' } } });
    assert.equal((await kube.getBinding(ns, 'b')).spec.host, 'api.partner.example');
  });

  test('kubectl kustomize still reads crds/ as a base (deploy/ includes it)', async () => {
    const r = await kubectl('kubectl', 'kustomize', 'crds/');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`name: ${crdName.replace(/\./g, '\\.')}`));
  });
});
