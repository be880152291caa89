// The controller run out of cluster (--kubeconfig) with a --namespace that does not exist:
// it cannot hold its leader Lease there. It says so once, with what to do, and exits 1,
// instead of warning every retry period forever. Against the real API server, which is
// what tells a missing namespace (404 with details.kind "namespaces") from a missing Lease.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { errorCodes } from '../../src/errors.ts';
import { useControlPlane } from '../harness/use-control-plane.ts';
import { pollUntil } from '../harness/poll.ts';
import { safeJson, startController } from '../support/controller-process.ts';
import { TestKube } from '../support/kube.ts';

const cluster = await useControlPlane();
const kube = new TestKube(cluster.kubeconfig);

describe('the controller with a --namespace that does not exist', () => {
  test('says once what to create or which flag to pass, and exits 1', async () => {
    const watched = await kube.namespace('nsless');
    const missing = `missing-${randomBytes(3).toString('hex')}`;
    const controller = await startController({
      kubeConfigPath: cluster.kubeConfigPath,
      namespaces: [watched],
      id: 'nsless',
      leaseName: 'mtls-egress-controller',
      // A later flag wins: the Lease's namespace, as an out-of-cluster run gets it wrong.
      args: ['--namespace', missing],
    });
    let exitCode: number | null | undefined;
    void controller.exited.then((code) => (exitCode = code));
    try {
      await pollUntil(() => (exitCode === undefined ? undefined : true), { what: 'the controller to exit', timeoutMs: 30_000 });
    } finally {
      await controller.kill();
    }
    assert.equal(exitCode, 1, controller.logs.join('\n'));

    const lines = controller.logs.map(safeJson).filter((l) => l !== undefined);
    const errors = lines.filter((l) => l.level === 'error' || l.level === 'fatal');
    assert.equal(errors.length, 1, `one error line:\n${controller.logs.join('\n')}`);
    const [error] = errors;
    assert.equal(error!.code, 'ERR_NAMESPACE_NOT_FOUND');
    assert.equal(errorCodes.ERR_NAMESPACE_NOT_FOUND.transient, false);
    assert.equal(error!.namespace, missing);
    assert.match(String(error!.msg), new RegExp(`kubectl create namespace ${missing}\\b`));
    assert.match(String(error!.msg), /--namespace/);
    // No retry loop before it: not one "lease acquire/renew failed" warning.
    assert.deepEqual(
      lines.filter((l) => /lease/.test(String(l.msg)) && l !== error),
      [],
    );
  });

  test('with the namespace created, the same command campaigns, leads, and stops cleanly', async () => {
    const own = await kube.namespace('nsful');
    const controller = await startController({
      kubeConfigPath: cluster.kubeConfigPath,
      namespaces: [own],
      id: 'nsful',
      leaseName: 'mtls-egress-controller',
    });
    await pollUntil(() => (controller.logs.some((l) => safeJson(l)?.msg === 'became leader') ? true : undefined), {
      what: 'the controller to lead',
      timeoutMs: 30_000,
    });
    assert.equal(await controller.stop(), 0);
  });
});
