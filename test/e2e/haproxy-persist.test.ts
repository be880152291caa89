// The files a restarted HAProxy reads may lag behind what it served from memory
// (--persist-delay): a crash in between must cost nothing but the restart. Real
// kube-apiserver and etcd, the controller, the agent with Debian's HAProxy, and a partner
// that reports the client certificate it authenticated.
import assert from 'node:assert/strict';
import { readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { generationName } from '../../src/proxy/generations.ts';
import { pollUntil } from '../harness/poll.ts';
import { useControlPlane } from '../harness/use-control-plane.ts';
import { annotationAppliedHash } from '../../src/api/labels.ts';
import { podAnnotations } from '../support/agent-process.ts';
import { agentMetric, startEgressStack, type EgressStack } from '../support/egress-stack.ts';
import { hasReason } from '../support/kube.ts';
import { callProxy } from '../support/nginx-process.ts';
import type { PartnerSeen } from '../support/mtls-partner.ts';

const cluster = await useControlPlane();

const current = (stack: EgressStack): string => readlinkSync(join(stack.configDir, 'current'));

async function seen(port: number): Promise<PartnerSeen | undefined> {
  const res = await callProxy(port).catch(() => undefined);
  return res?.status === 200 ? (JSON.parse(res.body) as PartnerSeen) : undefined;
}

/** A stack whose agent runs with `--persist-delay delay`, for one describe block. */
function stackWithDelay(delay: string): () => EgressStack {
  let stack: EgressStack | undefined;
  before(async () => {
    stack = await startEgressStack({
      kubeconfig: cluster.kubeconfig,
      kubeConfigPath: cluster.kubeConfigPath,
      password: 'persist-test-password',
      dataPlane: 'haproxy',
      agentArgs: ['--persist-delay', delay],
    });
  });
  after(async () => {
    await stack?.agent.kill();
    await stack?.controller.kill();
    await stack?.partner.close();
  });
  return () => stack!;
}

describe('HAProxy with --persist-delay 1h: a crash between a runtime change and its files costs only the restart', () => {
  // Every change after the first generation stays in HAProxy's memory only.
  const get = stackWithDelay('1h');

  test('a rotation served from memory, HAProxy killed before its files are written: restarted from the generation before, the next pass serves the rotation again', async () => {
    const stack = get();
    await stack.putBinding('alpha', stack.partnerPki.issueClient({ cn: 'alpha.client' }));
    const alpha = await stack.kube.waitForBinding(stack.namespace, 'alpha', 'Ready', hasReason(reasons.BindingReady), 30_000);
    const port = alpha.status!.listenerPort!;
    assert.equal((await seen(port))?.cn, 'alpha.client');
    const onDisk = current(stack);

    const rotated = stack.partnerPki.issueClient({ cn: 'alpha.client' });
    await stack.rotate('alpha', rotated);
    const serial = (await pollUntil(async () => ((await seen(port))?.serialNumber === rotated.serial ? rotated.serial : undefined), {
      what: 'the partner to see the rotated certificate',
      timeoutMs: 30_000,
    }))!;
    await stack.kube.waitForBinding(
      stack.namespace,
      'alpha',
      'Programmed with the new serial',
      (b) => hasReason(reasons.BindingReady)(b) && b.status?.certificate?.serialNumber === serial,
      30_000,
    );
    assert.equal(current(stack), onDisk, 'the rotation was served from memory; no generation was written for it');

    const master = stack.agent.logged('haproxy started').at(-1)!.pid as number;
    process.kill(master, 'SIGKILL');
    await pollUntil(() => (stack.agent.logged('haproxy started').length > 1 ? true : undefined), { what: 'HAProxy to be restarted', timeoutMs: 30_000 });
    await pollUntil(async () => ((await seen(port))?.serialNumber === serial ? true : undefined), {
      what: 'the restarted HAProxy to present the rotated certificate again',
      timeoutMs: 30_000,
    });
    assert.equal(await agentMetric(stack, 'mtls_egress_agent_data_plane_unexpected_exits_total{data_plane="haproxy"}'), 1);
  });
});

describe('HAProxy with --persist-delay 2s: the files follow within the delay', () => {
  const get = stackWithDelay('2s');

  test('changes back to back are served at once; within the delay `current` names the generation of what is served', async () => {
    const stack = get();
    const names = ['beta', 'gamma', 'delta'];
    for (const name of names) await stack.putBinding(name, stack.partnerPki.issueClient({ cn: `${name}.client` }));
    for (const name of names) {
      const b = await stack.kube.waitForBinding(stack.namespace, name, 'Ready', hasReason(reasons.BindingReady), 30_000);
      assert.equal((await seen(b.status!.listenerPort!))?.cn, `${name}.client`);
    }
    const served = await pollUntil(async () => (await podAnnotations(stack.kube.client, stack.proxyNamespace, stack.proxyPod))[annotationAppliedHash], {
      what: 'the agent to report the config it serves',
      timeoutMs: 10_000,
    });
    await pollUntil(() => (current(stack) === generationName(served!) ? true : undefined), {
      what: `current to name ${generationName(served!)}`,
      timeoutMs: 10_000,
    });
  });
});
